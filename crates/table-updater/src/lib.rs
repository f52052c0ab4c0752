//! `table-updater`: safe record updates. One request updates one DynamoDB item.
//!
//! The contract is the original updater's, unchanged, because existing callers depend on it. The input is
//! `{id, attributes, enable_logging?, condition_expression?}`, plus `sort_key` for tables that
//! have one and `idempotency_key`. The success and error bodies and the error types keep their
//! HTTP statuses: 400 `InvalidInputError`, 400 `ValidationError`, 404 `RecordNotFoundError`,
//! 412 `ConditionalCheckFailed`, 500 `DatabaseError`. The configuration is `TABLE_NAME`,
//! `ENABLE_AUDIT_LOG`, `ALLOW_AUDIT_OPT_OUT` (default false: a request may turn auditing on,
//! never off), `AUDIT_LOG_TABLE` (default `audit_logs`) and `LOG_LEVEL`.
//!
//! - [`front`] reads a direct invocation, API Gateway REST (1.0), an HTTP API or a function URL
//!   (2.0), and shapes the response for it.
//! - [`request::plan`] validates the request against the table's key schema (read once at cold
//!   start) and builds the update. Errors name the field. Numbers keep every digit ([`json`]),
//!   key attributes cannot be updated, and the update must fit an item.
//! - [`condition`] parses the caller's condition against DynamoDB's grammar and re-emits it with
//!   placeholders: caller text never reaches DynamoDB.
//! - [`updater::Updater`] applies it. A missing item is 404 and a failed caller condition 412,
//!   told apart by `ReturnValuesOnConditionCheckFailure`. With audit on, the update and the audit
//!   record are one transaction. An idempotency key makes a retry a replay.
//!
//! Contract: bad input changes nothing and gets a 400 naming the field. Internal details
//! (SDK errors) are logged, never returned.

pub mod condition;
pub mod front;
pub mod handler;
pub mod json;
pub mod request;
pub mod updater;

use audit_core::{ConfigError, Env};
use serde_json::{Value, json};

/// Every IAM action the code calls. A transaction is authorised by its parts' actions
/// (`UpdateItem` on the table, `PutItem` on the audit table); `GetItem` on the audit table tells a
/// retry from another request that reuses an idempotency key.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeTable",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
];

/// The metrics each request writes (EMF, namespace `auditkit`, `function=table-updater`).
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::Count;
    &[
        ("UpdatesApplied", Count),
        ("UpdatesReplayed", Count),
        ("ConditionFailures", Count),
        ("NotFound", Count),
        ("RequestsRefused", Count),
        ("UpdateErrors", Count),
    ]
};

/// The metric one request's outcome counts: applied (or replayed), refused by its condition,
/// its record missing, refused as invalid, or failed in DynamoDB.
pub fn outcome_metrics(
    outcome: Result<updater::Applied, &UpdateError>,
) -> audit_core::metrics::MetricSet {
    let mut set = audit_core::metrics::MetricSet::zeroed("table-updater", METRICS);
    let name = match outcome {
        Ok(updater::Applied::Updated) => "UpdatesApplied",
        Ok(updater::Applied::Replayed) => "UpdatesReplayed",
        Err(UpdateError::ConditionalCheckFailed) => "ConditionFailures",
        Err(UpdateError::RecordNotFound) => "NotFound",
        Err(UpdateError::InvalidInput { .. } | UpdateError::Validation { .. }) => "RequestsRefused",
        Err(UpdateError::Database) => "UpdateErrors",
    };
    set.count(name, 1);
    set
}

/// Every environment variable the function reads besides the `AWS_*` ones.
pub const ENVIRONMENT: &[&str] = &[
    "TABLE_NAME",
    "ENABLE_AUDIT_LOG",
    "AUDIT_LOG_TABLE",
    "ALLOW_AUDIT_OPT_OUT",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub audit_by_default: bool,
    /// `ALLOW_AUDIT_OPT_OUT` (false): whether a request's `enable_logging: false` may switch
    /// off the auditing `ENABLE_AUDIT_LOG` turns on.
    pub allow_audit_opt_out: bool,
    pub audit_table: String,
}

impl Config {
    /// Whether requests are audited, and whether they may say otherwise.
    pub fn audit_policy(&self) -> request::AuditPolicy {
        request::AuditPolicy {
            by_default: self.audit_by_default,
            requests_may_opt_out: self.allow_audit_opt_out,
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Config {
            table_name: env.required("TABLE_NAME", "the name of the DynamoDB table to update")?,
            audit_by_default: env.bool_or("ENABLE_AUDIT_LOG", false)?,
            allow_audit_opt_out: env.bool_or("ALLOW_AUDIT_OPT_OUT", false)?,
            audit_table: env
                .get("AUDIT_LOG_TABLE")
                .unwrap_or("audit_logs")
                .to_owned(),
        })
    }
}

/// A key attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    S,
    N,
    B,
}

/// One key attribute of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: String,
    pub kind: KeyKind,
}

/// The table's key, read once at cold start (`DescribeTable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
}

/// The original updater's error types. Messages never carry internal details (SDK errors are logged, not
/// returned).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateError {
    #[error("{message}")]
    InvalidInput { message: String, details: Value },
    #[error("{message}")]
    Validation { message: String, field: String },
    #[error("Record not found")]
    RecordNotFound,
    #[error("The condition expression was not met")]
    ConditionalCheckFailed,
    #[error("The update could not be completed; try again")]
    Database,
}

impl UpdateError {
    pub fn invalid_input(message: impl Into<String>, field: &str) -> Self {
        UpdateError::InvalidInput {
            message: message.into(),
            details: json!({ "field": field }),
        }
    }
    /// The original updater's message for missing fields, with `details.missing_fields`.
    pub fn missing_fields(fields: &[&str]) -> Self {
        let message = match fields {
            ["id", "attributes"] => "ID and attributes are required".to_owned(),
            [only] => format!("{only} is required"),
            _ => format!("{} are required", fields.join(" and ")),
        };
        UpdateError::InvalidInput {
            message,
            details: json!({ "missing_fields": fields }),
        }
    }
    pub fn validation(message: impl Into<String>, field: &str) -> Self {
        UpdateError::Validation {
            message: message.into(),
            field: field.to_owned(),
        }
    }
    /// The original updater's `error` value.
    pub fn error_type(&self) -> &'static str {
        match self {
            UpdateError::InvalidInput { .. } => "InvalidInputError",
            UpdateError::Validation { .. } => "ValidationError",
            UpdateError::RecordNotFound => "RecordNotFoundError",
            UpdateError::ConditionalCheckFailed => "ConditionalCheckFailed",
            UpdateError::Database => "DatabaseError",
        }
    }
    pub fn status(&self) -> u16 {
        match self {
            UpdateError::InvalidInput { .. } | UpdateError::Validation { .. } => 400,
            UpdateError::RecordNotFound => 404,
            UpdateError::ConditionalCheckFailed => 412,
            UpdateError::Database => 500,
        }
    }
    /// The original updater's error body.
    pub fn body(&self, timestamp: &str) -> Value {
        let mut body = json!({
            "success": false,
            "error": self.error_type(),
            "message": self.to_string(),
            "timestamp": timestamp,
        });
        match self {
            UpdateError::InvalidInput { details, .. } => body["details"] = details.clone(),
            UpdateError::Validation { field, .. } => body["details"] = json!({ "field": field }),
            _ => {}
        }
        body
    }
}

/// RFC 3339 UTC with milliseconds, as the original updater writes timestamps.
pub fn timestamp(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The original updater's success body.
pub fn success_body(record_id: &str, updated: &[&str], timestamp: &str) -> Value {
    json!({
        "success": true,
        "message": "Record updated successfully",
        "updated_id": record_id,
        "updated_attributes": updated,
        "timestamp": timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_once_under_its_own_metric_in_valid_emf() {
        let cases: [(Result<updater::Applied, UpdateError>, &str); 6] = [
            (Ok(updater::Applied::Updated), "UpdatesApplied"),
            (Ok(updater::Applied::Replayed), "UpdatesReplayed"),
            (
                Err(UpdateError::ConditionalCheckFailed),
                "ConditionFailures",
            ),
            (Err(UpdateError::RecordNotFound), "NotFound"),
            (Err(UpdateError::validation("m", "f")), "RequestsRefused"),
            (Err(UpdateError::Database), "UpdateErrors"),
        ];
        for (outcome, name) in cases {
            let set = outcome_metrics(outcome.as_ref().copied());
            let lines = set.lines(1);
            let record = audit_core::metrics::check_line(&lines[0]).unwrap();
            let total: f64 = METRICS.iter().map(|(n, _)| record.total(n)).sum();
            assert_eq!((record.total(name), total), (1.0, 1.0), "{name}");
            assert_eq!(
                record.metrics.len(),
                METRICS.len(),
                "every count written, 0 or not"
            );
        }
    }

    #[test]
    fn the_original_error_types_keep_their_statuses() {
        assert_eq!(
            [
                UpdateError::invalid_input("m", "f").status(),
                UpdateError::validation("m", "f").status(),
                UpdateError::RecordNotFound.status(),
                UpdateError::ConditionalCheckFailed.status(),
                UpdateError::Database.status(),
            ],
            [400, 400, 404, 412, 500]
        );
        assert_eq!(UpdateError::Database.body("t")["error"], "DatabaseError");
        assert!(UpdateError::Database.body("t").get("details").is_none());
    }

    #[test]
    fn the_declared_environment_is_exactly_what_the_loader_reads() {
        let env = Env::from_pairs([("TABLE_NAME", "users")]);
        let read = audit_core::environment_read(&env, Config::from_env).unwrap();
        let declared: std::collections::BTreeSet<String> =
            ENVIRONMENT.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(read, declared);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.audit_table, "audit_logs");
        assert!(!config.audit_by_default);
        assert_eq!(
            Config::from_env(&Env::default()).unwrap_err().variable(),
            "TABLE_NAME"
        );
        let bad = Env::from_pairs([("TABLE_NAME", "t"), ("ENABLE_AUDIT_LOG", "maybe")]);
        assert_eq!(
            Config::from_env(&bad).unwrap_err().variable(),
            "ENABLE_AUDIT_LOG"
        );
    }
}
