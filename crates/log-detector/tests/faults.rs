//! DynamoDB throttling, which moto cannot produce, faked with aws-smithy-mocks: the write of a
//! copy order fails retryably, so the handler reports the message for redelivery.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::Classify;
use audit_core::messages::InstanceToScan;
use aws_smithy_mocks::mock;
use log_detector::table::{PlannedWrite, Written, apply};
use log_detector::{Action, DetectError, DueReason, ListedLogFile};

fn message() -> InstanceToScan {
    serde_json::from_str(r#"{"version":1,"instance_id":"db-1","cluster_id":null,"engine":"aurora-mysql","scanned_at":"x"}"#)
        .unwrap()
}

#[tokio::test]
async fn a_throttled_order_is_a_retryable_failure_and_a_lost_race_is_not_a_failure() {
    let throttled = mock!(aws_sdk_dynamodb::Client::update_item)
        .sequence()
        .error(|| {
            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ProvisionedThroughputExceededException(
                // As parsed from a real response: the code travels in the error metadata.
                aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .build(),
                    )
                    .build(),
            )
        })
        .error(|| {
            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().build(),
            )
        })
        .build();
    let client = devstack::mocked_client!(aws_sdk_dynamodb, [&throttled]);
    let file = ListedLogFile {
        name: "audit/audit.log.0.2026-11-22-08-30.0".into(),
        size: 10,
        last_written: 1,
    };
    let message = message();
    let write = PlannedWrite {
        message: &message,
        file: &file,
        row: None,
        action: Action::OrderCopy(DueReason::NewQuiet),
        now_ms: 5,
        expires_at: 9,
    };

    let err = apply(&client, "t", &write).await.unwrap_err();
    assert!(matches!(err, DetectError::Table { .. }), "{err}");
    assert!(err.retryable(), "throttling must be redelivered: {err}");

    let lost = apply(&client, "t", &write).await.unwrap();
    assert_eq!(lost, Written::LostRace);
}
