//! Adapter over `SendMessageBatch`: ten entries per call, failed entries resent with backoff.
//!
//! `SendMessageBatch` answers 200 even when some entries fail; those come back in `Failed`
//! and the SDK's retry layer never sees them. Entries SQS blames on the sender
//! (`SenderFault`) are not retried: the same request would fail again.

use crate::{QueueEntry, SQS_BATCH_LIMIT};
use audit_core::aws::{describe, is_retryable};
use audit_core::backoff::Backoff;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::BTreeMap;

/// One entry that SQS did not accept after every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub reason: String,
    /// False when SQS blamed the request itself (retrying cannot help).
    pub retryable: bool,
}

/// Sends every entry; returns the ids SQS accepted and the entries it never accepted.
pub async fn send_all(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: Vec<QueueEntry>,
    backoff: Backoff,
) -> (Vec<String>, Vec<FailedEntry>) {
    let mut accepted = Vec::with_capacity(entries.len());
    let mut failed = Vec::new();
    for chunk in entries.chunks(SQS_BATCH_LIMIT) {
        let (ok, bad) = send_chunk(client, queue_url, chunk, backoff).await;
        accepted.extend(ok);
        failed.extend(bad);
    }
    (accepted, failed)
}

async fn send_chunk(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    chunk: &[QueueEntry],
    backoff: Backoff,
) -> (Vec<String>, Vec<FailedEntry>) {
    let mut pending: BTreeMap<&str, &QueueEntry> =
        chunk.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut accepted = Vec::with_capacity(chunk.len());
    let mut failed = Vec::new();
    let mut last_reason: BTreeMap<String, String> = BTreeMap::new();

    for attempt in 1..=backoff.max_attempts {
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
        let request_entries = pending
            .values()
            .map(|e| {
                SendMessageBatchRequestEntry::builder()
                    .id(&e.id)
                    .message_body(&e.body)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let response = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(request_entries))
            .send()
            .await;
        match response {
            Ok(output) => {
                for ok in output.successful() {
                    if pending.remove(ok.id()).is_some() {
                        accepted.push(ok.id().to_owned());
                    }
                }
                for entry in output.failed() {
                    let reason = format!("{}: {}", entry.code(), entry.message().unwrap_or(""));
                    if entry.sender_fault() {
                        if pending.remove(entry.id()).is_some() {
                            failed.push(FailedEntry {
                                id: entry.id().to_owned(),
                                reason,
                                retryable: false,
                            });
                        }
                    } else {
                        tracing::warn!(instance = entry.id(), attempt, %reason, "queue entry failed; will retry");
                        last_reason.insert(entry.id().to_owned(), reason);
                    }
                }
            }
            Err(error) => {
                let reason = describe(&error);
                if !is_retryable(&error) {
                    failed.extend(pending.keys().map(|id| FailedEntry {
                        id: (*id).to_owned(),
                        reason: reason.clone(),
                        retryable: false,
                    }));
                    pending.clear();
                    break;
                }
                tracing::warn!(attempt, %reason, "SendMessageBatch failed; will retry");
                for id in pending.keys() {
                    last_reason.insert((*id).to_owned(), reason.clone());
                }
            }
        }
    }
    failed.extend(pending.keys().map(|id| {
        FailedEntry {
            id: (*id).to_owned(),
            reason: last_reason
                .remove(*id)
                .unwrap_or_else(|| "not acknowledged by SQS".to_owned()),
            retryable: true,
        }
    }));
    (accepted, failed)
}
