//! What an audit run is told: from environment variables at cold start (or CLI flags, which
//! the CLI turns into the same variables), then per invocation from the event.

use audit_core::{ConfigError, Env};
use serde::Deserialize;
use std::time::Duration;

/// How record counts are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountMode {
    /// Exact below [`Settings::exact_count_threshold`] estimated rows, planner estimates above.
    Auto,
    /// `count(*)` on every table.
    Exact,
    /// Planner estimates only (plus an emptiness check for seed tables).
    Estimate,
}

impl CountMode {
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(CountMode::Auto),
            "exact" => Some(CountMode::Exact),
            "estimate" => Some(CountMode::Estimate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CountMode::Auto => "auto",
            CountMode::Exact => "exact",
            CountMode::Estimate => "estimate",
        }
    }
}

/// A table named in configuration: `schema.table`, or `table` in [`Settings::default_schema`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn parse(value: &str, default_schema: &str) -> Self {
        match value.split_once('.') {
            Some((schema, table)) if !schema.is_empty() && !table.is_empty() => TableName {
                schema: schema.to_owned(),
                table: table.to_owned(),
            },
            _ => TableName {
                schema: default_schema.to_owned(),
                table: value.to_owned(),
            },
        }
    }

    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Everything that shapes one audit.
#[derive(Debug, Clone)]
pub struct Settings {
    pub count_mode: CountMode,
    /// `auto` counts exactly up to this many estimated rows.
    pub exact_count_threshold: u64,
    /// Schemas to audit; empty means every schema but the system ones.
    pub include_schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    /// Where the versioning tables and unqualified configured table names live.
    pub default_schema: String,
    /// Tables that should appear in `domain_family_map`; `None` when not configured.
    pub expected_versioned_tables: Option<Vec<TableName>>,
    /// Tables expected to hold seed data.
    pub expected_seed_tables: Vec<TableName>,
    /// The trigger function that maintains the audit columns.
    pub audit_trigger_function: String,
    /// `created_by` of the system user: tables only it created rows in are flagged.
    pub system_user_id: String,
    pub sample_rows: u32,
    /// Column-name fragments (case-insensitive) whose values are redacted in every row
    /// the report copies, and keys inside json/jsonb values likewise.
    pub sensitive_column_patterns: Vec<String>,
    /// How many distinct `created_by` values a table entry lists at most.
    pub max_created_by_values: u32,
    /// Rows of each versioning table copied into the report at most.
    pub max_versioning_rows: u32,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    /// Connections reading tables at once, all in one snapshot.
    pub parallelism: usize,
    /// Tables per catalog statement, about ([`crate::catalog::catalog_parts`]): also how much
    /// of the report is held at once. Not configurable outside the code; tests lower it to
    /// read a few small schemas as several parts.
    pub tables_per_catalog_statement: i64,
}

/// What `SENSITIVE_COLUMN_PATTERNS` is by default: fragments of the names credentials, keys,
/// payment data and personal identifiers usually go by. A substring match, so `key` also
/// catches `api_key` and `monkey`: a sample row loses a harmless value rather than leak one.
pub const DEFAULT_SENSITIVE_PATTERNS: [&str; 20] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "private",
    "key",
    "hash",
    "salt",
    "card",
    "cvv",
    "cvc",
    "iban",
    "account_number",
    "ssn",
    "tax_id",
    "email",
    "phone",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            count_mode: CountMode::Auto,
            exact_count_threshold: 100_000,
            include_schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            default_schema: "public".to_owned(),
            expected_versioned_tables: None,
            expected_seed_tables: Vec::new(),
            audit_trigger_function: "set_audit_fields".to_owned(),
            system_user_id: "1".to_owned(),
            sample_rows: 3,
            sensitive_column_patterns: DEFAULT_SENSITIVE_PATTERNS.map(str::to_owned).to_vec(),
            max_created_by_values: 100,
            max_versioning_rows: 10_000,
            statement_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(3),
            parallelism: 3,
            tables_per_catalog_statement: crate::catalog::CATALOG_TABLES_PER_STATEMENT,
        }
    }
}

/// Every variable [`Settings::from_env`] reads.
pub const SETTINGS_VARIABLES: &[&str] = &[
    "COUNT_MODE",
    "EXACT_COUNT_THRESHOLD",
    "INCLUDE_SCHEMAS",
    "EXCLUDE_SCHEMAS",
    "DEFAULT_SCHEMA",
    "EXPECTED_VERSIONED_TABLES",
    "EXPECTED_SEED_TABLES",
    "AUDIT_TRIGGER_FUNCTION",
    "SYSTEM_USER_ID",
    "SAMPLE_ROWS",
    "SENSITIVE_COLUMN_PATTERNS",
    "STATEMENT_TIMEOUT_MS",
    "LOCK_TIMEOUT_MS",
    "PARALLELISM",
];

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        let count_mode = match env.get("COUNT_MODE") {
            None => defaults.count_mode,
            Some(value) => CountMode::parse(value).ok_or_else(|| {
                ConfigError::invalid("COUNT_MODE", value, "auto, exact or estimate")
            })?,
        };
        let default_schema = env
            .get("DEFAULT_SCHEMA")
            .unwrap_or(&defaults.default_schema)
            .to_owned();
        let tables = |name: &str| -> Vec<TableName> {
            env.list(name)
                .iter()
                .map(|t| TableName::parse(t, &default_schema))
                .collect()
        };
        let expected_versioned_tables = env
            .get("EXPECTED_VERSIONED_TABLES")
            .map(|_| tables("EXPECTED_VERSIONED_TABLES"));
        let expected_seed_tables = tables("EXPECTED_SEED_TABLES");
        let sensitive_column_patterns = match env.get("SENSITIVE_COLUMN_PATTERNS") {
            None => defaults.sensitive_column_patterns.clone(),
            // "-" turns redaction off explicitly; an empty value counts as unset.
            Some("-") => Vec::new(),
            Some(_) => env
                .list("SENSITIVE_COLUMN_PATTERNS")
                .into_iter()
                .map(|p| p.to_lowercase())
                .collect(),
        };
        // Milliseconds, at least 1: zero would mean "no timeout" to PostgreSQL, and an audit
        // must never wait forever on a lock or a runaway scan.
        let millis = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
            env.int_in_range(name, default, 1..=86_400_000)
                .map(Duration::from_millis)
        };
        let statement_timeout = millis("STATEMENT_TIMEOUT_MS", defaults.statement_timeout)?;
        let lock_timeout = millis("LOCK_TIMEOUT_MS", defaults.lock_timeout)?;
        Ok(Settings {
            count_mode,
            exact_count_threshold: env.int_in_range(
                "EXACT_COUNT_THRESHOLD",
                defaults.exact_count_threshold,
                0..=u64::MAX,
            )?,
            include_schemas: env.list("INCLUDE_SCHEMAS"),
            exclude_schemas: env.list("EXCLUDE_SCHEMAS"),
            expected_versioned_tables,
            expected_seed_tables,
            audit_trigger_function: env
                .get("AUDIT_TRIGGER_FUNCTION")
                .unwrap_or(&defaults.audit_trigger_function)
                .to_owned(),
            system_user_id: env
                .get("SYSTEM_USER_ID")
                .unwrap_or(&defaults.system_user_id)
                .to_owned(),
            sample_rows: env.int_in_range("SAMPLE_ROWS", defaults.sample_rows, 0..=100)?,
            sensitive_column_patterns,
            statement_timeout,
            lock_timeout,
            parallelism: env.int_in_range("PARALLELISM", defaults.parallelism, 1..=16)?,
            default_schema,
            ..defaults
        })
    }

    /// Applies the overrides an invocation event may carry. Errors name the event field.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Result<Self, EventFieldError> {
        if let Some(mode) = &overrides.count_mode {
            self.count_mode = CountMode::parse(mode).ok_or_else(|| {
                EventFieldError::new(
                    "count_mode",
                    format!("{mode:?} is not auto, exact or estimate"),
                )
            })?;
        }
        if let Some(tables) = &overrides.expected_versioned_tables {
            self.expected_versioned_tables = Some(
                tables
                    .iter()
                    .map(|t| TableName::parse(t, &self.default_schema))
                    .collect(),
            );
        }
        if let Some(tables) = &overrides.expected_seed_tables {
            self.expected_seed_tables = tables
                .iter()
                .map(|t| TableName::parse(t, &self.default_schema))
                .collect();
        }
        if let Some(rows) = overrides.sample_rows {
            if rows > 100 {
                return Err(EventFieldError::new(
                    "sample_rows",
                    format!("{rows} is above 100"),
                ));
            }
            self.sample_rows = rows;
        }
        Ok(self)
    }
}

/// An invocation event field that cannot be used: its name (`expected_seed_tables[0]`) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {expected}")]
pub struct EventFieldError {
    pub field: String,
    pub expected: String,
}

impl EventFieldError {
    pub fn new(field: impl Into<String>, expected: impl Into<String>) -> Self {
        EventFieldError {
            field: field.into(),
            expected: expected.into(),
        }
    }
}

/// Optional fields of an invocation event (a scheduled EventBridge event carries none of them).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Overrides {
    pub bucket: Option<String>,
    pub count_mode: Option<String>,
    pub expected_versioned_tables: Option<Vec<String>>,
    pub expected_seed_tables: Option<Vec<String>>,
    pub sample_rows: Option<u32>,
}

impl Overrides {
    /// Reads the known fields of any event; a field of the wrong type is named.
    pub fn from_event(event: &serde_json::Value) -> Result<Self, EventFieldError> {
        let Some(object) = event.as_object() else {
            return Ok(Overrides::default());
        };
        let text = |field: &str| -> Result<Option<String>, EventFieldError> {
            match object.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    Ok(Some(s.trim().to_owned()))
                }
                Some(_) => Err(EventFieldError::new(field, "expected a non-empty string")),
            }
        };
        let list = |field: &str| -> Result<Option<Vec<String>>, EventFieldError> {
            match object.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            EventFieldError::new(
                                format!("{field}[{i}]"),
                                "expected a table name string",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(EventFieldError::new(
                    field,
                    "expected a list of table names or a comma-separated string",
                )),
            }
        };
        let sample_rows = match object.get("sample_rows") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| {
                        EventFieldError::new("sample_rows", "expected a whole number from 0 to 100")
                    })?,
            ),
        };
        Ok(Overrides {
            bucket: text("bucket")?,
            count_mode: text("count_mode")?,
            expected_versioned_tables: list("expected_versioned_tables")?,
            expected_seed_tables: list("expected_seed_tables")?,
            sample_rows,
        })
    }
}

/// How configured names and validation lists name a table: plain in the default schema (as
/// the original, which only knew `public`), `schema.table` elsewhere.
pub fn display_name(schema: &str, table: &str, settings: &Settings) -> String {
    if schema == settings.default_schema {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}
