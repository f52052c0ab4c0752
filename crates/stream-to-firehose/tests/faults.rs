//! Partial failures of `PutRecordBatch`, which the emulator never produces: a call that
//! succeeds while Firehose rejects some entries. Faked with aws-smithy-mocks; the handler is the
//! one Lambda runs.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use devstack::event_sources::stream_failures;

use audit_core::backoff::Backoff;
use aws_sdk_firehose::Client as Firehose;
use aws_sdk_firehose::operation::put_record_batch::{
    PutRecordBatchError, PutRecordBatchInput, PutRecordBatchOutput,
};
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_sdk_firehose::types::error::ResourceNotFoundException;
use aws_smithy_mocks::{MockResponse, Rule, mock};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream_to_firehose::Config;
use stream_to_firehose::event::RawStreamEvent;
use stream_to_firehose::handler::Forwarder;

/// Sequence numbers of the records in each call, in order.
type Calls = Arc<Mutex<Vec<Vec<String>>>>;

/// A fake `PutRecordBatch`: rejects the entries `reject(call_number, sequence_number)` names
/// (with that error code) and accepts the rest.
fn fake_put(
    reject: impl Fn(usize, &str) -> Option<&'static str> + Send + Sync + 'static,
) -> (Rule, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let rule = mock!(Firehose::put_record_batch).then_compute_response(
        move |input: &PutRecordBatchInput| {
            let sequence_numbers: Vec<String> = input
                .records()
                .iter()
                .map(|r| {
                    let line: Value = serde_json::from_slice(r.data().as_ref()).unwrap();
                    line["sequence_number"].as_str().unwrap().to_owned()
                })
                .collect();
            let call = {
                let mut calls = seen.lock().unwrap();
                calls.push(sequence_numbers.clone());
                calls.len()
            };
            let mut failed = 0;
            let responses = sequence_numbers
                .iter()
                .map(|seq| match reject(call, seq) {
                    Some(code) => {
                        failed += 1;
                        PutRecordBatchResponseEntry::builder()
                            .error_code(code)
                            .error_message("injected")
                            .build()
                    }
                    None => PutRecordBatchResponseEntry::builder()
                        .record_id(format!("r-{call}-{seq}"))
                        .build(),
                })
                .collect();
            MockResponse::Output(
                PutRecordBatchOutput::builder()
                    .failed_put_count(failed)
                    .set_request_responses(Some(responses))
                    .build()
                    .unwrap(),
            )
        },
    );
    (rule, calls)
}

fn forwarder(rules: &[&Rule], attempts: u32) -> Forwarder {
    Forwarder {
        config: Config {
            delivery_stream: "changes".into(),
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5), attempts),
        },
        firehose: devstack::mocked_client!(aws_sdk_firehose, rules.iter().copied()),
        metrics: audit_core::metrics::MetricsOut::capture(),
    }
}

/// A stream event of `n` INSERTs with sequence numbers 1000, 1001, ...
fn event(n: usize) -> RawStreamEvent {
    let records: Vec<Value> = (0..n).map(|i| record(i, "INSERT")).collect();
    json!({ "Records": records }).to_string().into()
}

fn record(i: usize, event_name: &str) -> Value {
    json!({
        "eventID": format!("event-{i}"), "eventName": event_name, "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026",
        "dynamodb": {
            "Keys": {"orderId": {"S": i.to_string()}},
            "NewImage": {"orderId": {"S": i.to_string()}, "state": {"S": "OPEN"}},
            "SequenceNumber": (1000 + i).to_string(), "SizeBytes": 40, "StreamViewType": "NEW_IMAGE"
        }
    })
}

fn invoke_event(event: RawStreamEvent) -> lambda_runtime::LambdaEvent<RawStreamEvent> {
    lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default())
}

#[tokio::test]
async fn rejected_entries_are_resent_alone_until_accepted() {
    // First call: Firehose rejects two entries; the retry carries only those two.
    let (rule, calls) = fake_put(|call, seq| {
        (call == 1 && (seq == "1001" || seq == "1003")).then_some("ServiceUnavailableException")
    });
    let response = forwarder(&[&rule], 4)
        .handle(invoke_event(event(5)))
        .await
        .unwrap();
    assert!(
        stream_failures(&response).is_empty(),
        "everything was delivered in the end"
    );
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0],
        ["1000", "1001", "1002", "1003", "1004"],
        "stream order"
    );
    assert_eq!(
        calls[1],
        ["1001", "1003"],
        "only the rejected entries are resent"
    );
}

#[tokio::test]
async fn entries_that_keep_failing_are_reported_lowest_first_and_later_chunks_are_not_sent() {
    // 600 records: two calls' worth. Record 1003 is always rejected (InternalFailure).
    let (rule, calls) = fake_put(|_, seq| (seq == "1003").then_some("InternalFailure"));
    let forwarder = forwarder(&[&rule], 3);
    let response = forwarder.handle(invoke_event(event(600))).await.unwrap();
    // The batch's metric line is valid EMF and counts what the response reports.
    let lines = forwarder.metrics.captured();
    assert_eq!(lines.len(), 1);
    let metrics = audit_core::metrics::check_line(&lines[0]).unwrap();
    assert_eq!(metrics.dimensions["function"], "stream-to-firehose");
    assert_eq!(metrics.total("RecordsFailed"), 101.0);
    assert_eq!(metrics.total("RecordsDelivered"), 499.0);
    assert_eq!(metrics.total("RecordsResent"), 2.0);
    assert_eq!(metrics.total("ImagesOmitted"), 0.0);
    assert!(metrics.total("BytesDelivered") > 0.0);
    let failed = stream_failures(&response);
    // 1003 was never accepted; 1500..1599 were never sent (the chunk after the failure).
    let mut expected = vec!["1003".to_owned()];
    expected.extend((1500..1600).map(|s| s.to_string()));
    assert_eq!(failed, expected);
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.len(),
        3,
        "one full call, then two resends of the one entry"
    );
    assert_eq!(calls[0].len(), 500, "at most 500 records per call");
    assert!(calls[1..].iter().all(|c| c == &["1003"]));
    // Nothing after the failure was sent, so nothing is reported delivered that was not.
    assert!(calls.iter().flatten().all(|s| s.as_str() < "1500"));
}

#[tokio::test]
async fn a_response_without_an_entry_for_a_record_does_not_count_it_delivered() {
    // A malformed answer: one response entry short. The unanswered record is resent.
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let rule = mock!(Firehose::put_record_batch).then_compute_response(
        move |input: &PutRecordBatchInput| {
            let n = input.records().len();
            seen.lock().unwrap().push(vec![n.to_string()]);
            let answered = if seen.lock().unwrap().len() == 1 {
                n - 1
            } else {
                n
            };
            MockResponse::Output(
                PutRecordBatchOutput::builder()
                    .failed_put_count(0)
                    .set_request_responses(Some(
                        (0..answered)
                            .map(|i| {
                                PutRecordBatchResponseEntry::builder()
                                    .record_id(format!("r{i}"))
                                    .build()
                            })
                            .collect(),
                    ))
                    .build()
                    .unwrap(),
            )
        },
    );
    let response = forwarder(&[&rule], 2)
        .handle(invoke_event(event(3)))
        .await
        .unwrap();
    assert!(stream_failures(&response).is_empty());
    assert_eq!(
        *calls.lock().unwrap(),
        [vec!["3".to_owned()], vec!["1".to_owned()]]
    );

    // With no attempt left, the unanswered record is reported.
    let rule = mock!(Firehose::put_record_batch).then_output(|| {
        PutRecordBatchOutput::builder()
            .failed_put_count(0)
            .set_request_responses(Some(vec![
                PutRecordBatchResponseEntry::builder()
                    .record_id("r0")
                    .build(),
            ]))
            .build()
            .unwrap()
    });
    let response = forwarder(&[&rule], 1)
        .handle(invoke_event(event(2)))
        .await
        .unwrap();
    assert_eq!(stream_failures(&response), ["1001"]);
}

#[tokio::test]
async fn a_batch_with_nothing_delivered_fails_the_invocation() {
    // The stream is missing: Firehose refuses the request itself; retrying cannot help.
    let rule = mock!(Firehose::put_record_batch).then_error(|| {
        PutRecordBatchError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Firehose changes not found")
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message("Firehose changes not found")
                        .build(),
                )
                .build(),
        )
    });
    let error = forwarder(&[&rule], 5)
        .handle(invoke_event(event(3)))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Permanent.FirehoseDeliveryFailed");
    assert!(error.message.contains("not found"), "{}", error.message);
    assert_eq!(rule.num_calls(), 1, "a refused request is not retried");

    // Every entry rejected on every attempt: also an invocation error, but retryable.
    let (rule, calls) = fake_put(|_, _| Some("ServiceUnavailableException"));
    let error = forwarder(&[&rule], 3)
        .handle(invoke_event(event(2)))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.FirehoseDeliveryFailed");
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_record_that_cannot_be_audited_is_reported_with_everything_after_it() {
    let mut records: Vec<Value> = (0..4).map(|i| record(i, "INSERT")).collect();
    records[2]["eventName"] = json!("UPSERT");
    let event = RawStreamEvent::from(json!({ "Records": records }).to_string());
    let (rule, calls) = fake_put(|_, _| None);
    let response = forwarder(&[&rule], 3)
        .handle(invoke_event(event))
        .await
        .unwrap();
    // 1000 and 1001 are delivered; Lambda retries from 1002, so 1003 comes again then.
    assert_eq!(stream_failures(&response), ["1002", "1003"]);
    assert_eq!(
        *calls.lock().unwrap(),
        [vec!["1000".to_owned(), "1001".to_owned()]]
    );

    // The first record bad: nothing delivered, so the invocation fails (a permanent error).
    let mut records: Vec<Value> = (0..2).map(|i| record(i, "INSERT")).collect();
    records[0]["dynamodb"]["NewImage"]["qty"] = json!({"N": "many"});
    let event = RawStreamEvent::from(json!({ "Records": records }).to_string());
    let (rule, _) = fake_put(|_, _| None);
    let error = forwarder(&[&rule], 3)
        .handle(invoke_event(event))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Permanent.BadStreamRecord");
    assert!(
        error.message.contains("dynamodb.NewImage.qty"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn no_resend_starts_when_the_invocation_is_about_to_time_out() {
    // One second left: less than a resend's reserve, so the rejected entry is reported at once
    // rather than retried into the timeout (which would lose the whole batch's response).
    let (rule, calls) =
        fake_put(|call, seq| (call == 1 && seq == "1001").then_some("ServiceUnavailableException"));
    let mut context = lambda_runtime::Context::default();
    context.deadline = u64::try_from(audit_core::now_ms()).unwrap() + 1_000;
    let response = forwarder(&[&rule], 8)
        .handle(lambda_runtime::LambdaEvent::new(event(3), context))
        .await
        .unwrap();
    assert_eq!(stream_failures(&response), ["1001"]);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_event_that_cannot_be_read_fails_the_invocation_naming_the_field_and_sends_nothing() {
    let mut records: Vec<Value> = (0..3).map(|i| record(i, "INSERT")).collect();
    records[1]["dynamodb"]["SequenceNumber"] = json!(1001);
    let event = RawStreamEvent::from(json!({ "Records": records }).to_string());
    let (rule, calls) = fake_put(|_, _| None);
    let error = forwarder(&[&rule], 3)
        .handle(invoke_event(event))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Permanent.BadStreamEvent");
    assert!(
        error
            .message
            .contains("Records[1].dynamodb.SequenceNumber: expected a string"),
        "{}",
        error.message
    );
    assert!(calls.lock().unwrap().is_empty(), "nothing was delivered");
}
