//! Database failures moto does not produce: throttling and a cancelled transaction. The caller
//! gets the seed's 500 `DatabaseError` with a generic message; the SDK's details stay in the logs.

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
    }
}

async fn call(updater: &Updater, request: Value) -> Value {
    let payload = serde_json::from_str(&request.to_string()).unwrap();
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    table_updater::handle(updater, event).await.unwrap()
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
    let body = call(
        &updater(&[&rule]),
        json!({"id": "u", "attributes": {"a": 1}}),
    )
    .await;
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "DatabaseError");
    assert!(!body.to_string().contains("arn:aws"), "{body}");
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
