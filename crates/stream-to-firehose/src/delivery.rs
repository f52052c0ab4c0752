//! Adapter over Firehose `PutRecordBatch`: chunks in order, rejected entries resent alone.
//!
//! `PutRecordBatch` answers 200 even when some entries were rejected; those carry an
//! `ErrorCode` at their index in `RequestResponses` and the SDK's retry layer never sees them.
//! They are resent, alone, with jittered exponential backoff, while attempts and the
//! invocation's time last. When a chunk still has undelivered entries, later chunks are not
//! sent: Lambda will redeliver from the first failure anyway, and sending them now would only
//! add duplicates.

use crate::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, chunks};
use audit_core::aws::{describe, is_retryable};
use audit_core::backoff::Backoff;
use aws_sdk_firehose::types::Record;
use aws_smithy_types::Blob;
use std::time::{Duration, SystemTime};

/// A retry starts only when the invocation has this much time left after its delay: enough for
/// one `PutRecordBatch` call and the response to Lambda.
pub const RETRY_RESERVE: Duration = Duration::from_secs(3);

/// A record Firehose did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// Its index in the records given to [`deliver`].
    pub index: usize,
    pub reason: String,
    /// False when Firehose refused the request itself (a missing stream, no permission).
    pub retryable: bool,
}

/// What [`deliver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub calls: u32,
    /// Entries sent again after Firehose rejected them.
    pub resent: usize,
    /// In index order.
    pub undelivered: Vec<Undelivered>,
}

impl DeliveryReport {
    pub fn delivered(&self, total: usize) -> usize {
        total - self.undelivered.len()
    }
}

/// Sends `records` (each a complete line) to `stream`, in order.
pub async fn deliver(
    client: &aws_sdk_firehose::Client,
    stream: &str,
    records: &[&[u8]],
    backoff: Backoff,
    deadline: Option<SystemTime>,
) -> DeliveryReport {
    let sizes: Vec<usize> = records.iter().map(|r| r.len()).collect();
    let mut report = DeliveryReport::default();
    for chunk in chunks(&sizes, MAX_BATCH_RECORDS, MAX_BATCH_BYTES) {
        let end = chunk.end;
        let failed = send_chunk(
            client,
            stream,
            records,
            chunk,
            backoff,
            deadline,
            &mut report,
        )
        .await;
        if !failed.is_empty() {
            report.undelivered.extend(failed);
            report
                .undelivered
                .extend((end..records.len()).map(|index| Undelivered {
                    index,
                    reason: "not sent: an earlier record of the batch was not delivered".into(),
                    retryable: true,
                }));
            break;
        }
    }
    report
}

fn time_allows(deadline: Option<SystemTime>, delay: Duration) -> bool {
    deadline.is_none_or(|deadline| {
        deadline
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > delay + RETRY_RESERVE)
    })
}

async fn send_chunk(
    client: &aws_sdk_firehose::Client,
    stream: &str,
    records: &[&[u8]],
    chunk: std::ops::Range<usize>,
    backoff: Backoff,
    deadline: Option<SystemTime>,
    report: &mut DeliveryReport,
) -> Vec<Undelivered> {
    // Indices still to deliver, with why the last attempt failed for each.
    let mut pending: Vec<(usize, String)> = chunk.map(|i| (i, String::new())).collect();
    let mut refused: Option<String> = None;
    for attempt in 1..=backoff.max_attempts {
        let delay = backoff.delay(attempt);
        if attempt > 1 {
            if !time_allows(deadline, delay) {
                tracing::warn!(
                    attempt,
                    pending = pending.len(),
                    "no time left to resend; reporting the rest"
                );
                break;
            }
            tokio::time::sleep(delay).await;
            report.resent += pending.len();
        }
        let entries: Result<Vec<Record>, _> = pending
            .iter()
            .map(|(i, _)| Record::builder().data(Blob::new(records[*i])).build())
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                refused = Some(format!("building the request: {e}"));
                break;
            }
        };
        report.calls += 1;
        match client
            .put_record_batch()
            .delivery_stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let responses = output.request_responses();
                let mut still = Vec::new();
                for (position, (index, _)) in pending.into_iter().enumerate() {
                    // An entry counts as delivered only when its response says so: a missing
                    // response (a malformed answer) is a failure too.
                    let reason = match responses.get(position) {
                        Some(r) if r.error_code().is_none() && r.record_id().is_some() => continue,
                        Some(r) => format!(
                            "{}: {}",
                            r.error_code().unwrap_or("NoRecordId"),
                            r.error_message().unwrap_or("")
                        ),
                        None => "no response entry for this record".to_owned(),
                    };
                    still.push((index, reason));
                }
                if !still.is_empty() {
                    tracing::warn!(attempt, rejected = still.len(), first_reason = %still[0].1,
                        "Firehose rejected entries; resending them");
                }
                pending = still;
            }
            Err(error) => {
                let reason = describe(&error);
                if !is_retryable(&error) {
                    refused = Some(reason);
                    break;
                }
                tracing::warn!(attempt, %reason, "PutRecordBatch failed; will retry");
                for entry in &mut pending {
                    entry.1.clone_from(&reason);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
    }
    pending
        .into_iter()
        .map(|(index, reason)| Undelivered {
            index,
            retryable: refused.is_none(),
            reason: refused.clone().unwrap_or(reason),
        })
        .collect()
}
