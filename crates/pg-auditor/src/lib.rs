//! `pg-auditor`: a read-only audit of a PostgreSQL database, written as the original auditor's JSON report
//! and CSV summary (a contract its users' scripts rely on) plus a self-contained HTML page,
//! to S3 (`database_audits/audit_YYYYMMDD_HHMMSS.json`, `tables_summary_...csv`) or a folder.
//!
//! It stands apart from the other functions' data flow: an EventBridge schedule (or a manual
//! invoke, or the CLI) starts it; it reads the database and writes reports. Its contract:
//! it never writes to the database (one `REPEATABLE READ READ ONLY` snapshot, shared by a few
//! parallel connections, with statement and lock timeouts); one table that cannot be read is
//! recorded in that table's entry and the rest of the report is complete; every figure says
//! whether it is exact, an estimate, or unavailable; sensitive columns never reach a report.
//!
//! Layout: [`catalog`] (the catalog statement, one per few schemas), [`plan`] (pure: counting
//! decisions and statements), [`report`] and [`html`] (pure: assembly, part by part, and
//! rendering), [`audit`] (the run against the database, each part of the report handed over
//! as soon as it is read), [`connect`] (connection strings, secrets, IAM tokens, TLS),
//! [`output`] (the report streamed to temporary files; folder and S3), [`settings`].

pub mod audit;
pub mod catalog;
pub mod cli;
pub mod csv_summary;
/// The connection layer, shared with `audit-api`: see [`audit_core::postgres`].
pub use audit_core::postgres as connect;
pub mod handler;
pub mod html;
pub mod output;
pub mod plan;
pub mod reading;
pub mod report;
pub mod settings;
pub mod versioning;

use audit_core::{ConfigError, Env};
use connect::{DatabaseConfig, Target};
pub use settings::{CountMode, Settings};

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` or `DB_SECRET_ARN`, `DB_SSLMODE`, `DB_IAM_AUTH`, `DB_ALLOW_UNVERIFIED_TLS`.
    pub database: DatabaseConfig,
    pub settings: Settings,
    /// `S3_BUCKET`; an event's `bucket` overrides it.
    pub bucket: Option<String>,
    /// `REPORT_PREFIX`, `database_audits/` as in the original.
    pub prefix: String,
    /// `OUTPUT_DIR` (the CLI's `--out`).
    pub output_dir: Option<std::path::PathBuf>,
}

/// The metrics each run writes (EMF, namespace `auditkit`, `function=pg-auditor`).
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::{Count, Seconds};
    &[
        ("TablesAudited", Count),
        ("ReadErrors", Count),
        ("ChecksNotRun", Count),
        ("AuditFailures", Count),
        ("AuditDurationSeconds", Seconds),
    ]
};

/// One run's metrics: tables audited, tables that could not be read in full (`ReadErrors`),
/// validations that could not run, or the run failing outright; and how long it took.
pub fn run_metrics(
    report: Option<&report::AuditReport>,
    seconds: f64,
) -> audit_core::metrics::MetricSet {
    let mut set = audit_core::metrics::MetricSet::zeroed("pg-auditor", METRICS);
    set.add(
        "AuditDurationSeconds",
        audit_core::metrics::Unit::Seconds,
        seconds,
    );
    match report {
        Some(report) => {
            set.count("TablesAudited", report.summary.total_tables as u64);
            set.count("ReadErrors", report.summary.tables_with_errors as u64);
            let not_run = &report.versioning_system.validation.unavailable;
            set.count("ChecksNotRun", not_run.len() as u64);
        }
        None => set.count("AuditFailures", 1),
    }
    set
}

/// What the function's role must allow: the reports, the secret (when `DB_SECRET_ARN` is
/// used) and IAM database authentication (when `DB_IAM_AUTH` is on).
pub const IAM_ACTIONS: &[&str] = &[
    "s3:PutObject",
    "secretsmanager:GetSecretValue",
    "rds-db:connect",
];

/// The variables the function reads besides [`settings::SETTINGS_VARIABLES`].
pub const CONNECTION_VARIABLES: &[&str] = &[
    connect::DATABASE_VARIABLES[0],
    connect::DATABASE_VARIABLES[1],
    connect::DATABASE_VARIABLES[2],
    connect::DATABASE_VARIABLES[3],
    connect::DATABASE_VARIABLES[4],
    "S3_BUCKET",
    "REPORT_PREFIX",
    "OUTPUT_DIR",
];

/// Every variable the function may be given: what [`Config::from_env`] reads, and logging.
pub static ENVIRONMENT: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut names = config_variables();
    names.extend_from_slice(&["LOG_LEVEL", "RUST_LOG"]);
    names
});

/// Every variable [`Config::from_env`] reads.
pub fn config_variables() -> Vec<&'static str> {
    let mut names = CONNECTION_VARIABLES.to_vec();
    names.extend_from_slice(settings::SETTINGS_VARIABLES);
    names
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Config {
            database: DatabaseConfig::from_env(env, "pg-auditor")?,
            settings: Settings::from_env(env)?,
            bucket: env.get("S3_BUCKET").map(str::to_owned),
            prefix: audit_core::aws::s3_key_prefix(
                env.get("REPORT_PREFIX").unwrap_or("database_audits/"),
            ),
            output_dir: env.get("OUTPUT_DIR").map(std::path::PathBuf::from),
        })
    }

    /// Whether this configuration needs the AWS SDK (secret, IAM token or S3).
    pub fn needs_aws(&self, bucket: Option<&str>) -> bool {
        self.database.needs_aws() || bucket.is_some() || self.bucket.is_some()
    }
}

pub use audit_core::postgres::Clients;

/// The connection target for this run: the secret read now, an IAM token made now.
pub async fn resolve_target(
    config: &Config,
    clients: Option<&Clients>,
) -> Result<Target, connect::ResolveError> {
    config
        .database
        .resolve(clients.map(|c| (&c.sdk, &c.secrets)))
        .await
}

/// The audit's timestamps: the report's `audit_timestamp` and the file-name stamp.
pub fn timestamps(now: chrono::DateTime<chrono::Utc>) -> (String, String) {
    (
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        now.format("%Y%m%d_%H%M%S").to_string(),
    )
}

/// Why an audit run failed once it started: the target could not be resolved, the TLS setup
/// could not be built, the audit itself failed, or the reports could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Resolve(#[from] connect::ResolveError),
    #[error(transparent)]
    Tls(#[from] connect::TargetError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Output(#[from] output::OutputError),
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] settings::EventFieldError),
    #[error("no report destination: set S3_BUCKET or pass `bucket` in the event")]
    NoBucket,
    #[error(transparent)]
    Failed(#[from] RunError),
}

impl audit_core::Classify for InvocationError {
    fn code(&self) -> &'static str {
        match self {
            InvocationError::InvalidEvent(_) => "InvalidEvent",
            InvocationError::NoBucket => "NoBucket",
            InvocationError::Failed(_) => "AuditFailed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, InvocationError::Failed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Overrides, Settings, TableName};

    #[test]
    fn configuration_errors_name_the_variable() {
        let error = |pairs: &[(&str, &str)]| {
            crate::Config::from_env(&Env::from_pairs(pairs.iter().copied()))
                .expect_err("invalid")
                .variable()
                .to_owned()
        };
        assert_eq!(error(&[]), "DATABASE_URL");
        assert_eq!(
            error(&[
                ("DATABASE_URL", "postgresql://h/db"),
                ("DB_SECRET_ARN", "arn:x")
            ]),
            "DB_SECRET_ARN"
        );
        assert_eq!(
            error(&[
                ("DATABASE_URL", "postgresql://h/db"),
                ("COUNT_MODE", "fast")
            ]),
            "COUNT_MODE"
        );
        assert_eq!(
            error(&[
                ("DATABASE_URL", "postgresql://h/db"),
                ("SAMPLE_ROWS", "1000")
            ]),
            "SAMPLE_ROWS"
        );
        assert_eq!(
            error(&[
                ("DATABASE_URL", "postgresql://h/db"),
                ("LOCK_TIMEOUT_MS", "0")
            ]),
            "LOCK_TIMEOUT_MS"
        );
        assert_eq!(
            error(&[("DATABASE_URL", "postgresql://h/db"), ("PARALLELISM", "0")]),
            "PARALLELISM"
        );
        assert_eq!(
            error(&[
                ("DATABASE_URL", "postgresql://h/db"),
                ("DB_IAM_AUTH", "true"),
                ("DB_SSLMODE", "disable")
            ]),
            "DB_SSLMODE"
        );
        let config = crate::Config::from_env(&Env::from_pairs([
            ("DATABASE_URL", "postgresql://h/db"),
            ("EXPECTED_SEED_TABLES", "a, geo.b"),
            ("SENSITIVE_COLUMN_PATTERNS", "-"),
            ("REPORT_PREFIX", "audits"),
        ]))
        .expect("valid");
        assert_eq!(
            config.settings.expected_seed_tables,
            [
                TableName::parse("a", "public"),
                TableName::parse("geo.b", "public")
            ]
        );
        assert!(config.settings.sensitive_column_patterns.is_empty());
        assert!(config.settings.expected_versioned_tables.is_none());
        assert_eq!(config.prefix, "audits/");
    }

    #[test]
    fn every_variable_read_is_declared() {
        let env = Env::from_pairs([("DATABASE_URL", "postgresql://h/db")]);
        crate::Config::from_env(&env).expect("valid");
        let declared: std::collections::BTreeSet<String> = crate::config_variables()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(env.names_read(), declared);
        for name in &declared {
            assert!(
                crate::ENVIRONMENT.contains(&name.as_str()),
                "{name} missing from ENVIRONMENT"
            );
        }
    }

    #[test]
    fn event_overrides_name_the_bad_field() {
        let parse = |v: serde_json::Value| Overrides::from_event(&v);
        assert_eq!(
            parse(serde_json::json!({"bucket": 5}))
                .expect_err("bad")
                .to_string(),
            "bucket: expected a non-empty string"
        );
        assert!(
            parse(serde_json::json!({"expected_seed_tables": [1]}))
                .expect_err("bad")
                .to_string()
                .starts_with("expected_seed_tables[0]")
        );
        assert!(
            parse(serde_json::json!({"sample_rows": -1}))
                .expect_err("bad")
                .to_string()
                .starts_with("sample_rows")
        );
        let overrides = parse(serde_json::json!({"count_mode": "exact", "expected_versioned_tables": "a,b", "source": "aws.events"})).expect("valid");
        let settings = Settings::default()
            .with_overrides(&overrides)
            .expect("valid");
        assert_eq!(settings.count_mode, CountMode::Exact);
        assert_eq!(settings.expected_versioned_tables.map(|t| t.len()), Some(2));
        let bad = Overrides {
            count_mode: Some("fast".into()),
            ..Overrides::default()
        };
        assert!(
            Settings::default()
                .with_overrides(&bad)
                .expect_err("bad")
                .to_string()
                .starts_with("count_mode")
        );
        assert!(audit_core::aws::is_eventbridge_event(
            &serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"})
        ));
        assert!(!audit_core::aws::is_eventbridge_event(
            &serde_json::json!({"bucket": "b"})
        ));
    }

    #[test]
    fn file_names_follow_the_original() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-09-22T21:56:26.5Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let (timestamp, stamp) = crate::timestamps(now);
        assert_eq!(stamp, "20250922_215626");
        assert_eq!(timestamp, "2025-09-22T21:56:26.500000+00:00");
        assert_eq!(
            audit_core::aws::s3_key_prefix("/database_audits"),
            "database_audits/"
        );
        assert_eq!(audit_core::aws::s3_key_prefix(""), "");
        assert_eq!(
            crate::settings::display_name("public", "t", &Settings::default()),
            "t"
        );
        assert_eq!(
            crate::settings::display_name("geo", "t", &Settings::default()),
            "geo.t"
        );
    }
}
