//! Tracing: JSON lines on stdout (what CloudWatch Logs and Logs Insights parse), one object
//! per event with the current span's fields flattened in, so every line of a batch handler
//! carries the record it belongs to.
//!
//! The level comes from `LOG_LEVEL` (the original functions' convention: `DEBUG`, `INFO`, `WARNING`,
//! `ERROR`, any case), falling back to `RUST_LOG` (full `EnvFilter` directives), then `info`.

use crate::config::{ConfigError, Env};
use tracing_subscriber::EnvFilter;

const LOG_LEVELS: &str = "one of TRACE, DEBUG, INFO, WARNING, ERROR, OFF";

/// The filter directive the environment asks for, or the variable that is invalid.
pub fn log_filter(env: &Env) -> Result<EnvFilter, ConfigError> {
    if let Some(level) = env.get("LOG_LEVEL") {
        let directive = match level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "critical" | "fatal" => "error",
            "off" => "off",
            _ => return Err(ConfigError::invalid("LOG_LEVEL", level, LOG_LEVELS)),
        };
        return Ok(EnvFilter::new(directive));
    }
    match env.get("RUST_LOG") {
        Some(directives) => EnvFilter::try_new(directives).map_err(|e| {
            ConfigError::invalid(
                "RUST_LOG",
                directives,
                format!("EnvFilter directives ({e})"),
            )
        }),
        None => Ok(EnvFilter::new("info")),
    }
}

/// Installs the JSON subscriber. A second call (tests) keeps the first subscriber.
pub fn init(filter: EnvFilter) {
    let _already_installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// The span for one record of a batch (an SQS message, a stream record): every log line
/// inside it names the record, so a failure can be traced to the item Lambda redelivers.
pub fn record_span(record_id: &str) -> tracing::Span {
    tracing::info_span!("record", record_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> Result<String, ConfigError> {
        log_filter(&Env::from_pairs(pairs.iter().copied())).map(|f| f.to_string())
    }

    #[test]
    fn log_level_uses_the_original_spelling_and_wins_over_rust_log() {
        assert_eq!(
            filter(&[("LOG_LEVEL", "WARNING"), ("RUST_LOG", "trace")]).unwrap(),
            "warn"
        );
        assert_eq!(filter(&[("LOG_LEVEL", "Debug")]).unwrap(), "debug");
        assert_eq!(
            filter(&[("RUST_LOG", "db_scanner=debug")]).unwrap(),
            "db_scanner=debug"
        );
        assert_eq!(filter(&[]).unwrap(), "info");
    }

    #[test]
    fn an_unknown_level_names_the_variable() {
        let err = filter(&[("LOG_LEVEL", "verbose")]).unwrap_err();
        assert_eq!(err.variable(), "LOG_LEVEL");
        assert!(err.to_string().contains("WARNING"), "{err}");
        assert_eq!(
            filter(&[("RUST_LOG", "[[[")]).unwrap_err().variable(),
            "RUST_LOG"
        );
    }
}
