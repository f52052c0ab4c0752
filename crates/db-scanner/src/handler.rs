//! One invocation: parse the event, describe, filter, queue, summarise.

use crate::queue::send_all;
use crate::rds::describe_instances;
use crate::{
    Config, ScanError, ScanRequest, ScanSummary, missing_instances, parse_event, plan,
    queue_entries,
};
use audit_core::FunctionError;
use audit_core::backoff::Backoff;
use lambda_runtime::LambdaEvent;
use std::time::Duration;

/// The clients and settings built once per cold start.
#[derive(Debug, Clone)]
pub struct Scanner {
    pub config: Config,
    pub rds: aws_sdk_rds::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Scanner {
    /// The clients a cold start builds once.
    pub fn new(config: Config, sdk: &audit_core::aws::SdkConfig) -> Self {
        Scanner {
            config,
            rds: aws_sdk_rds::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }

    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
            self.config.send_attempts,
        )
    }

    /// The whole scan for one event.
    pub async fn scan(&self, payload: &serde_json::Value) -> Result<ScanSummary, ScanError> {
        let request = parse_event(payload)?;
        let instances = describe_instances(&self.rds, &request, self.config.page_size).await?;
        if let ScanRequest::Only(requested) = &request {
            let missing = missing_instances(requested, &instances);
            if !missing.is_empty() {
                return Err(ScanError::InvalidEvent {
                    field: "instances".into(),
                    problem: format!("no DB instance named {}", missing.join(", ")),
                });
            }
        }
        let scanned_at = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .expect("the current time formats as RFC 3339");
        let plan = plan(&self.config, &instances, &scanned_at);
        let entries = queue_entries(&plan.messages);
        let total = entries.len();
        let (accepted, failed) =
            send_all(&self.sqs, &self.config.queue_url, entries, self.backoff()).await;

        let mut summary = plan.summary;
        summary.queued = accepted.len();
        summary.queued_instances = accepted;
        tracing::info!(
            found = summary.found,
            queued = summary.queued,
            skipped_by_engine = summary.skipped_by_engine,
            skipped_excluded = summary.skipped_excluded,
            skipped_not_available = summary.skipped_not_available,
            failed = failed.len(),
            "scan finished"
        );
        if failed.is_empty() {
            return Ok(summary);
        }
        let details = failed
            .iter()
            .map(|f| format!("{} ({})", f.id, f.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ScanError::Queue {
            failed: failed.len(),
            total,
            details,
            retryable: failed.iter().any(|f| f.retryable),
        })
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<ScanSummary, FunctionError> {
        // The runtime logs a returned error (one JSON line with the request id).
        Ok(self.scan(&event.payload).await?)
    }
}
