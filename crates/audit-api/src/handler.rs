//! The Lambda entry ([`LambdaApp`], built once per cold start): HTTP events (API Gateway REST or HTTP API, function URLs, ALB) go
//! through `lambda_http` to the same router the server uses; an EventBridge event is the
//! maintenance schedule.
//!
//! Maintenance reports are buffered JSON. HTTP responses are streamed when
//! `RESPONSE_STREAMING` is set (the front door must invoke in `RESPONSE_STREAM` mode): the
//! runtime sends the status and headers, then the body as it is read, so an export of any
//! size leaves the function in constant memory. Buffered, a response must fit Lambda's 6 MB:
//! a larger one is answered with a 422 that says so ([`BUFFERED_BODY_LIMIT`]) instead of
//! Lambda's bare `Function.ResponseSizeTooLarge`.

use crate::router;
use crate::state::App;
use crate::{Clients, Config, MaintenanceFailed};
use audit_core::FunctionError;
use axum::body::Bytes;
use axum::http::header::CONTENT_LENGTH;
use axum::response::{IntoResponse as _, Response};
use lambda_http::Service as _;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{FunctionResponse, LambdaEvent, StreamResponse};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;

/// The largest body a buffered response may carry: Lambda's 6 MB payload is the response
/// document, in which a binary body is base64 (4/3 larger) next to the status and headers.
/// Text that JSON escaping lengthens a lot (quotes, control characters) can still reach the
/// cap below this; Lambda then reports `Function.ResponseSizeTooLarge`.
pub const BUFFERED_BODY_LIMIT: u64 = 4_500_000;

/// An HTTP body as the runtime streams it.
pub type BodyChunks = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, axum::Error>> + Send>>;

/// What one invocation returns: a JSON document, or a streamed HTTP response.
pub type Reply = FunctionResponse<Value, BodyChunks>;

/// What a warm Lambda keeps between invocations.
#[derive(Debug, Clone)]
pub struct LambdaApp {
    app: Arc<App>,
    router: axum::Router,
    streaming: bool,
}

/// An event that is neither an HTTP request nor a schedule.
#[derive(Debug, thiserror::Error)]
#[error("not an HTTP request or EventBridge event: {0}")]
pub struct UnknownEvent(String);

impl audit_core::Classify for UnknownEvent {
    fn code(&self) -> &'static str {
        "InvalidEvent"
    }
    fn retryable(&self) -> bool {
        false
    }
}

impl LambdaApp {
    /// Builds the app once per cold start. The database is not contacted here: a cold start
    /// while the database is down still answers the healthcheck (503).
    pub async fn new(config: &Config, clients: &Clients) -> Result<Self, lambda_runtime::Error> {
        let app = Arc::new(crate::build_app(config, Some(clients)).await?);
        let mut router = router(Arc::clone(&app));
        if !config.response_streaming {
            router = router.layer(axum::middleware::map_response(refuse_oversized));
        }
        Ok(LambdaApp {
            router,
            app,
            streaming: config.response_streaming,
        })
    }

    /// One event: an EventBridge event runs maintenance; anything else must be an HTTP event,
    /// answered by the router.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Reply, FunctionError> {
        let LambdaEvent { payload, context } = event;
        if audit_core::aws::is_eventbridge_event(&payload) {
            let report = async {
                self.app
                    .ensure_ready()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let outcome = crate::maintain::run(
                    &self.app.owner_db,
                    &self.app.maintenance,
                    chrono::Utc::now(),
                )
                .await;
                let diverged = outcome.as_ref().err().map_or(0, |e| e.chains_diverged());
                self.app.metrics.maintained(diverged);
                outcome.map_err(|e| e.to_string())
            }
            .await
            .map_err(MaintenanceFailed)?;
            tracing::info!(
                created = ?report.partitions_created,
                archived = report.partitions_archived.len(),
                "maintenance done"
            );
            return serde_json::to_value(&report)
                .map(FunctionResponse::BufferedResponse)
                .map_err(|e| MaintenanceFailed(e.to_string()).into());
        }
        let request: LambdaRequest =
            serde_json::from_value(payload).map_err(|e| UnknownEvent(e.to_string()))?;
        if self.streaming {
            let response = lambda_http::StreamAdapter::from(self.router.clone())
                .call(LambdaEvent::new(request, context))
                .await
                .map_err(|e| UnknownEvent(e.to_string()))?;
            self.app.metrics.flush();
            return Ok(FunctionResponse::StreamingResponse(StreamResponse {
                metadata_prelude: response.metadata_prelude,
                stream: Box::pin(response.stream),
            }));
        }
        let mut adapter = lambda_http::Adapter::from(self.router.clone());
        let response = adapter
            .call(LambdaEvent::new(request, context))
            .await
            .map_err(|e| UnknownEvent(e.to_string()))?;
        // One invocation, one request: its metrics are written now, while the
        // environment is still running (it may be frozen right after the response).
        self.app.metrics.flush();
        serde_json::to_value(&response)
            .map(FunctionResponse::BufferedResponse)
            .map_err(|e| UnknownEvent(e.to_string()).into())
    }
}

/// A buffered response whose body is known to be over [`BUFFERED_BODY_LIMIT`] becomes a 422
/// naming the way out; Lambda would otherwise fail the invocation.
async fn refuse_oversized(response: Response) -> Response {
    let size = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact());
    match size {
        Some(size) if size > BUFFERED_BODY_LIMIT => oversized(size),
        _ => response,
    }
}

fn oversized(size: u64) -> Response {
    crate::error::ApiError::Validation(vec![crate::event::FieldError::new(
        vec![serde_json::json!("query")],
        "too_long",
        format!(
            "The response would be {size} bytes, more than a buffered Lambda response carries \
             ({BUFFERED_BODY_LIMIT}): narrow the filters (from_date/to_date) or page_size, or \
             deploy with RESPONSE_STREAMING=true behind a RESPONSE_STREAM function URL"
        ),
    )])
    .into_response()
}
