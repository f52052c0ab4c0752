//! Faults moto cannot produce (S3 and DynamoDB throttling), faked with aws-smithy-mocks, and
//! replays of a whole stream batch through the handler. RDS is the log-file double throughout.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use devstack::event_sources::stream_failures;

mod common;
use common::copier;

use aws_lambda_events::dynamodb::Event;
use aws_smithy_mocks::mock;
use devstack::audit_logs::write_exact;
use devstack::backup::{BackupStack, due_image, listed_version, stream_record};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const FILE: &str = "audit/audit.log.0.2026-11-22-08-30.0";

/// A stream record ordering generation `generation` of `file` of `instance` (a MODIFY from
/// the previous generation).
fn order_record(
    sequence: &str,
    instance: &str,
    file: &str,
    size: i64,
    last_written: i64,
    generation: i64,
) -> Value {
    let new = due_image(instance, file, size, last_written, generation);
    let mut old = due_image(instance, file, size, last_written, generation - 1);
    old["state"] = json!({"S": "observed"});
    stream_record(sequence, &new, Some(&old))
}

fn event(records: Vec<Value>) -> LambdaEvent<Event> {
    let payload: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
    LambdaEvent::new(payload, Context::default())
}

fn source(stack: &BackupStack, instance: &str, size: usize) -> (i64, i64) {
    let path = stack.rds_logs.instance_dir(instance).join(FILE);
    write_exact(&path, instance, size).unwrap();
    listed_version(&path).unwrap()
}

#[tokio::test]
async fn replaying_a_stream_batch_creates_no_duplicate_objects() {
    let stack = BackupStack::start().await.unwrap();
    let (size, written) = source(&stack, "replay-db", 300_000);
    let copier = copier(&stack, "faults", 2).await;
    let batch = || {
        event(vec![order_record(
            "100",
            "replay-db",
            FILE,
            size,
            written,
            1,
        )])
    };

    assert!(stream_failures(&copier.handle(batch()).await.unwrap()).is_empty());
    assert!(stream_failures(&copier.handle(batch()).await.unwrap()).is_empty());
    let objects = stack.objects().await.unwrap();
    assert_eq!(
        objects.len(),
        1,
        "{:?}",
        objects.iter().map(|o| &o.key).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn throttled_s3_is_reported_by_sequence_number_never_as_done() {
    let stack = BackupStack::start().await.unwrap();
    let (size, written) = source(&stack, "slow-s3", 100_000);
    let mut copier = copier(&stack, "faults", 2).await;
    // HeadObject says "not there"; every PutObject is throttled.
    let rule = mock!(aws_sdk_s3::Client::put_object)
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
                aws_smithy_types::body::SdkBody::from("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
            )
        });
    let head = mock!(aws_sdk_s3::Client::head_object).then_error(|| {
        aws_sdk_s3::operation::head_object::HeadObjectError::NotFound(
            aws_sdk_s3::types::error::NotFound::builder().build(),
        )
    });
    copier.s3 = devstack::mocked_client!(aws_sdk_s3, [&rule, &head]);

    let other_file = "audit/audit.log.1.2026-11-22-08-30.0";
    let other = stack.rds_logs.instance_dir("slow-s3").join(other_file);
    write_exact(&other, "slow-s3", 1_000).unwrap();
    let records = vec![
        order_record("2000", "slow-s3", other_file, 1_000, written, 1),
        order_record("900", "slow-s3", FILE, size, written, 1),
    ];
    for record in &records {
        stack
            .put_row(&record["dynamodb"]["NewImage"])
            .await
            .unwrap();
    }
    let response = copier.handle(event(records)).await.unwrap();
    // Both failed; the lowest sequence number comes first (Lambda checkpoints there).
    assert_eq!(stream_failures(&response), ["900", "2000"]);
    assert_eq!(
        rule.num_calls(),
        4,
        "each copy tried DOWNLOAD_ATTEMPTS=2 times"
    );
    let rows = stack.rows().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r["state"] == "due"),
        "nothing recorded as copied: {rows:?}"
    );
}

#[tokio::test]
async fn throttled_dynamodb_when_recording_is_reported_and_the_replay_then_succeeds() {
    let stack = BackupStack::start().await.unwrap();
    let (size, written) = source(&stack, "slow-ddb", 50_000);
    let mut copier = copier(&stack, "faults", 2).await;
    let real_dynamodb = copier.dynamodb.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ProvisionedThroughputExceededException(
            aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                .message("Rate of requests exceeds the allowed throughput.")
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                )
                .build(),
        )
    });
    // No copy under another name (the rename-rotation check finds nothing).
    let query = mock!(aws_sdk_dynamodb::Client::query)
        .then_output(|| aws_sdk_dynamodb::operation::query::QueryOutput::builder().build());
    copier.dynamodb = devstack::mocked_client!(aws_sdk_dynamodb, [&rule, &query]);
    let record = order_record("555", "slow-ddb", FILE, size, written, 1);
    stack
        .put_row(&record["dynamodb"]["NewImage"])
        .await
        .unwrap();
    let batch = || event(vec![record.clone()]);
    assert_eq!(
        stream_failures(&copier.handle(batch()).await.unwrap()),
        ["555"]
    );

    // The object is in S3 but unrecorded; Lambda retries the record, which finds the object
    // and records it without copying again.
    copier.dynamodb = real_dynamodb;
    assert!(stream_failures(&copier.handle(batch()).await.unwrap()).is_empty());
    assert_eq!(stack.objects().await.unwrap().len(), 1);
    let rows = stack.rows().await.unwrap();
    assert_eq!(rows[0]["state"], "copied", "{rows:?}");
    assert_eq!(rows[0]["copied_size"], size);
}

#[tokio::test]
async fn no_retry_starts_when_the_invocation_is_about_to_time_out() {
    let stack = BackupStack::start().await.unwrap();
    let (size, written) = source(&stack, "late-db", 10_000);
    let mut copier = copier(&stack, "faults", 3).await;
    let put = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
            aws_smithy_types::body::SdkBody::from("<Error><Code>SlowDown</Code></Error>"),
        )
    });
    let head = mock!(aws_sdk_s3::Client::head_object).then_error(|| {
        aws_sdk_s3::operation::head_object::HeadObjectError::NotFound(
            aws_sdk_s3::types::error::NotFound::builder().build(),
        )
    });
    let get = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
            aws_sdk_s3::types::error::NoSuchKey::builder().build(),
        )
    });
    copier.s3 = devstack::mocked_client!(aws_sdk_s3, [&put, &head, &get]);
    let record = order_record("7", "late-db", FILE, size, written, 1);
    let mut late = event(vec![record]);
    // 30 s left: less than the retry margin.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    late.context.deadline = (now.as_millis() + 30_000) as u64;

    let response = copier.handle(late).await.unwrap();
    assert_eq!(stream_failures(&response), ["7"]);
    assert_eq!(
        put.num_calls(),
        1,
        "one attempt, no retry past the deadline margin"
    );
}

/// S3 answers the conditional upload with 412 (the key exists), then reading it back finds no
/// object (deleted in between). Nothing is known of the bytes at that key: the copy must not be
/// recorded (it was recorded with size 0 and an empty checksum); it fails and stays due.
#[tokio::test]
async fn a_412_then_no_object_is_a_retry_never_an_empty_record() {
    let stack = BackupStack::start().await.unwrap();
    let (size, written) = source(&stack, "ghost-db", 20_000);
    let mut copier = copier(&stack, "faults", 2).await;
    let put = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(412).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
            ),
        )
    });
    let head = mock!(aws_sdk_s3::Client::head_object).then_error(|| {
        aws_sdk_s3::operation::head_object::HeadObjectError::NotFound(
            aws_sdk_s3::types::error::NotFound::builder().build(),
        )
    });
    let get = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(
            aws_sdk_s3::types::error::NoSuchKey::builder().build(),
        )
    });
    copier.s3 = devstack::mocked_client!(aws_sdk_s3, [&put, &head, &get]);
    let record = order_record("31", "ghost-db", FILE, size, written, 1);
    stack
        .put_row(&record["dynamodb"]["NewImage"])
        .await
        .unwrap();
    let response = copier.handle(event(vec![record])).await.unwrap();
    assert_eq!(stream_failures(&response), ["31"]);
    assert_eq!(put.num_calls(), 2, "retried, DOWNLOAD_ATTEMPTS=2");
    assert_eq!(
        get.num_calls(),
        2,
        "each 412 read back before anything is recorded"
    );
    let rows = stack.rows().await.unwrap();
    assert_eq!(rows[0]["state"], "due", "not recorded as copied: {rows:?}");
    assert!(rows[0].get("copied_sha256").is_none(), "{rows:?}");
}

/// One batch through the Portion API (the REST endpoint refused): an ordinary file, one whose
/// bytes are not UTF-8, and one with a line over 1 MB. The metric line an operator alarms on
/// says exactly that (one copied, one lossy, one line too long), and is valid EMF.
#[tokio::test]
async fn a_batch_reports_lossy_copies_and_lines_too_long_as_metrics() {
    let stack = BackupStack::start().await.unwrap();
    stack
        .rds_logs
        .faults()
        .refuse_rest
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let write = |instance: &str, bytes: &[u8]| {
        let path = stack.rds_logs.instance_dir(instance).join(FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        listed_version(&path).unwrap()
    };
    let (plain_size, plain_written) = source(&stack, "plain-db", 40_000);
    let (latin1_size, latin1_written) = write("latin1-db", b"20261122 08:30:01,db,app,'caf\xe9'\n");
    let mut huge = b"20261122 08:30:02,db,app,'".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1_200_000));
    huge.extend_from_slice(b"'\n");
    let (huge_size, huge_written) = write("huge-db", &huge);
    let copier = copier(&stack, "metrics", 1).await;

    let response = copier
        .handle(event(vec![
            order_record("100", "plain-db", FILE, plain_size, plain_written, 1),
            order_record("200", "latin1-db", FILE, latin1_size, latin1_written, 1),
            order_record("300", "huge-db", FILE, huge_size, huge_written, 1),
        ]))
        .await
        .unwrap();

    assert_eq!(stream_failures(&response), ["300"]);
    let lines = copier.metrics.captured();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let record = audit_core::metrics::check_line(&lines[0]).unwrap();
    assert_eq!(record.dimensions["function"], "log-downloader");
    assert_eq!(record.total("FilesCopied"), 1.0, "{record:?}");
    assert_eq!(record.total("BytesCopied"), plain_size as f64, "{record:?}");
    assert_eq!(record.total("LossyCopies"), 1.0, "{record:?}");
    assert_eq!(record.total("LinesTooLong"), 1.0, "{record:?}");
    assert_eq!(record.total("CopyFailures"), 1.0, "{record:?}");
    let (unit, lags) = &record.metrics["CopyLagSeconds"];
    assert_eq!(unit.as_deref(), Some("Seconds"));
    assert_eq!(lags.len(), 1);
    assert!(lags[0] >= 0.0, "{lags:?}");
}
