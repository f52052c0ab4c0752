//! Fault paths the emulator cannot produce, faked with aws-smithy-mocks on the KMS client
//! (S3 and DynamoDB stay on the emulator): a throttled `Sign` fails the run as retryable and
//! releases its claim, and a key that returns signatures its own public key does not verify is
//! never used.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::{Classify, Env};
use aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput;
use aws_sdk_kms::operation::sign::{SignError, SignOutput};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyUsageType, SigningAlgorithmSpec};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use devstack::evidence::EvidenceStack;
use devstack::moto;
use digest_writer::handler::DigestWriter;
use digest_writer::{DigestError, RunRequest};
use std::time::Duration;

struct Setup {
    stack: EvidenceStack,
    bucket: String,
    writer: DigestWriter,
    public_key_rule: Rule,
}

async fn setup() -> Setup {
    let stack = EvidenceStack::start(&moto().isolated()).await.unwrap();
    let bucket = stack.versioned_bucket("evidence").await.unwrap();
    let env = stack.writer_env(&bucket, &[format!("{bucket}/rds-logs/")], 1, None);
    let config = digest_writer::Config::from_env(&Env::from_pairs(env)).unwrap();
    let mut writer = DigestWriter::new(config, &stack.aws.sdk_config().await);
    writer.store.s3 = stack.s3.clone();
    stack
        .s3
        .put_object()
        .bucket(&bucket)
        .key("rds-logs/a")
        .body(b"a".to_vec().into())
        .send()
        .await
        .unwrap();
    // The real key's public half, served by the fake.
    let real = stack
        .kms
        .get_public_key()
        .key_id(&stack.key_arn)
        .send()
        .await
        .unwrap();
    let der = real.public_key().unwrap().clone();
    let arn = stack.key_arn.clone();
    let public_key_rule = mock!(aws_sdk_kms::Client::get_public_key).then_output(move || {
        GetPublicKeyOutput::builder()
            .key_id(&arn)
            .public_key(der.clone())
            .key_usage(KeyUsageType::SignVerify)
            .signing_algorithms(SigningAlgorithmSpec::EcdsaSha256)
            .build()
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Setup {
        stack,
        bucket,
        writer,
        public_key_rule,
    }
}

impl Setup {
    async fn stored_keys(&self) -> usize {
        self.stack
            .keys_under(&self.bucket, "auditkit-digests/")
            .await
            .unwrap()
            .len()
    }

    async fn claim_left(&self) -> bool {
        let item = self.stack.head_item(&self.bucket).await.unwrap();
        item.is_some_and(|i| i.get("pending_key").is_some())
    }
}

#[tokio::test]
async fn a_throttled_signature_fails_the_run_retryably_and_releases_its_claim() {
    let mut s = setup().await;
    let throttled = mock!(aws_sdk_kms::Client::sign).then_error(|| {
        SignError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    s.writer.signer.kms = devstack::mocked_client!(aws_sdk_kms, [&s.public_key_rule, &throttled]);
    let error = s
        .writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DigestError::Aws {
                operation: "Sign",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.retryable(), "throttling is worth a retry: {error}");
    assert_eq!(s.stored_keys().await, 0, "nothing stored");
    assert!(!s.claim_left().await, "the claim is released for the retry");
}

#[tokio::test]
async fn a_signature_the_public_key_does_not_verify_is_never_stored() {
    let mut s = setup().await;
    let forged = mock!(aws_sdk_kms::Client::sign).then_output(|| {
        SignOutput::builder()
            .signature(Blob::new(vec![
                0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01,
            ]))
            .build()
    });
    s.writer.signer.kms = devstack::mocked_client!(aws_sdk_kms, [&s.public_key_rule, &forged]);
    let error = s
        .writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap_err();
    assert!(matches!(error, DigestError::SigningKey { .. }), "{error}");
    assert!(!error.retryable());
    assert_eq!(s.stored_keys().await, 0);
    assert!(!s.claim_left().await);
}
