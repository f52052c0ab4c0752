//! API keys: parsed from configuration, compared in constant time, never logged.
//!
//! `API_KEYS` (or the secret `API_KEYS_SECRET_ARN` names) is a comma-separated list. An entry
//! is a key, or a key scoped to companies: `key:5001:5002` may only write and read events of
//! companies 5001 and 5002. Keys are kept only as SHA-256 digests, so comparing equal-length
//! digests with `subtle` takes the same time whatever the presented key, and every entry is
//! compared (no early exit) so timing does not say which entry matched.

use crate::sql::Scope;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// One configured key.
#[derive(Clone)]
struct KeyEntry {
    digest: [u8; 32],
    scope: Scope,
}

/// The configured keys. `Debug` prints how many, never a key.
#[derive(Clone, Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.entries.len())
    }
}

/// What went wrong in a key list; names the entry's position, never its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no keys: at least one API key is required")]
    Empty,
    #[error("entry {0}: {1}")]
    Entry(usize, &'static str),
}

impl ApiKeys {
    /// Parses `key[,key:company:company...]`. A secret may also be a JSON object with an
    /// `API_KEYS` field in that syntax (how key/value secrets look in the console).
    pub fn parse(text: &str) -> Result<ApiKeys, KeysError> {
        let text = text.trim();
        if text.starts_with('{') {
            let inner = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("API_KEYS")?.as_str().map(str::to_owned))
                .ok_or(KeysError::Entry(
                    0,
                    "a JSON secret needs an API_KEYS string",
                ))?;
            return ApiKeys::parse(&inner);
        }
        let mut entries = Vec::new();
        for (index, entry) in text.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let mut parts = entry.split(':');
            let key = parts.next().unwrap_or_default();
            if key.len() < 16 {
                return Err(KeysError::Entry(
                    index + 1,
                    "a key must be at least 16 characters",
                ));
            }
            let companies = parts
                .map(|c| c.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| KeysError::Entry(index + 1, "company ids must be integers"))?;
            entries.push(KeyEntry {
                digest: Sha256::digest(key.as_bytes()).into(),
                scope: if companies.is_empty() {
                    Scope::All
                } else {
                    Scope::Companies(companies)
                },
            });
        }
        if entries.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(ApiKeys { entries })
    }

    /// The scope of the presented key, or `None` when no configured key matches.
    pub fn check(&self, presented: &str) -> Option<Scope> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            let equal: bool = entry.digest.ct_eq(&digest).into();
            if equal && found.is_none() {
                found = Some(entry.scope.clone());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_carry_their_scope() {
        let keys = ApiKeys::parse(" key-aaaaaaaaaaaaaaaa , key-bbbbbbbbbbbbbbbb:7001:7002 ,")
            .expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.check("key-aaaaaaaaaaaaaaaa"), Some(Scope::All));
        assert_eq!(
            keys.check("key-bbbbbbbbbbbbbbbb"),
            Some(Scope::Companies(vec![7001, 7002]))
        );
        for wrong in [
            "",
            "key-aaaaaaaaaaaaaaa",
            "key-aaaaaaaaaaaaaaaa ",
            "KEY-AAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(keys.check(wrong), None, "{wrong:?}");
        }
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)");
    }

    #[test]
    fn bad_key_lists_name_the_entry_not_the_key() {
        assert_eq!(
            ApiKeys::parse(" , ").map(|k| k.len()),
            Err(KeysError::Empty)
        );
        let error = ApiKeys::parse("key-aaaaaaaaaaaaaaaa,short").expect_err("short");
        assert_eq!(
            error.to_string(),
            "entry 2: a key must be at least 16 characters"
        );
        let error = ApiKeys::parse("key-aaaaaaaaaaaaaaaa:acme").expect_err("company");
        assert!(!error.to_string().contains("key-a"));
        let json = ApiKeys::parse(r#"{"API_KEYS": "key-aaaaaaaaaaaaaaaa"}"#).expect("json secret");
        assert!(json.check("key-aaaaaaaaaaaaaaaa").is_some());
    }
}
