//! Partial failures of `SendMessageBatch`, which the emulator never produces: a batch call
//! that succeeds while some entries fail. Faked with aws-smithy-mocks.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::backoff::Backoff;
use aws_sdk_sqs::Client as Sqs;
use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchInput, SendMessageBatchOutput};
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::{MockResponse, Rule, mock};
use db_scanner::QueueEntry;
use db_scanner::queue::{FailedEntry, send_all};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/scan";

fn client(rule: &Rule) -> Sqs {
    devstack::mocked_client!(aws_sdk_sqs, [rule])
}

fn entries(n: usize) -> Vec<QueueEntry> {
    (0..n)
        .map(|i| QueueEntry {
            id: format!("db-{i:02}"),
            body: format!("{{\"instance_id\":\"db-{i:02}\"}}"),
        })
        .collect()
}

fn fast(attempts: u32) -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5), attempts)
}

/// A fake `SendMessageBatch` that records each call's entry ids and fails the entries
/// `fail(call_number, id)` names (`Some(sender_fault)`).
fn fake_batch(
    fail: impl Fn(usize, &str) -> Option<bool> + Send + Sync + 'static,
) -> (Rule, Arc<Mutex<Vec<Vec<String>>>>) {
    let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let seen = calls.clone();
    let rule = mock!(Sqs::send_message_batch).then_compute_response(
        move |input: &SendMessageBatchInput| {
            let ids: Vec<String> = input.entries().iter().map(|e| e.id().to_owned()).collect();
            let call = {
                let mut calls = seen.lock().unwrap();
                calls.push(ids.clone());
                calls.len()
            };
            let mut out = SendMessageBatchOutput::builder()
                .set_successful(Some(vec![]))
                .set_failed(Some(vec![]));
            for id in &ids {
                match fail(call, id) {
                    Some(sender_fault) => {
                        out = out.failed(
                            BatchResultErrorEntry::builder()
                                .id(id)
                                .sender_fault(sender_fault)
                                .code(if sender_fault {
                                    "InvalidParameterValue"
                                } else {
                                    "InternalError"
                                })
                                .message("injected")
                                .build()
                                .unwrap(),
                        )
                    }
                    None => {
                        out = out.successful(
                            SendMessageBatchResultEntry::builder()
                                .id(id)
                                .message_id(format!("m-{id}"))
                                .md5_of_message_body("x")
                                .build()
                                .unwrap(),
                        )
                    }
                }
            }
            MockResponse::Output(out.build().unwrap())
        },
    );
    (rule, calls)
}

#[tokio::test]
async fn a_failed_entry_is_resent_alone_until_accepted() {
    // db-03 fails on its first two attempts.
    let (rule, calls) = fake_batch(|call, id| (id == "db-03" && call <= 2).then_some(false));
    let (accepted, failed) = send_all(&client(&rule), QUEUE, entries(23), fast(5)).await;

    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(accepted.len(), 23);
    let calls = calls.lock().unwrap().clone();
    // Chunks of 10, 10, 3: the first chunk's failed entry is resent alone, twice.
    assert_eq!(calls[0].len(), 10);
    assert_eq!(calls[1], ["db-03"]);
    assert_eq!(calls[2], ["db-03"]);
    assert_eq!(calls[3].len(), 10);
    assert_eq!(calls[4].len(), 3);
    assert_eq!(calls.len(), 5);
}

#[tokio::test]
async fn an_entry_still_failing_after_every_attempt_is_reported_retryable() {
    let (rule, calls) = fake_batch(|_, id| (id == "db-01").then_some(false));
    let (accepted, failed) = send_all(&client(&rule), QUEUE, entries(3), fast(4)).await;

    assert_eq!(accepted, ["db-00", "db-02"]);
    assert_eq!(
        failed,
        [FailedEntry {
            id: "db-01".into(),
            reason: "InternalError: injected".into(),
            retryable: true
        }]
    );
    assert_eq!(calls.lock().unwrap().len(), 4, "one call per attempt");
}

#[tokio::test]
async fn a_sender_fault_is_not_retried() {
    let (rule, calls) = fake_batch(|_, id| (id == "db-00").then_some(true));
    let (accepted, failed) = send_all(&client(&rule), QUEUE, entries(2), fast(5)).await;

    assert_eq!(accepted, ["db-01"]);
    assert_eq!(failed.len(), 1);
    assert!(!failed[0].retryable);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_throttled_call_is_retried_as_a_whole() {
    let rule = mock!(Sqs::send_message_batch)
        .sequence()
        .http_status(
            400,
            Some(
                r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#
                    .into(),
            ),
        )
        .times(2)
        .output(|| {
            SendMessageBatchOutput::builder()
                .set_successful(Some(
                    ["db-00", "db-01"]
                        .map(|id| {
                            SendMessageBatchResultEntry::builder()
                                .id(id)
                                .message_id("m")
                                .md5_of_message_body("x")
                                .build()
                                .unwrap()
                        })
                        .to_vec(),
                ))
                .set_failed(Some(vec![]))
                .build()
                .unwrap()
        })
        .build();
    let (accepted, failed) = send_all(&client(&rule), QUEUE, entries(2), fast(5)).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(accepted.len(), 2);
    assert_eq!(rule.num_calls(), 3);
}
