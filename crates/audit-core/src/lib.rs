//! What the auditkit functions share, and nothing else.
//!
//! Every function crate (`db-scanner`, `log-detector`, `log-downloader`, ...) starts the same
//! way and reports the same way: [`startup::init`] installs JSON tracing and loads the
//! function's typed [`config`] from environment variables, stopping the cold start with one
//! line naming any missing or invalid variable; [`aws::sdk_config`] builds the SDK
//! configuration once; handlers return [`error::FunctionError`], whose Lambda `errorType`
//! says whether a retry can help; batch handlers report partial failures through [`batch`].
//! [`messages`] holds the payloads that travel between functions and [`tracking`] the
//! log-file tracking table's item, which two functions read and write; [`postgres`] (feature
//! `postgres`) how `pg-auditor` and `audit-api` reach PostgreSQL (URLs, RDS secrets, IAM tokens, TLS),
//! and [`spreadsheet`] how both write CSV cells a spreadsheet will not run as formulas. A piece of code belongs
//! here only when two or more functions use it.

pub mod aws;
pub mod backoff;
pub mod batch;
pub mod config;
pub mod digest;
pub mod error;
pub mod event_chain;
pub mod messages;
pub mod metrics;
pub mod number;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "s3-upload")]
pub mod s3_upload;
pub mod spreadsheet;
pub mod startup;
pub mod telemetry;
pub mod tracking;

pub use config::{ConfigError, Env};

/// Environment variables every function reads at cold start (besides the `AWS_*` ones Lambda
/// and the SDK provide): the log level.
pub const COMMON_ENVIRONMENT: &[&str] = &["LOG_LEVEL", "RUST_LOG"];

/// The variables `load` reads, plus [`COMMON_ENVIRONMENT`], minus the `AWS_*` ones: what a
/// function's declared `ENVIRONMENT` must equal. `env` must be a valid configuration, so the
/// loader reads every variable rather than stopping at the first problem.
pub fn environment_read<T>(
    env: &Env,
    load: impl FnOnce(&Env) -> Result<T, ConfigError>,
) -> Result<std::collections::BTreeSet<String>, ConfigError> {
    load(env)?;
    let mut names = env.names_read();
    names.retain(|n| !n.starts_with("AWS_"));
    names.extend(COMMON_ENVIRONMENT.iter().map(|s| (*s).to_owned()));
    Ok(names)
}
pub use error::{Classify, FunctionError};

/// Now, in epoch milliseconds (the unit of RDS `LastWritten` and the tracking table).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
