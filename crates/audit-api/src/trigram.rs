//! How a `message_pattern`'s rows are found through the trigram indexes. No I/O.
//!
//! `message ILIKE '%SKU-004217%'` asks the GIN trigram index for every trigram of the pattern,
//! and PostgreSQL reads each one's whole posting list: `sku` and ` 00` are in nearly every
//! row, so one rare order number cost ~50 ms at 5,000,000 events, where `'%004217%'` alone
//! takes ~3 ms. So the search looks the pattern's rarest word up in the index
//! ([`PatternLookup::RareWord`]) and checks the whole pattern on the rows found, in a form the
//! index does not serve. Any substring of the pattern matches every row the pattern matches,
//! so the answer is unchanged; only the work is.
//!
//! A pattern of common words (`SKU-00`, in 10% of rows) matches too many rows to collect
//! them all, and reading the newest rows until a page is full costs whatever was inserted
//! last: after 220,000 new events that do not match, ~100 ms. So those are looked up in a
//! second index whose keys are (hour, trigram), newest hour first
//! ([`PatternLookup::ByHour`]): each hour costs its matching rows only.
//!
//! How common a trigram is comes from [`TrigramFrequencies`]: a sample of stored messages,
//! split into trigrams by pg_trgm itself (`show_trgm`), so the words and case folding are
//! PostgreSQL's. A trigram the sample never saw counts as rare.

use std::collections::HashMap;

/// A word whose trigrams are, on average, in more than this share of messages is not worth
/// an index lookup: the newest-first scan with the pattern as a filter is cheaper.
const COMMON: f64 = 0.05;

/// How many of a common pattern's trigrams each hour is asked for.
const HOUR_KEYS: usize = 2;

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

/// How the trigram indexes should find a `message_pattern`'s rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PatternLookup {
    /// The pattern as the one predicate, the planner's choice: a pattern that is one rare
    /// word, one with no word of three characters, or nothing known about the messages.
    #[default]
    Whole,
    /// Look only this rare word up in the trigram index and check the whole pattern on the
    /// rows found: cheap wherever the rows are.
    RareWord(String),
    /// Every word is common, so the rows are many and the newest are wanted: the
    /// hour-keyed index, newest hour first, asked for these trigrams (the rarest of
    /// [`like_trigrams`]) within each hour. Its cost follows the matching rows, not the rows
    /// inserted last.
    ByHour(Vec<String>),
}

/// How to look `pattern` (a literal substring, as the client sent it) up: the word whose
/// trigrams are rarest in sum when they are rare enough to beat reading the newest rows,
/// else the newest hours first when every word is common. See [`PatternLookup`].
pub fn lookup(pattern: &str, frequencies: &TrigramFrequencies) -> PatternLookup {
    let rarest = words(pattern)
        .filter_map(|word| {
            let trigrams = inner_trigrams(word);
            if trigrams.is_empty() {
                return None;
            }
            let cost: f64 = trigrams.iter().map(|t| frequencies.share(t)).sum();
            Some((cost / trigrams.len() as f64, word))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.len().cmp(&a.1.len())));
    match rarest {
        Some((cost, word)) if cost <= COMMON && word != pattern => {
            PatternLookup::RareWord(word.to_owned())
        }
        Some((cost, _)) if cost > COMMON => match like_trigrams(pattern) {
            Some(mut trigrams) => {
                // Each key costs a descent of the index in every partition, every hour; the
                // rarest two narrow nearly as well as all, and the pattern is checked anyway.
                trigrams.sort_by(|a, b| frequencies.share(a).total_cmp(&frequencies.share(b)));
                trigrams.truncate(HOUR_KEYS);
                PatternLookup::ByHour(trigrams)
            }
            None => PatternLookup::Whole,
        },
        _ => PatternLookup::Whole,
    }
}

/// The trigrams every message containing `pattern` (case-insensitively) holds, as pg_trgm
/// splits a message (`show_trgm`): words are runs of letters and digits, lower-cased, with
/// two spaces before and one after; a word of the pattern gets the padding only on a side
/// where the pattern itself shows its boundary (a separator), since at the pattern's edges the
/// message's word may go on. This is pg_trgm's own reading of `LIKE '%pattern%'`.
///
/// `None` when the pattern has no such trigram (no word of three characters, and no word
/// long enough with its padding), or when it is not ASCII: pg_trgm's idea of a letter and of
/// lower case beyond ASCII follows the database's locale, which this side cannot know, and a
/// trigram it would not produce would hide rows that match.
pub fn like_trigrams(pattern: &str) -> Option<Vec<String>> {
    if !pattern.is_ascii() {
        return None;
    }
    let bytes = pattern.as_bytes();
    let mut trigrams: Vec<String> = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_alphanumeric() {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !bytes[i].is_ascii_alphanumeric())
            .unwrap_or(bytes.len());
        let mut padded = String::with_capacity(end - start + 3);
        if start > 0 {
            padded.push_str("  ");
        }
        padded.push_str(&pattern[start..end].to_ascii_lowercase());
        if end < bytes.len() {
            padded.push(' ');
        }
        for window in padded.as_bytes().windows(3) {
            let trigram = String::from_utf8_lossy(window).into_owned();
            if !trigrams.contains(&trigram) {
                trigrams.push(trigram);
            }
        }
        start = end;
    }
    (!trigrams.is_empty()).then_some(trigrams)
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
            ("ku ", 1.0),
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
        let rare = |word: &str| PatternLookup::RareWord(word.into());
        assert_eq!(lookup("SKU-004217", &seen), rare("004217"));
        assert_eq!(lookup("price changed, SKU 004217", &seen), rare("004217"));
        // Only common words: the newest hours first, by the pattern's trigrams.
        // (" 00" and "  0" were not sampled: rarest; "sku" and "ku " are in every message.)
        assert_eq!(
            lookup("SKU-00", &seen),
            PatternLookup::ByHour(vec!["  0".into(), " 00".into()])
        );
        assert!(matches!(
            lookup("price changed to 42.99", &seen),
            PatternLookup::ByHour(_)
        ));
        // Nothing to look up, or nothing gained: the one predicate.
        assert_eq!(lookup("a-b", &seen), PatternLookup::Whole);
        assert_eq!(lookup("004217", &seen), PatternLookup::Whole);
        assert_eq!(lookup("", &seen), PatternLookup::Whole);
        // An empty sample (no messages yet): every trigram counts as rare, never by hour.
        assert_eq!(
            lookup("SKU-00", &TrigramFrequencies::default()),
            rare("SKU")
        );
    }

    #[test]
    fn unseen_trigrams_count_as_rare_and_case_does_not_matter() {
        let seen = frequencies(&[("ord", 0.9), ("rde", 0.9), ("der", 0.9)]);
        assert_eq!(
            lookup("ORDER Zürich-7781", &seen),
            PatternLookup::RareWord("Zürich".into()),
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

    #[test]
    fn a_patterns_trigrams_are_those_every_matching_message_holds() {
        // The first word may continue to the left in a message, the last to the right.
        assert_eq!(
            like_trigrams("SKU-00").unwrap(),
            ["sku", "ku ", "  0", " 00"]
        );
        // A word with separators on both sides is a whole word of the message.
        assert_eq!(
            like_trigrams("to 42.99 ").unwrap(),
            ["to ", "  4", " 42", "42 ", "  9", " 99", "99 "]
        );
        assert_eq!(like_trigrams("Order").unwrap(), ["ord", "rde", "der"]);
        assert_eq!(like_trigrams("a-b").unwrap(), ["  b"], "`a ` is too short");
        // Nothing to look up: no trigram, or beyond ASCII (the locale's business).
        assert_eq!(like_trigrams("ab"), None);
        assert_eq!(like_trigrams("%_\\"), None);
        assert_eq!(like_trigrams("Zürich 7781"), None);
        assert_eq!(like_trigrams(""), None);
    }
}
