//! The bodies and parameters of the HTTP interface as they are documented and as the
//! handlers produce them: one definition serves both, so the OpenAPI document and the real
//! answers cannot drift apart.

use crate::event::FieldError;
use serde::Serialize;
use utoipa::{IntoParams, IntoResponses, ToSchema};

/// The create payload (the original service's example).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "event_timestamp": "2025-09-25T10:30:00Z", "functionality": "Authenticate",
    "event_type": "Login", "store_id": 101, "company_id": 5001, "user": "jdoe",
    "message": "User logged in successfully", "status": "Success",
    "additional_data": {"ip": "192.168.1.10", "browser": "Chrome"}}))]
pub struct AuditEventIn {
    /// RFC 3339; without an offset it is read in LOCAL_TIMEZONE. Default: now.
    #[schema(format = DateTime, nullable = false)]
    pub event_timestamp: Option<String>,
    /// A functionality name, e.g. Authenticate or Price Management.
    pub functionality: String,
    /// An event type of that functionality, e.g. Login.
    pub event_type: String,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    /// At most 20 characters.
    #[schema(max_length = 20)]
    pub user: Option<String>,
    pub message: Option<String>,
    pub status: EventStatus,
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub enum EventStatus {
    Success,
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCreated {
    pub created: u64,
    /// The new events' ids, in input order.
    pub ids: Vec<i64>,
}

/// FastAPI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Detail {
    pub detail: String,
}

/// FastAPI's 422 body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationDetail {
    pub detail: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// healthy or unhealthy.
    pub status: String,
    /// connected or unreachable.
    pub database: String,
}

/// The original service's search filters (search and export).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Events at or after this time (RFC 3339).
    pub from_date: Option<String>,
    /// Events at or before this time (RFC 3339).
    pub to_date: Option<String>,
    pub functionality: Option<String>,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    pub user: Option<String>,
    /// Case-insensitive substring of the message (`%` and `_` match themselves).
    pub message_pattern: Option<String>,
}

/// What to verify.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// The company whose chain is verified (a company-scoped key: one of its own).
    pub company_id: i64,
    /// From the first event at or after this time (RFC 3339); its link into the past is
    /// taken as given.
    pub from_date: Option<String>,
    /// To the last event before this time.
    pub to_date: Option<String>,
}

/// The first broken link.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct FirstInvalidSchema {
    /// Where the chain breaks (null: a row without a place in the chain).
    chain_seq: Option<i64>,
    /// The event there, when there is one.
    id: Option<i64>,
    /// hash-mismatch (an edited event), gap (a deleted one), fork or reordered (an inserted
    /// or moved one), head-mismatch (events rewritten with their hashes, or the newest ones
    /// removed, seen against a recorded head).
    reason: String,
}

/// A verified chain.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ChainVerdictSchema {
    company_id: Option<i64>,
    verified: bool,
    events_checked: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    /// The database's head (`chain_seq`, hex `row_hash`), when the range reaches the end.
    head: Option<serde_json::Value>,
    /// The furthest published head of this chain (`object`, `published_at`, `chain_seq`,
    /// `row_hash`), if any.
    anchor: Option<serde_json::Value>,
    /// How many distinct published heads of this chain were found on it.
    anchors_checked: u64,
    first_invalid: Option<FirstInvalidSchema>,
    /// What is wrong with the published heads that concern this chain (`problem`:
    /// overwritten, unreadable, misdated, conflict; and the objects involved). Any one
    /// leaves the chain unverified.
    anchor_problems: Vec<serde_json::Value>,
}

/// Which page of a search.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page (default 1). Prefer `cursor` for deep pages.
    #[param(minimum = 1, maximum = 2147483647)]
    pub page_number: Option<i64>,
    /// 1..5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub page_size: Option<i64>,
    /// The previous page's `X-Next-Cursor`.
    pub cursor: Option<String>,
}

/// What to export besides the filters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Export the 500 newest events instead of a search.
    pub recent: Option<bool>,
    /// xlsx (default) or csv.
    pub format: Option<ExportFormatDoc>,
}

/// The error answers every keyed operation may give.
#[derive(Debug, IntoResponses)]
pub enum KeyedErrors {
    #[response(status = 401, description = "Key missing or invalid")]
    Unauthorized(Detail),
    #[response(status = 403, description = "Company not allowed for this key")]
    Forbidden(Detail),
    #[response(
        status = 422,
        description = "Invalid field(s) or parameter(s), each located in `loc`; nothing stored"
    )]
    Invalid(ValidationDetail),
    #[response(status = 503, description = "Database unavailable")]
    Unavailable(Detail),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormatDoc {
    Xlsx,
    Csv,
}

impl Detail {
    pub fn new(detail: impl Into<String>) -> Self {
        Detail {
            detail: detail.into(),
        }
    }
}

impl Health {
    pub fn new(status: &str, database: &str) -> Self {
        Health {
            status: status.to_owned(),
            database: database.to_owned(),
        }
    }
}
