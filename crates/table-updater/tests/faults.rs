//! Database failures moto does not produce: throttling and a cancelled transaction. The caller
//! gets the original updater's 500 `DatabaseError` with a generic message; the SDK's details stay in the logs.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::CancellationReason;
use aws_sdk_dynamodb::types::error::{
    ProvisionedThroughputExceededException, TransactionCanceledException,
};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{Value, json};
use table_updater::updater::Updater;
use table_updater::{Config, KeyAttribute, KeyKind, KeySchema};

const SECRET: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/users internal detail";

fn updater(rules: &[&Rule]) -> Updater {
    Updater {
        config: Config {
            table_name: "users".into(),
            audit_by_default: false,
            allow_audit_opt_out: false,
            audit_table: "audit_logs".into(),
        },
        schema: KeySchema {
            partition: KeyAttribute {
                name: "id".into(),
                kind: KeyKind::S,
            },
            sort: None,
        },
        dynamodb: devstack::mocked_client!(aws_sdk_dynamodb, rules.iter().copied()),
        metrics: audit_core::metrics::MetricsOut::capture(),
    }
}

async fn call(updater: &Updater, request: Value) -> Value {
    let payload = serde_json::from_str(&request.to_string()).unwrap();
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    updater.handle(event).await.unwrap()
}

#[tokio::test]
async fn throttling_is_a_database_error_without_internal_details() {
    let rule = mock!(Dynamo::update_item).then_error(|| {
        UpdateItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message(SECRET)
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .message(SECRET)
                        .build(),
                )
                .build(),
        )
    });
    let updater = updater(&[&rule]);
    let body = call(&updater, json!({"id": "u", "attributes": {"a": 1}})).await;
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "DatabaseError");
    assert!(!body.to_string().contains("arn:aws"), "{body}");
    // The failure is counted where an alarm sees it, in a valid EMF line.
    let lines = updater.metrics.captured();
    let metrics = audit_core::metrics::check_line(&lines[0]).unwrap();
    assert_eq!(metrics.total("UpdateErrors"), 1.0);
    assert_eq!(metrics.total("UpdatesApplied"), 0.0);
}

#[tokio::test]
async fn a_transaction_cancelled_for_throttling_is_a_database_error_and_is_audited_as_failed() {
    let cancelled = mock!(Dynamo::transact_write_items).then_error(|| {
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .message(SECRET)
                .cancellation_reasons(
                    CancellationReason::builder()
                        .code("ThrottlingError")
                        .build(),
                )
                .cancellation_reasons(CancellationReason::builder().code("None").build())
                .meta(
                    ErrorMetadata::builder()
                        .code("TransactionCanceledException")
                        .build(),
                )
                .build(),
        )
    });
    let failed_record = mock!(Dynamo::put_item)
        .match_requests(|r| {
            r.table_name() == Some("audit_logs")
                && r.item()
                    .and_then(|i| i.get("status"))
                    .and_then(|s| s.as_s().ok())
                    == Some(&"failed".to_owned())
        })
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
    let body = call(
        &updater(&[&cancelled, &failed_record]),
        json!({"id": "u", "attributes": {"a": 1}, "enable_logging": true}),
    )
    .await;
    assert_eq!(body["error"], "DatabaseError");
    assert!(!body.to_string().contains("arn:aws"), "{body}");
    assert_eq!(
        failed_record.num_calls(),
        1,
        "the failed attempt left its audit record"
    );
}

/// Within DynamoDB's 10 minutes, a retry reuses the `ClientRequestToken` but its audit record
/// carries a new timestamp: DynamoDB answers IdempotentParameterMismatch. The stored audit record
/// then decides: the same request is a replay, another request with the key is refused.
#[tokio::test]
async fn a_token_mismatch_is_a_replay_only_when_the_stored_request_is_the_same() {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::types::error::IdempotentParameterMismatchException;
    use table_updater::updater::{fingerprint, log_id};

    let request = json!({"id": "u", "attributes": {"plan": "pro"}, "enable_logging": true, "idempotency_key": "req-42"});
    let schema = updater(&[]).schema;
    let plan = table_updater::request::plan(&request.to_string(), &schema, false, None).unwrap();
    for (stored_fingerprint, expected) in [
        (fingerprint("users", &plan), json!(true)),
        ("another request".to_owned(), json!(false)),
    ] {
        let mismatch = mock!(Dynamo::transact_write_items).then_error(|| {
            TransactWriteItemsError::IdempotentParameterMismatchException(
                IdempotentParameterMismatchException::builder()
                    .meta(
                        ErrorMetadata::builder()
                            .code("IdempotentParameterMismatchException")
                            .build(),
                    )
                    .build(),
            )
        });
        let expected_id = log_id("users", &plan);
        let stored = mock!(Dynamo::get_item)
            .match_requests(move |r| {
                r.table_name() == Some("audit_logs")
                    && r.key().and_then(|k| k.get("log_id"))
                        == Some(&AttributeValue::S(expected_id.clone()))
            })
            .then_output(move || {
                GetItemOutput::builder()
                    .item(
                        "request_fingerprint",
                        AttributeValue::S(stored_fingerprint.clone()),
                    )
                    .build()
            });
        let failed_record = mock!(Dynamo::put_item).then_output(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
        });
        let body = call(
            &updater(&[&mismatch, &stored, &failed_record]),
            request.clone(),
        )
        .await;
        assert_eq!(body["success"], expected, "{body}");
        assert_eq!(stored.num_calls(), 1);
        if expected == json!(false) {
            assert_eq!(body["error"], "ValidationError");
            assert_eq!(body["details"]["field"], "idempotency_key");
        }
    }
}

/// DynamoDB refuses a request it cannot run (an expression too long or malformed) with a
/// ValidationException: the caller's to fix, so a 400 with DynamoDB's words, never a 500.
#[tokio::test]
async fn a_validation_exception_is_a_400_with_dynamodbs_message() {
    let refused = mock!(Dynamo::update_item).then_error(|| {
        UpdateItemError::generic(
            ErrorMetadata::builder()
                .code("ValidationException")
                .message("Invalid ConditionExpression: Expression size has exceeded the maximum allowed size")
                .build(),
        )
    });
    let body = call(
        &updater(&[&refused]),
        json!({"id": "u", "attributes": {"a": 1}}),
    )
    .await;
    assert_eq!(body["error"], "ValidationError", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Expression size has exceeded"),
        "{body}"
    );
    assert_eq!(refused.num_calls(), 1);
}

/// An update that fits an item can still make an audit record that does not (the record holds
/// every updated value plus its own fields): refused before anything is written.
#[tokio::test]
async fn an_update_whose_audit_record_would_not_fit_is_a_400_and_writes_nothing() {
    let transaction = mock!(Dynamo::transact_write_items).then_output(|| {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
            .build()
    });
    let record = mock!(Dynamo::put_item)
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
    let big = "x".repeat(409_400);
    let body = call(
        &updater(&[&transaction, &record]),
        json!({"id": "u", "attributes": {"a": big}, "enable_logging": true}),
    )
    .await;
    assert_eq!(body["error"], "ValidationError", "{body}");
    assert_eq!(body["details"]["field"], "attributes");
    assert!(body["message"].as_str().unwrap().contains("audit record"));
    assert_eq!(transaction.num_calls(), 0, "nothing was sent");
    assert_eq!(record.num_calls(), 0, "no failed-attempt record either");
}
