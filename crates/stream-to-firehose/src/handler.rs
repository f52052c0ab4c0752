//! The Lambda handler: transform a stream batch, deliver it, report what was not delivered.

use crate::Config;
use crate::delivery::{DeliveryReport, deliver};
use crate::event::{BatchReader, EventError, RawStreamEvent, RewrittenImages};
use crate::record::{AuditLine, RecordError, audit_line};
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
    #[error(transparent)]
    BadEvent(#[from] EventError),
}

impl audit_core::Classify for ForwardError {
    fn code(&self) -> &'static str {
        match self {
            ForwardError::NothingDelivered { .. } => "FirehoseDeliveryFailed",
            ForwardError::BadRecord(e) => e.code(),
            ForwardError::BadEvent(e) => e.code(),
        }
    }
    fn retryable(&self) -> bool {
        match self {
            ForwardError::NothingDelivered { retryable, .. } => *retryable,
            ForwardError::BadRecord(_) | ForwardError::BadEvent(_) => false,
        }
    }
}

/// A batch, transformed: lines for every record up to the first that cannot be audited, and
/// what to report for that record and the ones after it. Those are not delivered now: Lambda
/// retries from the bad record, so they come again.
#[derive(Debug, Default)]
pub struct Transformed {
    pub lines: Vec<AuditLine>,
    pub bad: Option<BadRecords>,
    /// Records in the event.
    pub records: usize,
}

/// The first record that cannot be audited, and every record after it.
#[derive(Debug)]
pub struct BadRecords {
    pub index: usize,
    pub error: RecordError,
    /// The sequence numbers of the bad record and those after it, in order (`None` where a
    /// record has none).
    pub sequence_numbers: Vec<Option<String>>,
}

/// Reads the event and writes the lines, in one pass over its bytes. One small buffer holds
/// the current record's rewritten images, so the batch's memory is the lines themselves.
pub fn transform(body: &[u8]) -> Result<Transformed, EventError> {
    let mut reader = BatchReader::new(body)?;
    let mut rewritten = RewrittenImages::default();
    let mut done = Transformed::default();
    while let Some(record) = reader.next_record(&mut rewritten)? {
        done.records += 1;
        let sequence_number = || record.change.sequence_number.as_deref().map(str::to_owned);
        match &mut done.bad {
            Some(bad) => bad.sequence_numbers.push(sequence_number()),
            None => match audit_line(&record, &rewritten) {
                Ok(line) => done.lines.push(line),
                Err(error) => {
                    done.bad = Some(BadRecords {
                        index: done.records - 1,
                        error,
                        sequence_numbers: vec![sequence_number()],
                    });
                }
            },
        }
        rewritten.clear();
    }
    Ok(done)
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
        event: LambdaEvent<RawStreamEvent>,
    ) -> Result<DynamoDbEventResponse, FunctionError> {
        let deadline = (event.context.deadline > 0)
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline));
        // An event that cannot be read fails the invocation: no record of it can be reported.
        let Transformed {
            lines,
            bad,
            records,
        } = transform(&event.payload.0).map_err(ForwardError::BadEvent)?;
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
        if let Some(BadRecords {
            index,
            error,
            sequence_numbers,
        }) = &bad
        {
            tracing::error!(error = %error, record = index, "stream record cannot be audited; reported for retry (after the mapping's retries it goes to the on-failure queue)");
            for sequence_number in sequence_numbers {
                match sequence_number {
                    Some(sequence_number) => failed.push(sequence_number),
                    // Cannot be reported item by item: fail the batch rather than lose it.
                    None => return Err(ForwardError::BadRecord(error.clone()).into()),
                }
            }
        }
        let summary = BatchSummary {
            records,
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
            let error = match (report.undelivered.first(), &bad) {
                (Some(first), _) => ForwardError::NothingDelivered {
                    stream: self.config.delivery_stream.clone(),
                    reason: first.reason.clone(),
                    retryable: first.retryable,
                },
                (None, Some(bad)) => ForwardError::BadRecord(bad.error.clone()),
                (None, None) => return Ok(stream_response(failed)),
            };
            return Err(error.into());
        }
        Ok(stream_response(failed))
    }
}
