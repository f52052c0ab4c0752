//! The Lambda entry ([`LambdaApp`], built once per cold start): HTTP events (API Gateway REST or HTTP API, function URLs, ALB) go
//! through `lambda_http` to the same router the server uses; an EventBridge event is the
//! maintenance schedule.

use crate::router;
use crate::state::App;
use crate::{Clients, Config, MaintenanceFailed};
use audit_core::FunctionError;
use lambda_http::Service as _;
use lambda_http::request::LambdaRequest;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::sync::Arc;

/// What a warm Lambda keeps between invocations.
#[derive(Debug, Clone)]
pub struct LambdaApp {
    app: Arc<App>,
    router: axum::Router,
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
        Ok(LambdaApp {
            router: router(Arc::clone(&app)),
            app,
        })
    }

    /// One event: an EventBridge event runs maintenance; anything else must be an HTTP event,
    /// answered by the router.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, FunctionError> {
        let LambdaEvent { payload, context } = event;
        if audit_core::aws::is_eventbridge_event(&payload) {
            let report = async {
                self.app
                    .ensure_ready()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                crate::maintain::run(
                    &self.app.owner_db,
                    &self.app.maintenance,
                    chrono::Utc::now(),
                )
                .await
                .map_err(|e| e.to_string())
            }
            .await
            .map_err(MaintenanceFailed)?;
            tracing::info!(
                created = ?report.partitions_created,
                archived = report.partitions_archived.len(),
                "maintenance done"
            );
            return serde_json::to_value(&report)
                .map_err(|e| MaintenanceFailed(e.to_string()).into());
        }
        let request: LambdaRequest =
            serde_json::from_value(payload).map_err(|e| UnknownEvent(e.to_string()))?;
        let mut adapter = lambda_http::Adapter::from(self.router.clone());
        let response = adapter
            .call(LambdaEvent::new(request, context))
            .await
            .map_err(|e| UnknownEvent(e.to_string()))?;
        // One invocation, one request: its metrics are written now, while the
        // environment is still running (it may be frozen right after the response).
        self.app.metrics.flush();
        serde_json::to_value(&response).map_err(|e| UnknownEvent(e.to_string()).into())
    }
}
