//! The OpenAPI 3 document (`{BASE_PATH}/openapi.json`) and the docs page
//! (`{BASE_PATH}/docs`): Swagger UI served from the binary, so it works without internet.
//! Paths are relative to the base path, which the document names as its server.

use crate::schema::{
    AuditEventIn, BatchCreated, Detail, EventStatus, ExportFormatDoc, Health, ValidationDetail,
};
use utoipa::OpenApi;
use utoipa::openapi::ServerBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

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
        crate::http::verify_chain,
    ),
    components(schemas(
        AuditEventIn,
        crate::search::EventRecord,
        BatchCreated,
        Detail,
        ValidationDetail,
        crate::event::FieldError,
        Health,
        EventStatus,
        ExportFormatDoc,
        crate::schema::ChainVerdictSchema,
        crate::schema::FirstInvalidSchema
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
