//! The HTTP interface: one axum router, served by `audit-api serve` and by the Lambda
//! (through `lambda_http`). Handlers are thin: parse with [`crate::event`] and
//! [`crate::search`], act with [`crate::db`], answer with the types of [`crate::schema`] (the
//! ones the OpenAPI document describes) or an [`ApiError`]. Failures of ours are logged once,
//! by the `log_failures` layer.

use crate::db;
use crate::error::{ApiError, FailureCause};
use crate::event::{self, Catalog, FieldError};
use crate::export::{ROWS_PER_SHEET, write_export};
use crate::json_text;
use crate::schema::{BatchCreated, Detail, Health};
use crate::search::{self, EventRecord, ExportRequest, Page, RECENT_EVENTS, SearchFilters};
use crate::sql::{self, Scope, Selection};
use crate::state::App;
use crate::trigram::PatternLookup;
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
use std::sync::Arc;
use std::time::Duration;

/// The API key header, as the original service.
pub const API_KEY_HEADER: &str = "CSIQ-APIKEY";
/// The next page's cursor, on search responses that have one.
pub const NEXT_CURSOR_HEADER: &str = "X-Next-Cursor";
pub const HAS_MORE_HEADER: &str = "X-Has-More";

/// The router: the original service's paths under the base path, the docs, FastAPI-shaped fallbacks.
pub fn router(app: Arc<App>, docs: Router) -> Router {
    let events = Router::new()
        .route("/create", post(create_event))
        .route("/create-batch", post(create_batch))
        .route("/recent", get(recent_events))
        .route("/search", get(search_events))
        .route("/export", get(export_events))
        .route("/verify", get(verify_chain))
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
    let mut router = Router::new()
        .nest(&app.base_path, api)
        .merge(docs)
        .fallback(not_found)
        .layer(middleware::from_fn(log_failures))
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

async fn not_found() -> (StatusCode, Json<Detail>) {
    (StatusCode::NOT_FOUND, Json(Detail::new("Not Found")))
}

async fn method_not_allowed() -> (StatusCode, Json<Detail>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(Detail::new("Method Not Allowed")),
    )
}

/// Logs, once, why a request failed on our side: the [`FailureCause`] an [`ApiError`] left on
/// its response. The client's answer never carries it.
async fn log_failures(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match response.extensions().get::<FailureCause>() {
        Some(FailureCause::Unavailable(why)) => tracing::warn!("database unavailable: {why}"),
        Some(FailureCause::Internal(why)) => tracing::error!("internal error: {why}"),
        None => {}
    }
    response
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
        (status = 200, description = "Service and database are up", body = crate::schema::Health),
        (status = 503, description = "The database is unreachable", body = crate::schema::Health),
    ))]
pub async fn healthcheck(State(app): State<Arc<App>>) -> (StatusCode, Json<Health>) {
    match app.liveness.check(&app.db).await {
        crate::health::Alive::Yes => (StatusCode::OK, Json(Health::new("healthy", "connected"))),
        crate::health::Alive::No(e) => {
            tracing::warn!("healthcheck: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health::new("unhealthy", "unreachable")),
            )
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

/// A body that parsed as JSON once but not as the raw reading of `additional_data`.
fn body_unreadable(e: serde_json::Error) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        vec![json!("body")],
        "json_invalid",
        format!("JSON decode error: {e}"),
    )])
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
    request_body = crate::schema::AuditEventIn,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Stored", body = EventRecord),
        (status = 413, description = "Body too large", body = crate::schema::Detail),
        crate::schema::KeyedErrors,
    ))]
pub async fn create_event(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EventRecord>, ApiError> {
    let created = async {
        let (value, bytes) = read_body(&app, body).await?;
        let catalog = catalog_for(&app, std::slice::from_ref(&value)).await?;
        let mut event = event::validate_event(&value, &catalog, &[json!("body")])
            .map_err(ApiError::Validation)?;
        json_text::exact_additional_data(&bytes, [&mut event.additional_data], false)
            .map_err(body_unreadable)?;
        check_company(
            &scope,
            event.company_id,
            vec![json!("body"), json!("company_id")],
        )?;
        Ok(app.appender.append(event).await?)
    }
    .await;
    count_create(&app, created.as_ref().map(|_| 1));
    created.map(Json)
}

/// Counts a create's outcome: events stored, or a request refused (a 4xx; a server error is
/// not the caller's and is counted by the function's error metrics).
fn count_create(app: &App, outcome: Result<usize, &ApiError>) {
    match outcome {
        Ok(events) => app.metrics.ingested(events),
        Err(ApiError::Unavailable(_) | ApiError::Internal(_)) => {}
        Err(_) => app.metrics.rejected(),
    }
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
/// company in the error), then appends them all in one transaction.
async fn store(
    app: &App,
    scope: &Scope,
    events: Vec<event::NewEvent>,
    company_loc: impl Fn(usize) -> Vec<Value>,
) -> Result<Vec<EventRecord>, ApiError> {
    for (index, event) in events.iter().enumerate() {
        check_company(scope, event.company_id, company_loc(index))?;
    }
    // A batch appends on its own: its preparation (ids, times, canonical text) then runs
    // beside other batches' appends, and only its insert waits for its companies' heads
    // (measured: 29,300 events/s for one company this way, 24,800 through the shared queue).
    Ok(db::insert_events(&app.db, &events).await?)
}

#[utoipa::path(post, path = "/api/audit-events/create-batch", tag = "audit-events",
    request_body(content = Vec<crate::schema::AuditEventIn>, description = "1 to 1,000 events; all are stored or none"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "All stored", body = crate::schema::BatchCreated),
        (status = 413, description = "Body too large", body = crate::schema::Detail),
        crate::schema::KeyedErrors,
    ))]
pub async fn create_batch(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchCreated>, ApiError> {
    let stored = async {
        let (value, bytes) = read_body(&app, body).await?;
        let (items, prefix) = event::batch_items(&value).unwrap_or_default();
        let catalog = catalog_for(&app, items).await?;
        let mut events = event::validate_batch(&value, &catalog).map_err(ApiError::Validation)?;
        json_text::exact_additional_data(
            &bytes,
            events.iter_mut().map(|e| &mut e.additional_data),
            true,
        )
        .map_err(body_unreadable)?;
        store(&app, &scope, events, |index| {
            let mut loc = prefix.clone();
            loc.extend([json!(index), json!("company_id")]);
            loc
        })
        .await
    }
    .await;
    count_create(&app, stored.as_ref().map(Vec::len));
    let stored = stored?;
    Ok(Json(BatchCreated {
        created: stored.len() as u64,
        ids: stored.iter().map(|e| e.id).collect(),
    }))
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
    let message_lookup = match filters.message_pattern.as_deref() {
        Some(pattern) if !pattern.is_empty() => app.message_lookup(pattern).await,
        _ => PatternLookup::Whole,
    };
    Ok(Selection {
        filters,
        functionality_id,
        companies,
        message_lookup,
    })
}

#[utoipa::path(get, path = "/api/audit-events/recent", tag = "audit-events",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The 500 newest events, newest first", body = Vec<EventRecord>),
        crate::schema::KeyedErrors,
    ))]
pub async fn recent_events(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
) -> Result<Json<Vec<EventRecord>>, ApiError> {
    app.ensure_ready().await?;
    let selection = selection(&app, &scope, SearchFilters::default()).await?;
    let statement = sql::select_events(&selection, None, Some(RECENT_EVENTS));
    Ok(Json(db::query_events(&app.db, &statement).await?))
}

#[utoipa::path(get, path = "/api/audit-events/search", tag = "audit-events",
    params(crate::schema::FilterParams, crate::schema::PageParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page, newest first. `X-Has-More` says whether more \
            follow; `X-Next-Cursor` is the `cursor` of the next page.",
            body = Vec<EventRecord>,
            headers(("X-Has-More" = String, description = "true or false"),
                    ("X-Next-Cursor" = String, description = "present when more follow"))),
        crate::schema::KeyedErrors,
    ))]
pub async fn search_events(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    RawQuery(raw): RawQuery,
) -> Result<(HeaderMap, Json<Vec<EventRecord>>), ApiError> {
    let started = std::time::Instant::now();
    let query = query_pairs(raw)?;
    let request = search::parse_search(&query).map_err(ApiError::Validation)?;
    app.ensure_ready().await?;
    let selection = selection(&app, &scope, request.filters).await?;
    let limit = request.page_size + 1;
    let rows = match (selection.hourly_trigrams(), &request.page) {
        // OFFSET pages keep the one statement: an offset cannot start from a walk's end.
        (Some(trigrams), Page::After(_) | Page::Number(1)) => {
            let budget = sql::walk_budget(limit);
            db::search_common_pattern(&app.db, &selection, trigrams, &request.page, limit, budget)
                .await?
        }
        _ => {
            let statement = sql::select_events(&selection, Some(&request.page), Some(limit));
            db::query_events(&app.db, &statement).await?
        }
    };
    app.metrics.searched(started.elapsed());
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
    Ok((headers, Json(page)))
}

#[utoipa::path(get, path = "/api/audit-events/export", tag = "audit-events",
    params(crate::schema::ExportParams, crate::schema::FilterParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "An .xlsx workbook (or CSV with format=csv) of every matching \
            event, newest first; past 1,048,575 rows the workbook continues on another sheet",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        crate::schema::KeyedErrors,
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

#[utoipa::path(get, path = "/api/audit-events/get-eventtypenames-by-functionalityname", tag = "audit-events",
    params(("functionality_name" = String, Query, example = "Authenticate",
        description = "e.g. Authenticate (also accepted as `functionality`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The functionality's event type names", body = Vec<String>),
        (status = 404, description = "No such functionality", body = crate::schema::Detail),
        crate::schema::KeyedErrors,
    ))]
pub async fn event_type_names(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
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
    Ok(Json(names))
}

#[utoipa::path(get, path = "/api/audit-events/verify", tag = "audit-events",
    params(crate::schema::VerifyParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The company's hash chain recomputed and compared with the \
            database's head and every head published for it: `verified`, the first broken \
            link (`chain_seq`, `id`, `reason`: hash-mismatch, gap, fork, reordered, \
            head-mismatch) and any problem with the published heads (`anchor_problems`)",
            body = crate::schema::ChainVerdictSchema),
        (status = 429, description = "VERIFY_CONCURRENCY verifications are already running: \
            try again after `Retry-After` seconds", body = crate::schema::Detail),
        crate::schema::KeyedErrors,
    ))]
pub async fn verify_chain(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Scope>,
    RawQuery(raw): RawQuery,
) -> Result<Json<crate::chain::ChainVerdict>, ApiError> {
    let query = query_pairs(raw)?;
    let request = crate::chain::parse_verify(&query).map_err(ApiError::Validation)?;
    if let crate::chain::Chains::Company(company) = request.chains {
        check_company(&scope, company, vec![json!("query"), json!("company_id")])?;
    }
    app.ensure_ready().await?;
    let waited =
        tokio::time::timeout(crate::state::VERIFY_QUEUE_WAIT, app.verifications.acquire()).await;
    let Ok(Ok(_permit)) = waited else {
        return Err(ApiError::Busy(format!(
            "{} verifications are running; try again in a few seconds",
            crate::state::VERIFY_CONCURRENCY
        )));
    };
    let anchors = match &app.anchor {
        Some(target) => Some(
            crate::anchor::history(target)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?,
        ),
        None => None,
    };
    let limit = crate::state::VERIFY_TIME_LIMIT;
    let verification = crate::chain::verify(&app.db, request, anchors.as_deref(), Some(limit))
        .await
        .map_err(|e| match e {
            crate::db::DbError::Query(q)
                if q.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
            {
                ApiError::Validation(vec![FieldError::new(
                    vec![json!("query")],
                    "too_long",
                    format!(
                        "The chain did not verify within {} s: verify a time range \
                         (from_date/to_date), or the whole chain with `audit-api verify`",
                        limit.as_secs()
                    ),
                )])
            }
            other => other.into(),
        })?;
    verification
        .chains
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::Internal("verification returned no chain".to_owned()))
}
