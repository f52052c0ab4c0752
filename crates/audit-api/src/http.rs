//! The HTTP interface: one axum router, served by `audit-api serve` and by the Lambda
//! (through `lambda_http`). Handlers are thin: parse with [`crate::model`], act with
//! [`crate::db`], answer in FastAPI's shapes.

use crate::db::{self, Database, DbError};
use crate::event::{self, Catalog, FieldError};
use crate::export::{EventWriter, ROWS_PER_SHEET};
use crate::json_text;
use crate::keys::ApiKeys;
use crate::search::ExportFormat;
use crate::search::{self, ExportRequest, RECENT_EVENTS, SearchFilters};
use crate::sql::{self, Scope, Selection};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The API key header, as the seed.
pub const API_KEY_HEADER: &str = "CSIQ-APIKEY";
/// The next page's cursor, on search responses that have one.
pub const NEXT_CURSOR_HEADER: &str = "X-Next-Cursor";
pub const HAS_MORE_HEADER: &str = "X-Has-More";

/// The shortest time between two catalog reads caused by unknown names: a new functionality
/// is known to every process within this time.
pub const CATALOG_REREAD_INTERVAL: Duration = Duration::from_secs(1);

/// What every request shares.
#[derive(Debug)]
pub struct App {
    pub db: Database,
    keys: ApiKeys,
    catalog: RwLock<Arc<Catalog>>,
    /// When the catalog was last read; held while it is read, so concurrent requests that
    /// name something unknown wait for one read instead of each making their own.
    catalog_read_at: tokio::sync::Mutex<Option<Instant>>,
    catalog_reads: AtomicU64,
    /// Migrations and this month's partitions, checked once per process before the first
    /// request that touches the tables (a Lambda does not wait for them at cold start).
    ready: tokio::sync::OnceCell<()>,
    pub base_path: String,
    cors_origins: Vec<String>,
    max_body_bytes: usize,
    body_timeout: Duration,
    export_max_rows: u64,
    export_dir: std::path::PathBuf,
    pub maintenance: crate::maintain::MaintenanceSettings,
}

impl App {
    pub fn new(
        config: &crate::Config,
        db: Database,
        keys: ApiKeys,
        s3: Option<aws_sdk_s3::Client>,
    ) -> Self {
        App {
            db,
            keys,
            catalog: RwLock::default(),
            catalog_read_at: tokio::sync::Mutex::new(None),
            catalog_reads: AtomicU64::new(0),
            ready: tokio::sync::OnceCell::new(),
            base_path: config.base_path.clone(),
            cors_origins: config.cors_origins.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            export_max_rows: config.export_max_rows,
            export_dir: config.export_dir.clone(),
            maintenance: crate::maintenance_settings(config, s3),
        }
    }

    /// Applies pending migrations and creates the partitions due, once per process.
    pub async fn ensure_ready(&self) -> Result<(), ApiError> {
        self.ready
            .get_or_try_init(|| async {
                db::migrate(&self.db).await?;
                crate::maintain::ensure_partitions(&self.db, &self.maintenance, chrono::Utc::now())
                    .await
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                self.reload_catalog().await?;
                Ok::<(), DbError>(())
            })
            .await
            .map(|_| ())
            .map_err(ApiError::from)
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    async fn reload_catalog(&self) -> Result<Arc<Catalog>, DbError> {
        let mut read_at = self.catalog_read_at.lock().await;
        self.read_catalog(&mut read_at).await
    }

    async fn read_catalog(&self, read_at: &mut Option<Instant>) -> Result<Arc<Catalog>, DbError> {
        let fresh = Arc::new(db::load_catalog(&self.db).await?);
        if let Ok(mut guard) = self.catalog.write() {
            *guard = Arc::clone(&fresh);
        }
        *read_at = Some(Instant::now());
        self.catalog_reads.fetch_add(1, Ordering::Relaxed);
        Ok(fresh)
    }

    /// How many times this process has read the catalog.
    pub fn catalog_reads(&self) -> u64 {
        self.catalog_reads.load(Ordering::Relaxed)
    }

    /// The catalog, read again when a request names something it does not hold (a type
    /// added by another deployment since this process read it), but at most once per
    /// [`CATALOG_REREAD_INTERVAL`]: a client sending unknown names cannot make every request
    /// a catalog read.
    async fn catalog_knowing<'a>(
        &self,
        names: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Arc<Catalog>, DbError> {
        let catalog = self.catalog();
        if names.into_iter().all(|(f, t)| catalog.knows(f, t)) {
            return Ok(catalog);
        }
        let mut read_at = self.catalog_read_at.lock().await;
        if read_at.is_some_and(|at| at.elapsed() < CATALOG_REREAD_INTERVAL) {
            // Read moments ago (perhaps by the request this one waited for): the name is
            // unknown, not new.
            return Ok(self.catalog());
        }
        self.read_catalog(&mut read_at).await
    }
}

/// An answer other than success, in FastAPI's shapes.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    Forbidden(String),
    NotFound(String),
    Validation(Vec<FieldError>),
    TooLarge(usize),
    /// The body did not arrive within `BODY_TIMEOUT_MS`.
    BodyTimeout(Duration),
    /// The client broke off while sending the body.
    BodyUnreadable,
    Unavailable,
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(why) => {
                tracing::warn!("database unavailable: {why}");
                ApiError::Unavailable
            }
            DbError::NoPartition => ApiError::Validation(vec![FieldError::new(
                vec![json!("body"), json!("event_timestamp")],
                "value_error",
                "No stored month holds this timestamp: events are kept for RETENTION_MONTHS \
                 and accepted up to the months prepared ahead",
            )]),
            DbError::Query(e) => ApiError::Internal(format!(
                "database: {}",
                e.as_db_error().map_or_else(
                    || e.to_string(),
                    |d| format!("{} ({})", d.message(), d.code().code())
                )
            )),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized(detail) => {
                (StatusCode::UNAUTHORIZED, json!({ "detail": detail }))
            }
            ApiError::Forbidden(detail) => (StatusCode::FORBIDDEN, json!({ "detail": detail })),
            ApiError::NotFound(detail) => (StatusCode::NOT_FOUND, json!({ "detail": detail })),
            ApiError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "detail": errors }),
            ),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": format!("Request body too large: the limit is {limit} bytes") }),
            ),
            ApiError::BodyTimeout(limit) => (
                StatusCode::REQUEST_TIMEOUT,
                json!({ "detail": format!("Request body not received within {} ms", limit.as_millis()) }),
            ),
            ApiError::BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                json!({ "detail": "The request body could not be read" }),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "detail": "Database unavailable, try again later" }),
            ),
            ApiError::Internal(why) => {
                // The cause goes to the log only: a client learns nothing about internals.
                tracing::error!("internal error: {why}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "detail": "Internal server error" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

/// The router: the seed's paths under the base path, the docs, FastAPI-shaped fallbacks.
pub fn router(app: Arc<App>) -> Router {
    let events = Router::new()
        .route("/create", post(create_event))
        .route("/create-batch", post(create_batch))
        .route("/recent", get(recent_events))
        .route("/search", get(search_events))
        .route("/export", get(export_events))
        .route(
            "/get-eventtypenames-by-functionalityname",
            get(event_type_names),
        )
        // Inside the key check: a body is read only for a client with a key.
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            body_deadline,
        ));
    let protected = Router::new().nest("/api/audit-events", events).route_layer(
        middleware::from_fn_with_state(Arc::clone(&app), require_key),
    );
    let api = Router::new()
        .route("/api/healthcheck", get(healthcheck))
        .merge(protected)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&app));
    let docs: Router = crate::openapi::docs_router(&app.base_path);
    let mut router = Router::new()
        .nest(&app.base_path, api)
        .merge(docs)
        .fallback(not_found)
        // Bodies are read whole (as `Bytes`) only up to the limit; the 413 is ours.
        .layer(DefaultBodyLimit::max(app.max_body_bytes));
    if !app.cors_origins.is_empty() {
        router = router.layer(cors(&app.cors_origins));
    }
    router
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("csiq-apikey"),
        ])
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::HeaderName::from_static("x-next-cursor"),
            header::HeaderName::from_static("x-has-more"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "detail": "Not Found" })),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "detail": "Method Not Allowed" })),
    )
        .into_response()
}

/// Checks `CSIQ-APIKEY` and hands the key's scope to the handler. The key itself is never
/// logged or echoed.
/// The body, whole, within `BODY_TIMEOUT_MS`: a client that announces a body and trickles it
/// (or never sends it) gets a 408 and its connection back, instead of holding it open. Read
/// here up to the size limit (a larger body is our 413 at once), then handed on.
async fn body_deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, app.max_body_bytes);
    let bytes = match tokio::time::timeout(app.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large = e.into_inner().is::<http_body_util::LengthLimitError>();
            return if too_large {
                ApiError::TooLarge(app.max_body_bytes)
            } else {
                ApiError::BodyUnreadable
            }
            .into_response();
        }
        Err(_) => return ApiError::BodyTimeout(app.body_timeout).into_response(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn require_key(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(API_KEY_HEADER)
        .ok_or(ApiError::Unauthorized("API Key is missing"))?;
    let scope = presented
        .to_str()
        .ok()
        .and_then(|key| app.keys.check(key))
        .ok_or(ApiError::Unauthorized("Invalid API Key"))?;
    request.extensions_mut().insert(scope);
    Ok(next.run(request).await)
}

#[utoipa::path(get, path = "/api/healthcheck", tag = "health",
    responses(
        (status = 200, description = "Service and database are up", body = crate::openapi::Health),
        (status = 503, description = "The database is unreachable", body = crate::openapi::Health),
    ))]
pub async fn healthcheck(State(app): State<Arc<App>>) -> Response {
    match db::ping(&app.db, Duration::from_secs(3)).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "healthy", "database": "connected" })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("healthcheck: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unhealthy", "database": "unreachable" })),
            )
                .into_response()
        }
    }
}

/// The request body as JSON, or FastAPI's 422 for malformed JSON (and our 413).
fn json_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<(Value, Bytes), ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(limit)
        } else {
            ApiError::Validation(vec![FieldError::new(
                vec![json!("body")],
                "body_read",
                rejection.body_text(),
            )])
        }
    })?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            vec![json!("body"), json!(e.column())],
            "json_invalid",
            format!("JSON decode error: {e}"),
        )])
    })?;
    Ok((value, bytes))
}

/// A scoped key may only touch its companies' events.
fn check_company(scope: &Scope, company: Option<i64>, loc: Vec<Value>) -> Result<(), ApiError> {
    match (scope, company) {
        (Scope::All, _) => Ok(()),
        (Scope::Companies(allowed), Some(c)) if allowed.contains(&c) => Ok(()),
        (Scope::Companies(_), Some(c)) => Err(ApiError::Forbidden(format!(
            "This API key is not allowed for company_id {c}"
        ))),
        (Scope::Companies(_), None) => Err(ApiError::Validation(vec![FieldError::new(
            loc,
            "missing",
            "company_id is required with a company-scoped API key",
        )])),
    }
}

#[utoipa::path(post, path = "/api/audit-events/create", tag = "audit-events",
    request_body = crate::openapi::AuditEventIn,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Stored", body = crate::search::EventRecord),
        (status = 413, description = "Body too large", body = crate::openapi::Detail),
        crate::openapi::KeyedErrors,
    ))]
pub async fn create_event(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (value, bytes) = read_body(&app, body).await?;
    let catalog = catalog_for(&app, std::slice::from_ref(&value)).await?;
    let mut event =
        event::validate_event(&value, &catalog, &[json!("body")]).map_err(ApiError::Validation)?;
    json_text::exact_additional_data(&bytes, std::slice::from_mut(&mut event), false)
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let stored = store(&app, &scope, std::slice::from_ref(&event), |_| {
        vec![json!("body"), json!("company_id")]
    })
    .await?;
    let record = stored
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("insert returned no row".to_owned()))?;
    Ok(Json(record).into_response())
}

/// Both creates start here: the body read (413 and malformed JSON answered), the schema
/// ready. The bytes come back too: `additional_data` is stored as they spell it.
async fn read_body(
    app: &App,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Value, Bytes), ApiError> {
    let (value, bytes) = json_body(body, app.max_body_bytes)?;
    app.ensure_ready().await?;
    Ok((value, bytes))
}

/// The catalog, knowing every functionality and event type `items` name (reloaded once if
/// one is new to this process).
async fn catalog_for(app: &App, items: &[Value]) -> Result<Arc<Catalog>, ApiError> {
    Ok(app
        .catalog_knowing(
            items
                .iter()
                .filter_map(event::referenced_names)
                .map(|(f, t)| (f, Some(t))),
        )
        .await?)
}

/// Checks every event against the key's scope (`company_loc(i)` locates event `i`'s
/// company in the error), then stores them all in one statement.
async fn store(
    app: &App,
    scope: &Scope,
    events: &[event::NewEvent],
    company_loc: impl Fn(usize) -> Vec<Value>,
) -> Result<Vec<search::EventRecord>, ApiError> {
    for (index, event) in events.iter().enumerate() {
        check_company(scope, event.company_id, company_loc(index))?;
    }
    Ok(db::insert_events(&app.db, events).await?)
}

#[utoipa::path(post, path = "/api/audit-events/create-batch", tag = "audit-events",
    request_body(content = Vec<crate::openapi::AuditEventIn>, description = "1 to 1,000 events; all are stored or none"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "All stored", body = crate::openapi::BatchCreated),
        (status = 413, description = "Body too large", body = crate::openapi::Detail),
        crate::openapi::KeyedErrors,
    ))]
pub async fn create_batch(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (value, bytes) = read_body(&app, body).await?;
    let (items, prefix) = event::batch_items(&value).unwrap_or_default();
    let catalog = catalog_for(&app, items).await?;
    let mut events = event::validate_batch(&value, &catalog).map_err(ApiError::Validation)?;
    json_text::exact_additional_data(&bytes, &mut events, true)
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let stored = store(&app, &scope, &events, |index| {
        let mut loc = prefix.clone();
        loc.extend([json!(index), json!("company_id")]);
        loc
    })
    .await?;
    Ok(Json(json!({
        "created": stored.len(),
        "ids": stored.iter().map(|e| e.id).collect::<Vec<_>>(),
    }))
    .into_response())
}

fn query_pairs(raw: Option<String>) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| {
            ApiError::Validation(vec![FieldError::new(
                vec![json!("query")],
                "query_parsing",
                format!("Invalid query string: {e}"),
            )])
        })?;
    Ok(search::query_map(pairs))
}

/// Resolves the filters' names and applies the key's scope.
async fn selection(
    app: &App,
    scope: &Scope,
    filters: SearchFilters,
) -> Result<Selection, ApiError> {
    let functionality_id = match &filters.functionality {
        None => None,
        Some(name) => {
            let catalog = app.catalog_knowing([(name.as_str(), None)]).await?;
            Some(catalog.functionality_id(name).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::new(
                    vec![json!("query"), json!("functionality")],
                    "value_error",
                    format!("Unknown functionality '{name}'"),
                )])
            })?)
        }
    };
    let companies = match scope {
        Scope::All => None,
        Scope::Companies(allowed) => {
            if let Some(c) = filters.company_id
                && !allowed.contains(&c)
            {
                return Err(ApiError::Forbidden(format!(
                    "This API key is not allowed for company_id {c}"
                )));
            }
            Some(allowed.clone())
        }
    };
    Ok(Selection {
        filters,
        functionality_id,
        companies,
    })
}

#[utoipa::path(get, path = "/api/audit-events/recent", tag = "audit-events",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The 500 newest events, newest first", body = Vec<crate::search::EventRecord>),
        crate::openapi::KeyedErrors,
    ))]
pub async fn recent_events(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
) -> Result<Response, ApiError> {
    app.ensure_ready().await?;
    let selection = selection(&app, &scope, SearchFilters::default()).await?;
    let statement = sql::select_events(&selection, None, Some(RECENT_EVENTS));
    let events = db::query_events(&app.db, &statement).await?;
    Ok(Json(events).into_response())
}

#[utoipa::path(get, path = "/api/audit-events/search", tag = "audit-events",
    params(crate::openapi::FilterParams, crate::openapi::PageParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page, newest first. `X-Has-More` says whether more \
            follow; `X-Next-Cursor` is the `cursor` of the next page.",
            body = Vec<crate::search::EventRecord>,
            headers(("X-Has-More" = String, description = "true or false"),
                    ("X-Next-Cursor" = String, description = "present when more follow"))),
        crate::openapi::KeyedErrors,
    ))]
pub async fn search_events(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_pairs(raw)?;
    let request = search::parse_search(&query).map_err(ApiError::Validation)?;
    app.ensure_ready().await?;
    let selection = selection(&app, &scope, request.filters).await?;
    let statement =
        sql::select_events(&selection, Some(&request.page), Some(request.page_size + 1));
    let rows = db::query_events(&app.db, &statement).await?;
    let (page, next) = search::split_page(rows, request.page_size);
    let mut headers = HeaderMap::new();
    headers.insert(
        HAS_MORE_HEADER,
        HeaderValue::from_static(if next.is_some() { "true" } else { "false" }),
    );
    if let Some(cursor) = next
        && let Ok(value) = HeaderValue::from_str(&cursor.encode())
    {
        headers.insert(NEXT_CURSOR_HEADER, value);
    }
    Ok((headers, Json(page)).into_response())
}

#[utoipa::path(get, path = "/api/audit-events/export", tag = "audit-events",
    params(crate::openapi::ExportParams, crate::openapi::FilterParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "An .xlsx workbook (or CSV with format=csv) of every matching \
            event, newest first; past 1,048,575 rows the workbook continues on another sheet",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        crate::openapi::KeyedErrors,
    ))]
pub async fn export_events(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_pairs(raw)?;
    let ExportRequest {
        filters,
        recent,
        format,
    } = search::parse_export(&query).map_err(ApiError::Validation)?;
    app.ensure_ready().await?;
    let (selection, limit) = if recent {
        (
            selection(&app, &scope, SearchFilters::default()).await?,
            RECENT_EVENTS,
        )
    } else {
        let limit = i64::try_from(app.export_max_rows).unwrap_or(i64::MAX - 1) + 1;
        let selection = selection(&app, &scope, filters).await?;
        // Counted first (no further than one past the limit): an export that would be
        // refused writes nothing.
        let matching = db::count_events(&app.db, &sql::count_events(&selection, limit)).await?;
        if matching >= limit {
            return Err(too_many_to_export(app.export_max_rows));
        }
        (selection, limit)
    };
    let statement = sql::select_events(&selection, None, Some(limit));
    let (file, rows) =
        write_export(&app.db, &statement, format, ROWS_PER_SHEET, &app.export_dir).await?;
    if !recent && rows > app.export_max_rows {
        // Events stored between the count and the export.
        return Err(too_many_to_export(app.export_max_rows));
    }
    let name = format!(
        "audit_events_{}.{}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        format.extension()
    );
    let length = file.metadata().map(|m| m.len()).ok();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert("X-Export-Rows", HeaderValue::from(rows));
    Ok(response)
}

/// Streams the query's rows into a file on a blocking thread; returns the rewound file and
/// its row count. Memory holds at most the channel's rows.
fn too_many_to_export(max: u64) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        vec![json!("query")],
        "too_long",
        format!(
            "More than {max} events match: narrow the filters (from_date/to_date) and export in parts"
        ),
    )])
}

pub async fn write_export(
    db: &Database,
    statement: &sql::Statement,
    format: ExportFormat,
    rows_per_sheet: u32,
    tempdir: &std::path::Path,
) -> Result<(std::fs::File, u64), ApiError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let tempdir = tempdir.to_owned();
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = EventWriter::new(format, &tempdir, rows_per_sheet)?;
        while let Some(event) = receiver.blocking_recv() {
            writer.push(&event)?;
        }
        writer.finish()
    });
    let streamed = db::stream_events(db, statement, sender).await;
    let written = writer
        .await
        .map_err(|e| ApiError::Internal(format!("export writer: {e}")))?
        .map_err(|e| ApiError::Internal(format!("export: {e}")))?;
    streamed?;
    Ok(written)
}

#[utoipa::path(get, path = "/api/audit-events/get-eventtypenames-by-functionalityname", tag = "audit-events",
    params(("functionality_name" = String, Query, example = "Authenticate",
        description = "e.g. Authenticate (also accepted as `functionality`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The functionality's event type names", body = Vec<String>),
        (status = 404, description = "No such functionality", body = crate::openapi::Detail),
        crate::openapi::KeyedErrors,
    ))]
pub async fn event_type_names(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_pairs(raw)?;
    let name = query
        .get("functionality_name")
        .or_else(|| query.get("functionality"))
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                vec![json!("query"), json!("functionality_name")],
                "missing",
                "Field required",
            )])
        })?;
    app.ensure_ready().await?;
    let catalog = app.catalog_knowing([(name.as_str(), None)]).await?;
    let names = catalog
        .event_type_names(name)
        .ok_or_else(|| ApiError::NotFound(format!("Functionality '{name}' not found")))?;
    Ok(Json(names).into_response())
}
