//! The Lambda entry: [`Updater`], built once per cold start (the table's key schema read, so a
//! table that cannot be described stops the cold start), answers each event in its caller's
//! shape.

use crate::updater::{self, Updater, key_schema};
use crate::{Config, front, request, success_body, timestamp};
use audit_core::{ConfigError, FunctionError};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use serde_json::value::RawValue;

impl Updater {
    /// The DynamoDB client and the table's key schema. The key schema decides how `id` (and
    /// `sort_key`) become the key: without it nothing can be served.
    pub async fn connect(
        config: Config,
        sdk: &audit_core::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let schema = key_schema(&dynamodb, &config.table_name)
            .await
            .map_err(|e| {
                ConfigError::invalid(
                    "TABLE_NAME",
                    &config.table_name,
                    format!("a table this function can describe ({e})"),
                )
            })?;
        Ok(Updater {
            config,
            schema,
            dynamodb,
            metrics: audit_core::metrics::MetricsOut::stdout(),
        })
    }

    /// The Lambda entry point. Every outcome is an answer in the caller's shape (the original
    /// updater's contract: a direct caller reads `success`/`error` from the body; HTTP callers
    /// get the status), so the invocation itself does not fail.
    pub async fn handle(&self, event: LambdaEvent<Box<RawValue>>) -> Result<Value, FunctionError> {
        let now = timestamp(audit_core::now_ms());
        let incoming = match front::read(&event.payload) {
            Ok(incoming) => incoming,
            Err((front_end, error)) => {
                tracing::warn!(error = error.error_type(), message = %error, "request refused");
                self.metrics.publish(&crate::outcome_metrics(Err(&error)));
                return Ok(front::respond(front_end, error.status(), &error.body(&now)));
            }
        };
        let outcome = match request::plan(
            &incoming.body,
            &self.schema,
            self.config.audit_policy(),
            incoming.idempotency_key.as_deref(),
        ) {
            Ok(plan) => {
                let caller = updater::Caller {
                    user_agent: incoming.user_agent.clone(),
                };
                self.apply(&plan, &now, &caller)
                    .await
                    .map(|applied| (plan, applied))
            }
            Err(error) => Err(error),
        };
        self.metrics.publish(&crate::outcome_metrics(
            outcome.as_ref().map(|(_, applied)| *applied),
        ));
        let (status, body) = match outcome {
            Ok((plan, applied)) => {
                tracing::info!(record_id = %plan.record_id, attributes = plan.attributes.len(),
                    audit = plan.audit, replayed = applied == updater::Applied::Replayed, "record updated");
                (
                    200,
                    success_body(&plan.record_id, &plan.updated_names(), &now),
                )
            }
            Err(error) => {
                if error.status() >= 500 {
                    tracing::error!(error = error.error_type(), "update failed");
                } else {
                    tracing::warn!(error = error.error_type(), message = %error, "update refused");
                }
                (error.status(), error.body(&now))
            }
        };
        Ok(front::respond(incoming.front_end, status, &body))
    }
}
