//! The Lambda entry: one invocation takes the copy orders of a stream batch,
//! `DOWNLOAD_CONCURRENCY` at a time, each in its own span, and reports failures by sequence
//! number, lowest first, plus one metric line.

use crate::download::RestDownloader;
use crate::{Config, CopyError, CopyOutcome, copy_order};
use audit_core::FunctionError;
use audit_core::batch::stream_response;
use audit_core::metrics::{MetricSet, MetricsOut, Unit};
use audit_core::telemetry::record_span;
use audit_core::tracking::TrackedLogFile;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tracing::Instrument;

/// The clients and settings built once per cold start.
#[derive(Debug)]
pub struct Copier {
    pub config: Config,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub rds: aws_sdk_rds::Client,
    pub rest: RestDownloader,
    /// Set once the REST endpoint refused a request: later copies go straight to the
    /// Portion API for the rest of this execution environment's life.
    pub rest_refused: AtomicBool,
    /// Where each invocation's metric line goes (stdout in the function).
    pub metrics: MetricsOut,
}

/// What one stream record came to: nothing ordered, an outcome with the ordered version's
/// `LastWritten` (for the copy lag), or a failure.
pub type RecordResult = Result<Option<(CopyOutcome, i64)>, CopyError>;

/// One invocation's metrics: what was copied (files, bytes, and how long after the file was
/// last written), what could not be (all failures, and the two an operator must act on: lossy
/// copies and lines too long for the Portion API), and what needed nothing. The counts an alarm
/// watches are written even when 0.
pub fn invocation_metrics<'a>(
    results: impl Iterator<Item = &'a RecordResult>,
    now_ms: i64,
) -> MetricSet {
    let mut set = MetricSet::zeroed("log-downloader", crate::METRICS);
    for result in results {
        match result {
            Ok(None) => {}
            Ok(Some((outcome, last_written))) => match outcome {
                CopyOutcome::Copied { bytes, .. } | CopyOutcome::Conflict { bytes, .. } => {
                    if matches!(outcome, CopyOutcome::Conflict { .. }) {
                        set.count("CopyConflicts", 1);
                    }
                    set.count("FilesCopied", 1);
                    set.add("BytesCopied", Unit::Bytes, *bytes as f64);
                    set.add(
                        "CopyLagSeconds",
                        Unit::Seconds,
                        (now_ms - last_written).max(0) as f64 / 1000.0,
                    );
                }
                CopyOutcome::AlreadyCopied { .. } => set.count("ReplaysSkipped", 1),
                CopyOutcome::SourceReplaced => set.count("SourcesReplaced", 1),
                CopyOutcome::Lossy { .. } => set.count("LossyCopies", 1),
            },
            Err(error) => {
                set.count("CopyFailures", 1);
                match error {
                    CopyError::LineTooLong { .. } => set.count("LinesTooLong", 1),
                    CopyError::Conflict { .. } => set.count("CopyConflicts", 1),
                    _ => {}
                }
            }
        }
    }
    set
}

/// A stream image as a tracking row. An image without a `state` is no row of ours yet: moto,
/// for an `UpdateItem` that creates an item, first emits a key-only INSERT; such an image orders
/// nothing. An image with a state that does not parse is an error, never skipped.
fn image(item: &serde_dynamo::Item) -> Result<Option<TrackedLogFile>, serde_dynamo::Error> {
    if !item.contains_key(audit_core::tracking::attr::STATE) {
        return Ok(None);
    }
    serde_dynamo::from_item(item.clone()).map(Some)
}

impl Copier {
    /// The clients a cold start builds once, from the SDK configuration and `config`.
    pub fn new(
        config: Config,
        sdk: &audit_core::aws::SdkConfig,
    ) -> Result<Self, audit_core::ConfigError> {
        Ok(Copier {
            rest: RestDownloader::new(sdk, &config)?,
            config,
            s3: audit_core::aws::s3_client(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            rds: aws_sdk_rds::Client::new(sdk),
            rest_refused: AtomicBool::new(false),
            metrics: MetricsOut::stdout(),
        })
    }

    async fn handle_record(
        &self,
        record: &EventRecord,
        deadline: Option<std::time::SystemTime>,
    ) -> RecordResult {
        let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
        let bad = |error: serde_dynamo::Error| CopyError::BadRecord {
            sequence_number: sequence_number.clone(),
            message: error.to_string(),
        };
        let new = image(&record.change.new_image).map_err(bad)?;
        let old = image(&record.change.old_image).map_err(bad)?;
        let Some(order) = copy_order(new.as_ref(), old.as_ref()) else {
            return Ok(None);
        };
        let outcome = self.copy_before(&order, deadline).await?;
        match &outcome {
            CopyOutcome::Copied { key, bytes, sha256 } => {
                tracing::info!(file = %order.log_file, instance = %order.instance_id, %key, bytes, %sha256, "copied")
            }
            CopyOutcome::AlreadyCopied { key } => {
                tracing::info!(%key, "already copied; replay skipped")
            }
            CopyOutcome::SourceReplaced => tracing::warn!(file = %order.log_file,
                "the ordered version is no longer on the instance under this name; its successor is ordered separately"),
            CopyOutcome::Conflict {
                squatted,
                key,
                bytes,
                sha256,
            } => tracing::error!(
                file = %order.log_file, instance = %order.instance_id, %squatted, %key, bytes, %sha256,
                "copied beside an object the downloader did not write (a conflict: the bucket holds evidence it should not)"),
            CopyOutcome::Lossy { key, bytes } => tracing::error!(file = %order.log_file,
                instance = %order.instance_id, %key, bytes, fidelity = "lossy",
                "only a lossy copy could be made (the Portion API altered bytes that are not UTF-8); stored marked, the file stays due for an exact copy"),
        }
        Ok(Some((outcome, order.last_written)))
    }

    /// The Lambda entry point: failures by sequence number, lowest first.
    pub async fn handle(
        &self,
        event: LambdaEvent<Event>,
    ) -> Result<DynamoDbEventResponse, FunctionError> {
        let deadline = (event.context.deadline > 0)
            .then(|| std::time::UNIX_EPOCH + Duration::from_millis(event.context.deadline));
        let results: Vec<(String, RecordResult)> =
            futures_util::stream::iter(event.payload.records.iter())
                .map(|record| {
                    let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
                    let span = record_span(&sequence_number);
                    async move { (sequence_number, self.handle_record(record, deadline).await) }
                        .instrument(span)
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
        self.metrics.publish(&invocation_metrics(
            results.iter().map(|(_, result)| result),
            audit_core::now_ms(),
        ));
        let mut failed = Vec::new();
        for (sequence_number, result) in results {
            if let Err(error) = result {
                if sequence_number.is_empty() {
                    // Cannot be reported item by item: fail the batch rather than lose it.
                    return Err(FunctionError::from(error));
                }
                let _entered = record_span(&sequence_number).entered();
                tracing::error!(error = %error, retryable = audit_core::Classify::retryable(&error),
                    "copy failed; reported for retry");
                failed.push(sequence_number);
            }
        }
        Ok(stream_response(failed))
    }
}
