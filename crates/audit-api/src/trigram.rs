//! Which part of a `message_pattern` the trigram index should look up. No I/O.
//!
//! `message ILIKE '%SKU-004217%'` asks the GIN trigram index for every trigram of the pattern,
//! and PostgreSQL reads each one's whole posting list: `sku` and ` 00` are in nearly every
//! row, so one rare order number cost ~50 ms at 5,000,000 events, where `'%004217%'` alone
//! takes ~3 ms. So the search looks the pattern's rarest word up in the index (its
//! [`index_core`]) and checks the whole pattern on the rows found, in a form the index does
//! not serve. Any substring of the pattern matches every row the pattern matches, so the
//! answer is unchanged; only the work is.
//!
//! How common a trigram is comes from [`TrigramFrequencies`]: a sample of stored messages,
//! split into trigrams by pg_trgm itself (`show_trgm`), so the words and case folding are
//! PostgreSQL's. A trigram the sample never saw counts as rare.

use std::collections::HashMap;

/// A word whose trigrams are, on average, in more than this share of messages is not worth
/// an index lookup: the newest-first scan with the pattern as a filter is cheaper.
const COMMON: f64 = 0.05;

/// The share of sampled messages holding each trigram (only those above 1% are kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrigramFrequencies {
    shares: HashMap<String, f64>,
}

impl TrigramFrequencies {
    /// From `(trigram, messages holding it)` counts over `sampled` messages.
    pub fn from_counts(counts: impl IntoIterator<Item = (String, i64)>, sampled: i64) -> Self {
        let sampled = sampled.max(1) as f64;
        TrigramFrequencies {
            shares: counts
                .into_iter()
                .map(|(trigram, n)| (trigram, n as f64 / sampled))
                .filter(|(_, share)| *share >= 0.01)
                .collect(),
        }
    }

    fn share(&self, trigram: &str) -> f64 {
        self.shares.get(trigram).copied().unwrap_or(0.0)
    }
}

/// The pattern's words as pg_trgm reads a LIKE pattern: runs of letters and digits.
fn words(pattern: &str) -> impl Iterator<Item = &str> {
    pattern
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The trigrams `%word%` gives the index: inside the word only (wildcards on both sides add
/// no padding), lower case.
fn inner_trigrams(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.to_lowercase().chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

/// The word of `pattern` (a literal substring, as the client sent it) to look up in the
/// trigram index instead of the whole pattern, when that is cheaper: the word whose trigrams
/// are rarest in sum, if they are rare enough to beat the newest-first scan. `None` keeps the
/// whole pattern as the one predicate (and the planner's choice): no word of three
/// characters, the pattern is that word already, or every word is common.
pub fn index_core(pattern: &str, frequencies: &TrigramFrequencies) -> Option<String> {
    let (cost, word) = words(pattern)
        .filter_map(|word| {
            let trigrams = inner_trigrams(word);
            if trigrams.is_empty() {
                return None;
            }
            let cost: f64 = trigrams.iter().map(|t| frequencies.share(t)).sum();
            Some((cost / trigrams.len() as f64, word))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.len().cmp(&a.1.len())))?;
    (cost <= COMMON && word != pattern).then(|| word.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(pairs: &[(&str, f64)]) -> TrigramFrequencies {
        TrigramFrequencies::from_counts(
            pairs
                .iter()
                .map(|(t, share)| ((*t).to_owned(), (share * 1000.0) as i64)),
            1000,
        )
    }

    #[test]
    fn the_rarest_word_is_looked_up_and_common_ones_are_not() {
        // Every message says "SKU-0xxxxx price changed to ...".
        let seen = frequencies(&[
            ("sku", 1.0),
            ("pri", 1.0),
            ("ric", 1.0),
            ("ice", 1.0),
            ("cha", 1.0),
            ("han", 1.0),
            ("ang", 1.0),
            ("nge", 1.0),
            ("ged", 1.0),
            ("004", 0.1),
            ("042", 0.02),
        ]);
        assert_eq!(index_core("SKU-004217", &seen).as_deref(), Some("004217"));
        assert_eq!(
            index_core("price changed, SKU 004217", &seen).as_deref(),
            Some("004217")
        );
        // Only common words: the planner's newest-first scan stays.
        assert_eq!(index_core("SKU-00", &seen), None);
        assert_eq!(index_core("price changed to 42.99", &seen), None);
        // Nothing to look up, or nothing gained.
        assert_eq!(index_core("a-b", &seen), None);
        assert_eq!(index_core("004217", &seen), None);
        assert_eq!(index_core("", &seen), None);
    }

    #[test]
    fn unseen_trigrams_count_as_rare_and_case_does_not_matter() {
        let seen = frequencies(&[("ord", 0.9), ("rde", 0.9), ("der", 0.9)]);
        assert_eq!(
            index_core("ORDER Zürich-7781", &seen).as_deref(),
            Some("Zürich"),
            "the longer of two rare words: more trigrams to narrow by"
        );
        assert_eq!(inner_trigrams("ZüR"), ["zür"]);
        assert_eq!(
            words("50%_off\\now").collect::<Vec<_>>(),
            ["50", "off", "now"]
        );
    }

    #[test]
    fn shares_below_one_percent_are_not_kept() {
        let seen =
            TrigramFrequencies::from_counts([("abc".to_owned(), 5), ("xyz".into(), 50)], 1000);
        assert_eq!(seen.share("abc"), 0.0);
        assert_eq!(seen.share("xyz"), 0.05);
    }
}
