//! `table-updater`: safe record updates (seed 003). One request updates one DynamoDB item.
//!
//! The contract is the seed's, unchanged, because existing callers depend on it. The input is
//! `{id, attributes, enable_logging?, condition_expression?}`, plus `sort_key` for tables that
//! have one and `idempotency_key`. The success and error bodies and the error types keep their
//! HTTP statuses: 400 `InvalidInputError`, 400 `ValidationError`, 404 `RecordNotFoundError`,
//! 412 `ConditionalCheckFailed`, 500 `DatabaseError`. The configuration is `TABLE_NAME`,
//! `ENABLE_AUDIT_LOG`, `AUDIT_LOG_TABLE` (default `audit_logs`) and `LOG_LEVEL`.
//!
//! This crate so far holds the pure core:
//! - [`request::plan`] validates a request against the table's key schema and builds the update.
//!   Errors name the field. Numbers keep every digit ([`json`]), key attributes cannot be
//!   updated, and the update must fit an item.
//! - [`condition`] parses the caller's condition against DynamoDB's grammar and re-emits it with
//!   placeholders.
//! - [`UpdateError`] carries the seed's error types and statuses.
//!
//! The DynamoDB adapter (a transaction with the audit record, 404 told from 412 by
//! `ReturnValuesOnConditionCheckFailure`), the HTTP front ends, `main.rs` and the stack are the
//! rest of issue 6.

pub mod condition;
pub mod json;
pub mod request;

use audit_core::{ConfigError, Env};
use serde_json::{Value, json};

/// Every environment variable the function reads besides the `AWS_*` ones.
pub const ENVIRONMENT: &[&str] = &[
    "TABLE_NAME",
    "ENABLE_AUDIT_LOG",
    "AUDIT_LOG_TABLE",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub audit_by_default: bool,
    pub audit_table: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Config {
            table_name: env.required("TABLE_NAME", "the name of the DynamoDB table to update")?,
            audit_by_default: env.bool_or("ENABLE_AUDIT_LOG", false)?,
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

/// The seed's error types. Messages never carry internal details (SDK errors are logged, not
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
    /// The seed's message for missing fields, with `details.missing_fields`.
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
    /// The seed's `error` value.
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
    /// The seed's error body.
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

/// The seed's success body.
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
mod tests;
