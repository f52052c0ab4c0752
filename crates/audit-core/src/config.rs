//! Typed configuration from environment variables, read once at cold start.
//!
//! Each function declares its settings as a struct and builds it from an [`Env`] snapshot.
//! Every problem is a [`ConfigError`] that names the variable and says what was expected, so
//! a misconfigured deployment fails its first cold start with one line that tells the
//! operator exactly what to fix, instead of failing later on the first record.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A missing or invalid environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {variable} is not set (expected {expected})")]
    Missing { variable: String, expected: String },
    #[error("configuration error: {variable}={value:?} is invalid (expected {expected})")]
    Invalid {
        variable: String,
        value: String,
        expected: String,
    },
}

impl ConfigError {
    /// The variable this error is about.
    pub fn variable(&self) -> &str {
        match self {
            ConfigError::Missing { variable, .. } | ConfigError::Invalid { variable, .. } => {
                variable
            }
        }
    }

    pub fn invalid(variable: &str, value: &str, expected: impl fmt::Display) -> Self {
        ConfigError::Invalid {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: expected.to_string(),
        }
    }
}

/// A snapshot of environment variables.
///
/// Functions read the process environment once ([`Env::from_process`]); tests build one from
/// pairs ([`Env::from_pairs`]) so configuration parsing is covered without touching global state.
/// An empty value counts as unset: CloudFormation writes `""` for optional parameters left blank.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Every name looked up, set or not: lets a test prove a loader reads exactly the
    /// variables its crate declares (the stack templates are checked against that list).
    read: RefCell<BTreeSet<String>>,
}

impl Env {
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: RefCell::default(),
        }
    }

    /// The names looked up so far, whether they were set or not.
    pub fn names_read(&self) -> BTreeSet<String> {
        self.read.borrow().clone()
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.read.borrow_mut().insert(name.to_owned());
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A variable that must be set. `expected` describes a valid value for the error message.
    pub fn required(&self, name: &str, expected: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::Missing {
                variable: name.to_owned(),
                expected: expected.to_owned(),
            })
    }

    /// A variable parsed with [`FromStr`], `default` when unset.
    pub fn parse_or<T: FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::invalid(name, raw, expected)),
        }
    }

    /// An integer within `range`, `default` when unset.
    pub fn int_in_range<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        let value = self.parse_or(name, default, &expected)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::invalid(name, &value.to_string(), expected))
        }
    }

    /// A duration: whole seconds (`900`) or a number with a unit `s`, `m`, `h` or `d`
    /// (`15m`, `1h`); `default` when unset.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let expected = "a duration such as 900, 90s, 15m, 1h or 2d";
        let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => raw.split_at(i),
            None => (raw, "s"),
        };
        let seconds_per_unit = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(ConfigError::invalid(name, raw, expected)),
        };
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per_unit))
            .map(Duration::from_secs)
            .ok_or_else(|| ConfigError::invalid(name, raw, expected))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, any case), `default` when unset.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::invalid(
                name,
                self.get(name).unwrap_or_default(),
                "true or false",
            )),
        }
    }

    /// A comma-separated list with blanks and surrounding spaces removed; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A comma-separated list whose every item must be one of `allowed`; `default` when unset.
    pub fn list_of(
        &self,
        name: &str,
        allowed: &[&str],
        default: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let items = self.list(name);
        if items.is_empty() {
            return Ok(default.iter().map(|s| (*s).to_owned()).collect());
        }
        let expected = format!("a comma-separated list of: {}", allowed.join(", "));
        for item in &items {
            if !allowed.contains(&item.as_str()) {
                return Err(ConfigError::invalid(
                    name,
                    self.get(name).unwrap_or_default(),
                    expected,
                ));
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn missing_required_variable_is_named_with_what_was_expected() {
        let err = env(&[])
            .required("QUEUE_URL", "an SQS queue URL")
            .unwrap_err();
        assert_eq!(err.variable(), "QUEUE_URL");
        assert_eq!(
            err.to_string(),
            "configuration error: QUEUE_URL is not set (expected an SQS queue URL)"
        );
    }

    #[test]
    fn blank_values_count_as_unset() {
        let e = env(&[("QUEUE_URL", "  "), ("ENGINES", "")]);
        assert!(e.required("QUEUE_URL", "x").is_err());
        assert_eq!(e.list_of("ENGINES", &["a", "b"], &["a"]).unwrap(), ["a"]);
    }

    #[test]
    fn ranges_reject_out_of_range_and_unparsable_values() {
        let e = env(&[("A", "5"), ("B", "500"), ("C", "ten")]);
        assert_eq!(e.int_in_range("A", 1u32, 1..=10).unwrap(), 5);
        assert_eq!(e.int_in_range("UNSET", 7u32, 1..=10).unwrap(), 7);
        let err = e.int_in_range("B", 1u32, 1..=10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: B=\"500\" is invalid (expected an integer from 1 to 10)"
        );
        assert_eq!(
            e.int_in_range("C", 1u32, 1..=10).unwrap_err().variable(),
            "C"
        );
    }

    #[test]
    fn lists_are_trimmed_and_checked_against_allowed_values() {
        let e = env(&[
            ("ENGINES", " aurora-mysql , mysql,,"),
            ("BAD", "mysql,oracle"),
        ]);
        assert_eq!(
            e.list_of("ENGINES", &["aurora-mysql", "mysql"], &[])
                .unwrap(),
            ["aurora-mysql", "mysql"]
        );
        let err = e
            .list_of("BAD", &["aurora-mysql", "mysql"], &[])
            .unwrap_err();
        assert!(err.to_string().contains("BAD=\"mysql,oracle\""), "{err}");
        assert!(err.to_string().contains("aurora-mysql, mysql"), "{err}");
    }

    #[test]
    fn the_names_read_are_recorded_whether_set_or_not() {
        let e = env(&[("A", "1")]);
        let _ = e.get("A");
        let _ = e.bool_or("B", true);
        assert_eq!(
            e.names_read(),
            BTreeSet::from(["A".to_owned(), "B".to_owned()])
        );
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        let e = env(&[
            ("A", "900"),
            ("B", "15m"),
            ("C", "2h"),
            ("D", "1d"),
            ("E", "5 minutes"),
            ("F", "m"),
        ]);
        assert_eq!(
            e.duration_or("A", Duration::ZERO).unwrap(),
            Duration::from_secs(900)
        );
        assert_eq!(
            e.duration_or("B", Duration::ZERO).unwrap(),
            Duration::from_secs(900)
        );
        assert_eq!(
            e.duration_or("C", Duration::ZERO).unwrap(),
            Duration::from_secs(7200)
        );
        assert_eq!(
            e.duration_or("D", Duration::ZERO).unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            e.duration_or("UNSET", Duration::from_secs(3)).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(
            e.duration_or("E", Duration::ZERO).unwrap_err().variable(),
            "E"
        );
        assert_eq!(
            e.duration_or("F", Duration::ZERO).unwrap_err().variable(),
            "F"
        );
    }

    #[test]
    fn booleans_accept_common_spellings_only() {
        let e = env(&[("A", "TRUE"), ("B", "0"), ("C", "maybe")]);
        assert!(e.bool_or("A", false).unwrap());
        assert!(!e.bool_or("B", true).unwrap());
        assert!(e.bool_or("UNSET", true).unwrap());
        assert_eq!(e.bool_or("C", true).unwrap_err().variable(), "C");
    }
}
