//! The Lambda handler: transform a stream batch, deliver it, report what was not delivered.

use crate::Config;
use crate::delivery::{DeliveryReport, deliver};
use crate::event::{StreamEvent, StreamRecord};
use crate::record::{AuditLine, RecordError, Scratch, audit_line_with};
use audit_core::FunctionError;
use audit_core::batch::stream_response;
use audit_core::metrics::{MetricSet, MetricsOut, Unit};
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::LambdaEvent;
use std::time::{Duration, SystemTime};

/// Errors that fail a whole invocation.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no record of the batch was delivered to {stream}: {reason}")]
    NothingDelivered {
        stream: String,
        reason: String,
        retryable: bool,
    },
    #[error(transparent)]
    BadRecord(#[from] RecordError),
}

impl audit_core::Classify for ForwardError {
    fn code(&self) -> &'static str {
        match self {
            ForwardError::NothingDelivered { .. } => "FirehoseDeliveryFailed",
            ForwardError::BadRecord(e) => e.code(),
        }
    }
    fn retryable(&self) -> bool {
        match self {
            ForwardError::NothingDelivered { retryable, .. } => *retryable,
            ForwardError::BadRecord(_) => false,
        }
    }
}

/// The transform of a batch: lines for every record up to the first that cannot be
/// transformed, and that record's error. Records after a bad one are not delivered now:
/// Lambda retries from the bad record, so they come again.
pub fn transform(records: &[StreamRecord]) -> (Vec<AuditLine>, Option<(usize, RecordError)>) {
    let mut lines = Vec::with_capacity(records.len());
    let mut scratch = Scratch::default();
    for (i, record) in records.iter().enumerate() {
        match audit_line_with(record, &mut scratch) {
            Ok(line) => lines.push(line),
            Err(error) => return (lines, Some((i, error))),
        }
    }
    (lines, None)
}

/// What one invocation did, logged once per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    pub delivered: usize,
    pub failed: usize,
    pub put_calls: u32,
    pub resent: usize,
    pub images_omitted: usize,
    pub bytes: usize,
}

impl BatchSummary {
    /// The batch's metrics: what reached Firehose, what was reported for retry, and images
    /// left out to fit Firehose's record limit (each such change lost its before/after).
    pub fn metrics(&self) -> MetricSet {
        let mut set = MetricSet::zeroed("stream-to-firehose", crate::METRICS);
        set.count("RecordsDelivered", self.delivered as u64);
        set.count("RecordsFailed", self.failed as u64);
        set.count("ImagesOmitted", self.images_omitted as u64);
        set.add("BytesDelivered", Unit::Bytes, self.bytes as f64);
        set.count("RecordsResent", self.resent as u64);
        set
    }
}

/// The function: its settings and the Firehose client, built once per cold start.
#[derive(Debug)]
pub struct Forwarder {
    pub config: Config,
    pub firehose: aws_sdk_firehose::Client,
    pub metrics: MetricsOut,
}

impl Forwarder {
    /// The client a cold start builds once.
    pub fn new(config: Config, sdk: &audit_core::aws::SdkConfig) -> Self {
        Forwarder {
            config,
            firehose: aws_sdk_firehose::Client::new(sdk),
            metrics: MetricsOut::stdout(),
        }
    }

    /// The Lambda entry point: failures by sequence number, lowest first.
    pub async fn handle(
        &self,
        event: LambdaEvent<StreamEvent>,
    ) -> Result<DynamoDbEventResponse, FunctionError> {
        let deadline = (event.context.deadline > 0)
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline));
        let records = &event.payload.records;
        let (lines, bad) = transform(records);
        for line in lines.iter().filter(|l| l.images_omitted.is_some()) {
            tracing::warn!(sequence_number = %line.sequence_number,
                reason = line.images_omitted.as_deref().unwrap_or_default(), "images left out of an oversize record");
        }
        let data: Vec<&[u8]> = lines.iter().map(|l| l.data.as_slice()).collect();
        let report = if data.is_empty() {
            DeliveryReport::default()
        } else {
            deliver(
                &self.firehose,
                &self.config.delivery_stream,
                &data,
                self.config.backoff,
                deadline,
            )
            .await
        };

        // Undelivered: Firehose's refusals, then the bad record and everything after it.
        let mut failed: Vec<&str> = report
            .undelivered
            .iter()
            .map(|u| lines[u.index].sequence_number.as_str())
            .collect();
        if let Some((index, error)) = &bad {
            tracing::error!(error = %error, "stream record cannot be audited; reported for retry (after the mapping's retries it goes to the on-failure queue)");
            for record in &records[*index..] {
                match record.change.sequence_number.as_deref() {
                    Some(sequence_number) => failed.push(sequence_number),
                    // Cannot be reported item by item: fail the batch rather than lose it.
                    None => return Err(ForwardError::BadRecord(error.clone()).into()),
                }
            }
        }
        let summary = BatchSummary {
            records: records.len(),
            delivered: report.delivered(lines.len()),
            failed: failed.len(),
            put_calls: report.calls,
            resent: report.resent,
            images_omitted: lines.iter().filter(|l| l.images_omitted.is_some()).count(),
            bytes: data.iter().map(|d| d.len()).sum(),
        };
        tracing::info!(
            records = summary.records,
            delivered = summary.delivered,
            failed = summary.failed,
            put_calls = summary.put_calls,
            resent = summary.resent,
            images_omitted = summary.images_omitted,
            bytes = summary.bytes,
            "batch done"
        );
        self.metrics.publish(&summary.metrics());
        if let Some(first) = report.undelivered.first() {
            tracing::error!(undelivered = report.undelivered.len(), reason = %first.reason,
                retryable = first.retryable, "records not delivered; reported for retry");
        }
        // Nothing delivered: fail the invocation, so the error counts in the function's metrics
        // (a partial response would look like success). Lambda retries the batch either way.
        if summary.failed > 0 && summary.delivered == 0 {
            let error = match (report.undelivered.first(), bad) {
                (Some(first), _) => ForwardError::NothingDelivered {
                    stream: self.config.delivery_stream.clone(),
                    reason: first.reason.clone(),
                    retryable: first.retryable,
                },
                (None, Some((_, error))) => ForwardError::BadRecord(error),
                (None, None) => return Ok(stream_response(failed)),
            };
            return Err(error.into());
        }
        Ok(stream_response(failed))
    }
}
