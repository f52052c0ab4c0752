//! One invocation: every message of the SQS batch, each in its own span, at most
//! `CONCURRENCY` at a time; failed messages are reported by id.

use crate::rds::{ListError, list_log_files};
use crate::table::{PlannedWrite, Written, apply, load_rows};
use crate::{
    Action, Config, DetectError, DueReason, InstanceOutcome, decide, filename_filter,
    parse_message, wanted,
};
use audit_core::FunctionError;
use audit_core::batch::sqs_response;
use audit_core::messages::InstanceToScan;
use audit_core::telemetry::record_span;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

/// The clients and settings built once per cold start.
#[derive(Debug, Clone)]
pub struct Detector {
    pub config: Config,
    pub rds: aws_sdk_rds::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub metrics: audit_core::metrics::MetricsOut,
}

impl Detector {
    /// The clients a cold start builds once.
    pub fn new(config: Config, sdk: &audit_core::aws::SdkConfig) -> Self {
        Detector {
            config,
            rds: aws_sdk_rds::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            metrics: audit_core::metrics::MetricsOut::stdout(),
        }
    }

    /// Lists one instance's files and writes what changed.
    pub async fn scan_instance(
        &self,
        message: &InstanceToScan,
        now_ms: i64,
    ) -> Result<InstanceOutcome, DetectError> {
        let policy = &self.config.policy;
        let since = now_ms - i64::try_from(policy.lookback.as_millis()).unwrap_or(i64::MAX);
        let mut outcome = InstanceOutcome {
            instance_id: message.instance_id.clone(),
            ..InstanceOutcome::default()
        };
        let files = match list_log_files(
            &self.rds,
            &message.instance_id,
            filename_filter(&self.config),
            since,
        )
        .await
        {
            Ok(files) => files,
            Err(ListError::InstanceGone) => {
                tracing::warn!(instance = %message.instance_id, "DB instance no longer exists; message consumed");
                outcome.instance_gone = true;
                return Ok(outcome);
            }
            Err(ListError::Failed(e)) => return Err(e),
        };
        let rows = load_rows(
            &self.dynamodb,
            &self.config.tracking_table,
            &message.instance_id,
        )
        .await?;
        let expires_at = now_ms / 1000 + i64::try_from(policy.ttl.as_secs()).unwrap_or(i64::MAX);
        for file in files.iter().filter(|f| wanted(&self.config, &f.name)) {
            outcome.listed += 1;
            let row = rows.get(&file.name);
            let action = decide(file, row, policy, now_ms);
            let write = PlannedWrite {
                message,
                file,
                row,
                action,
                now_ms,
                expires_at,
            };
            let written = apply(&self.dynamodb, &self.config.tracking_table, &write).await?;
            match (action, written) {
                (_, Written::LostRace) => outcome.lost_races += 1,
                (Action::OrderCopy(reason), Written::Done) => {
                    if reason == DueReason::Stalled {
                        outcome.reordered_stalled += 1;
                    }
                    tracing::info!(file = %file.name, size = file.size, last_written = file.last_written,
                        reason = reason.as_str(), "copy ordered");
                    outcome.ordered += 1;
                }
                (Action::Observe, Written::Done) => outcome.observed += 1,
                (Action::Unchanged, Written::Done) => outcome.unchanged += 1,
            }
        }
        Ok(outcome)
    }

    async fn handle_message(&self, message: &SqsMessage) -> Result<InstanceOutcome, DetectError> {
        let request = parse_message(message.body.as_deref())?;
        self.scan_instance(&request, audit_core::now_ms()).await
    }

    /// The Lambda entry point: partial batch response by message id.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, FunctionError> {
        let records = event.payload.records;
        let results: Vec<(Option<String>, Result<InstanceOutcome, DetectError>)> =
            futures_util::stream::iter(records.iter())
                .map(|message| {
                    let id = message.message_id.clone();
                    let span = record_span(id.as_deref().unwrap_or("?"));
                    async move { (id, self.handle_message(message).await) }.instrument(span)
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
        self.metrics
            .publish(&crate::invocation_metrics(results.iter().map(|(_, r)| r)));
        let mut failed = Vec::new();
        for (id, result) in results {
            let span = record_span(id.as_deref().unwrap_or("?"));
            let _entered = span.enter();
            match result {
                Ok(outcome) => tracing::info!(
                    instance = %outcome.instance_id, listed = outcome.listed, ordered = outcome.ordered,
                    observed = outcome.observed, unchanged = outcome.unchanged, lost_races = outcome.lost_races,
                    instance_gone = outcome.instance_gone, "instance scanned"
                ),
                Err(error) => {
                    tracing::error!(error = %error, retryable = audit_core::Classify::retryable(&error),
                        "message failed; reported for redelivery");
                    // A message without an id cannot be reported; fail the whole batch instead
                    // of letting Lambda delete it.
                    let Some(id) = id else {
                        return Err(FunctionError::from(error));
                    };
                    failed.push(id);
                }
            }
        }
        Ok(sqs_response(failed))
    }
}
