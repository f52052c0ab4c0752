//! What S3 answers that the emulator cannot be made to: an object version the stack's own
//! lifecycle rule moved to an archive storage class keeps its version id, and `GetObject` on
//! it is refused with `InvalidObjectState` until it is restored (faked with aws-smithy-mocks).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use auditkit::store::Store;
use auditkit::validate::{ExpectedObject, ObjectState, judge_object};
use aws_smithy_mocks::mock;

fn expected(size: u64) -> ExpectedObject {
    ExpectedObject {
        vanished: false,
        unreadable: None,
        bucket: "evidence".into(),
        key: "rds-logs/db-1/audit.log.gz".into(),
        version_id: Some("v1".into()),
        size,
        sha256: "aa".into(),
        source_sha256: Some("bb".into()),
        later_versions: Vec::new(),
        is_later: false,
    }
}

/// An archived version is compared by the size `HeadObject` gives (which S3 answers without a
/// restore) and is neither an error of the run nor counted valid; a size that differs from
/// its digest's is a mismatch.
#[tokio::test]
async fn an_archived_version_is_checked_by_size_and_not_called_an_error() {
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.version_id() == Some("v1"))
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class</Message><StorageClass>GLACIER</StorageClass></Error>",
                ),
            )
        });
    let head = mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|r| r.version_id() == Some("v1"))
        .then_output(|| {
            aws_sdk_s3::operation::head_object::HeadObjectOutput::builder()
                .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
                .content_length(1234)
                .build()
        });
    let store = Store::S3(devstack::mocked_client!(aws_sdk_s3, [&get, &head]));
    for deep in [false, true] {
        let state = store.check(&expected(1234), deep).await.unwrap();
        assert_eq!(
            state,
            ObjectState::Archived {
                storage_class: "GLACIER".into(),
                size: 1234
            }
        );
        assert_eq!(judge_object(&expected(1234), &state, "k"), None);
        let problem = judge_object(&expected(99), &state, "k").unwrap();
        assert_eq!(problem.reason.to_string(), "hash-mismatch");
    }
    assert_eq!(head.num_calls(), 2);
}
