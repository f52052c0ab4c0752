//! The OpenAPI 3 document (`{BASE_PATH}/openapi.json`) and the docs page
//! (`{BASE_PATH}/docs`): Swagger UI served from the binary, so it works without internet.
//! Paths are relative to the base path, which the document names as its server.

use serde::Serialize;
use utoipa::openapi::ServerBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

/// The create payload (the seed's example).
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
    pub detail: Vec<FieldErrorDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldErrorDoc {
    /// Where: `["body", "user"]`, `["body", 3, "status"]`, `["query", "page_size"]`.
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// healthy or unhealthy.
    pub status: String,
    /// connected or unreachable.
    pub database: String,
}

/// The seed's search filters (search and export).
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Audit events API",
        description = "The audit-event service: create, search and export audit events."
    ),
    paths(
        crate::http::healthcheck,
        crate::http::create_event,
        crate::http::create_batch,
        crate::http::recent_events,
        crate::http::search_events,
        crate::http::export_events,
        crate::http::event_type_names,
    ),
    components(schemas(
        AuditEventIn,
        crate::search::EventRecord,
        BatchCreated,
        Detail,
        ValidationDetail,
        FieldErrorDoc,
        Health,
        EventStatus,
        ExportFormatDoc
    ))
)]
struct ApiDoc;

/// The document for a base path.
pub fn document(base_path: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![ServerBuilder::new().url(base_path.to_owned()).build()]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
            crate::http::API_KEY_HEADER,
        ))),
    );
    doc
}

/// `{base}/openapi.json` and `{base}/docs`. The page loads nothing from elsewhere: Swagger UI
/// is vendored, and its spec validator (by default `validator.swagger.io`, called with the
/// document's address on any host but localhost) is off.
pub fn docs_router(base_path: &str) -> axum::Router {
    let ui = utoipa_swagger_ui::SwaggerUi::new(format!("{base_path}/docs"))
        .url(format!("{base_path}/openapi.json"), document(base_path))
        .config(utoipa_swagger_ui::Config::default().validator_url("none"));
    axum::Router::from(ui)
}
