//! digest-writer against the emulator: the real binary under a local Lambda Runtime API (the
//! schedule's event, a bad event, a bad configuration), and a run that completes or releases
//! the claim of a run that died.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::Env;
use audit_core::digest::{self, DigestKind};
use devstack::evidence::EvidenceStack;
use devstack::{InvokeError, LocalLambda, moto};
use digest_writer::RunRequest;
use digest_writer::handler::DigestWriter;
use serde_json::{Value, json};
use std::time::Duration;

struct Setup {
    stack: EvidenceStack,
    bucket: String,
    env: Vec<(String, String)>,
}

async fn setup() -> Setup {
    let stack = EvidenceStack::start(&moto().isolated()).await.unwrap();
    let bucket = stack.locked_bucket("evidence", 1).await.unwrap();
    let env = stack.writer_env(&bucket, &[format!("{bucket}/rds-logs/")], 1, None);
    Setup { stack, bucket, env }
}

impl Setup {
    async fn put(&self, key: &str, body: &[u8]) {
        self.stack
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }

    async fn stored_digest(&self, key: &str) -> digest::EvidenceDigest {
        let gzip = devstack::AwsEnv::object_bytes(&self.stack.s3, &self.bucket, key)
            .await
            .unwrap();
        digest::decode(&gzip).unwrap().0
    }

    async fn writer(&self) -> DigestWriter {
        self.writer_with(self.env.clone()).await
    }

    async fn writer_with(&self, env: Vec<(String, String)>) -> DigestWriter {
        let config = digest_writer::Config::from_env(&Env::from_pairs(env)).unwrap();
        let mut writer = DigestWriter::new(config, &self.stack.aws.sdk_config().await);
        writer.store.s3 = self.stack.s3.clone();
        writer
    }

    async fn head(&self) -> Value {
        self.stack.head_item(&self.bucket).await.unwrap().unwrap()
    }

    async fn digest_keys(&self) -> Vec<String> {
        let mut keys = self
            .stack
            .keys_under(&self.bucket, "auditkit-digests/")
            .await
            .unwrap();
        keys.retain(|k| k.ends_with(".json.gz"));
        keys
    }

    /// A stored object's user metadata and bytes.
    async fn object(&self, key: &str) -> (std::collections::HashMap<String, String>, Vec<u8>) {
        let object = self
            .stack
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let metadata = object.metadata().cloned().unwrap_or_default();
        (metadata, object.body.collect().await.unwrap().to_vec())
    }
}

/// One run closing the windows up to `end` (and no later ones).
async fn up_to(writer: &DigestWriter, end: i64) -> digest_writer::handler::RunSummary {
    writer
        .run(
            RunRequest::UpTo { window_end_ms: end },
            audit_core::now_ms(),
        )
        .await
        .unwrap()
}

fn scheduled_event() -> Value {
    json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T07:05:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/digests"], "detail": {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_function_writes_a_signed_digest_and_one_metric_line() {
    let s = setup().await;
    s.put("rds-logs/db-1/a.log.gz", b"a").await;
    s.put("rds-logs/db-1/b.log.gz", b"bb").await;
    s.put("elsewhere/not-evidence", b"c").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let function = LocalLambda::builder(env!("CARGO_BIN_EXE_digest-writer"))
        .envs(s.env.clone())
        .start()
        .await
        .unwrap();
    let response = function.invoke(&scheduled_event()).await.unwrap();
    assert_eq!(response["digests"][0]["sequence"], 1, "{response}");
    assert_eq!(response["digests"][0]["objects"], 2, "{response}");
    assert_eq!(response["objects_hashed"], 2);
    assert_eq!(response["bytes_hashed"], 3);

    // The stored digest: the objects' hashes, and a signature in metadata and sidecar that
    // verifies with the key's public key over CloudTrail's signing string.
    let key = response["digests"][0]["key"].as_str().unwrap();
    let (metadata, gzip) = s.object(key).await;
    let signature = metadata["signature"].clone();
    assert_eq!(metadata["signature-algorithm"], "ECDSA_SHA_256");
    let (document, sha256) = digest::decode(&gzip).unwrap();
    assert_eq!(document.window_start, "1970-01-01T00:00:00Z");
    assert_eq!(
        document
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.size))
            .collect::<Vec<_>>(),
        [("rds-logs/db-1/a.log.gz", 1), ("rds-logs/db-1/b.log.gz", 2)]
    );
    assert_eq!(
        document.objects[0].sha256,
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" // sha256("a")
    );
    let sidecar = devstack::AwsEnv::object_bytes(&s.stack.s3, &s.bucket, &format!("{key}.sig"))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(sidecar).unwrap(), signature);
    let public_key = s
        .stack
        .kms
        .get_public_key()
        .key_id(&s.stack.key_arn)
        .send()
        .await
        .unwrap();
    let der = public_key.public_key().unwrap().as_ref();
    assert_eq!(
        document.signing.public_key_fingerprint,
        digest::fingerprint(der)
    );
    let message = digest::signing_string(&document.window_end, &s.bucket, key, &sha256, None);
    assert!(digest::verify_signature(
        der,
        document.signing.algorithm,
        message.as_bytes(),
        &hex::decode(&signature).unwrap()
    ));
    assert_eq!(s.head().await["digest_key"], key);

    // One EMF line, valid against the specification.
    let lines: Vec<_> = function
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"_aws\""))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let record = audit_core::metrics::check_line(&lines[0]).unwrap();
    assert_eq!(record.total("DigestsWritten"), 1.0);
    assert_eq!(record.total("ObjectsHashed"), 2.0);
    assert_eq!(record.total("DigestRunFailures"), 0.0);

    // An event that is not the schedule's and not a window end is refused, changing nothing.
    match function.invoke(&json!({"window_end": "soon"})).await {
        Err(InvokeError::Function(e)) => {
            assert_eq!(e.error_type, "Permanent.InvalidEvent");
            assert!(
                e.error_message.contains("window_end"),
                "{}",
                e.error_message
            );
        }
        other => panic!("expected an invalid event, got {other:?}"),
    }
    assert_eq!(s.digest_keys().await.len(), 1);
}

#[tokio::test]
async fn a_bad_configuration_stops_the_cold_start_naming_the_variable() {
    let s = setup().await;
    for (name, value) in [
        ("EVIDENCE", "not a location"),
        ("WINDOW_SECONDS", "7"),
        ("SIGNING_KEY_ID", ""),
    ] {
        let mut env: Vec<(String, String)> =
            s.env.iter().filter(|(k, _)| k != name).cloned().collect();
        if !value.is_empty() {
            env.push((name.to_owned(), value.to_owned()));
        }
        let function = LocalLambda::builder(env!("CARGO_BIN_EXE_digest-writer"))
            .envs(env)
            .start()
            .await
            .unwrap();
        match function.invoke(&scheduled_event()).await {
            Err(InvokeError::Init { error, .. }) => {
                assert_eq!(error.error_type, "Runtime.ConfigurationError");
                assert!(
                    error.error_message.contains(name),
                    "{}",
                    error.error_message
                );
            }
            other => panic!("{name}: expected an init error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_the_digest_of_a_run_that_died_before_committing_it() {
    let s = setup().await;
    let writer = s.writer().await;
    s.put("rds-logs/a", b"a").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    let before = s.head().await;
    s.put("rds-logs/b", b"b").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Exactly one more window (a scheduled run may close several after the sleep).
    let covered = digest::parse_rfc3339(first.covered_until.as_deref().unwrap()).unwrap();
    let second = up_to(&writer, covered + 1000).await;
    assert_eq!(second.digests.len(), 1, "{second:?}");
    let stored = second.digests[0].clone();

    // Put the head back as a run that stored its digest and died would have left it: the old
    // head, and a claim older than the lease on the stored digest.
    let item = json!({
        "chain": format!("{}/auditkit-digests/", s.bucket),
        "sequence": before["sequence"], "digest_bucket": before["digest_bucket"],
        "digest_key": before["digest_key"], "signature": before["signature"],
        "covered_until": before["covered_until"],
        "pending_sequence": stored.sequence, "pending_key": stored.key,
        "pending_since": audit_core::now_ms() - 3_600_000,
    });
    s.stack
        .dynamodb
        .put_item()
        .table_name(&s.stack.head_table)
        .set_item(Some(serde_dynamo::to_item(item).unwrap()))
        .send()
        .await
        .unwrap();
    let digests_before = s.digest_keys().await.len();
    // Up to the stored digest's window: the run only completes what the dead one left.
    let stored_end = digest::parse_rfc3339(&stored.window_end).unwrap();
    let recovering = up_to(&writer, stored_end).await;
    assert_eq!(recovering.recovered.as_deref(), Some(stored.key.as_str()));
    assert!(recovering.digests.is_empty(), "{recovering:?}");
    let head = s.head().await;
    assert_eq!(head["sequence"], stored.sequence);
    assert_eq!(head["digest_key"], stored.key.as_str());
    assert!(head.get("pending_key").is_none(), "{head}");
    assert_eq!(
        s.digest_keys().await.len(),
        digests_before,
        "nothing written twice"
    );
    // The next run chains on from the recovered digest.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    let following = next.digests.first().unwrap();
    assert_eq!(following.sequence, stored.sequence + 1);
    let document = s.stored_digest(&following.key).await;
    assert_eq!(document.previous.unwrap().key, stored.key);
    assert_eq!(first.digests[0].kind, DigestKind::Hourly);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_claim_makes_a_run_wait_and_a_stale_unstored_one_is_released() {
    let s = setup().await;
    let writer = s.writer().await;
    let chain = format!("{}/auditkit-digests/", s.bucket);
    let claim = |since: i64| json!({"chain": chain, "pending_sequence": 1, "pending_key": "auditkit-digests/never-written.json.gz", "pending_since": since});
    let put = |item: Value| {
        s.stack
            .dynamodb
            .put_item()
            .table_name(&s.stack.head_table)
            .set_item(Some(serde_dynamo::to_item(item).unwrap()))
            .send()
    };
    s.put("rds-logs/a", b"a").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    put(claim(audit_core::now_ms())).await.unwrap();
    let waiting = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    assert!(
        waiting.skipped.is_some() && waiting.digests.is_empty(),
        "{waiting:?}"
    );

    put(claim(audit_core::now_ms() - 3_600_000)).await.unwrap();
    let resumed = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    assert_eq!(
        resumed.recovered.as_deref(),
        Some("auditkit-digests/never-written.json.gz")
    );
    assert_eq!(resumed.digests.len(), 1);
    assert_eq!(resumed.digests[0].sequence, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_added_later_has_its_history_backfilled_once() {
    let s = setup().await;
    s.put("rds-logs/a", b"a").await;
    s.put("database_audits/old-report.json", b"{}").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = s
        .writer()
        .await
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    assert_eq!(
        first.digests[0].objects, 1,
        "only rds-logs/ is evidence yet"
    );

    // The reports prefix joins the evidence: its history is unproven, not late.
    let mut env = s.env.clone();
    env.retain(|(k, _)| k != "EVIDENCE");
    env.push((
        "EVIDENCE".into(),
        format!("{b}/rds-logs/,{b}/database_audits/", b = s.bucket),
    ));
    let writer = s.writer_with(env).await;
    let covered = digest::parse_rfc3339(first.covered_until.as_deref().unwrap()).unwrap();
    let second = up_to(&writer, covered).await;
    assert_eq!(second.digests.len(), 1, "{second:?}");
    assert_eq!(second.digests[0].kind, DigestKind::Backfill);
    let document = s.stored_digest(&second.digests[0].key).await;
    assert_eq!(document.window_start, "1970-01-01T00:00:00Z");
    assert_eq!(
        document
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["database_audits/old-report.json"]
    );
    // Once covered, it is not backfilled again.
    let third = up_to(&writer, covered).await;
    assert!(third.digests.is_empty(), "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_signs_with_pkcs1_and_the_signature_verifies() {
    let s = setup().await;
    let key = s
        .stack
        .kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_owned();
    let mut env = s.env.clone();
    env.retain(|(k, _)| k != "SIGNING_KEY_ID");
    env.push(("SIGNING_KEY_ID".into(), arn.clone()));
    let writer = s.writer_with(env).await;
    s.put("rds-logs/a", b"a").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let summary = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    let key_name = &summary.digests[0].key;
    let (metadata, gzip) = s.object(key_name).await;
    assert_eq!(metadata["signature-algorithm"], "RSASSA_PKCS1_V1_5_SHA_256");
    let signature = hex::decode(&metadata["signature"]).unwrap();
    let (document, sha256) = digest::decode(&gzip).unwrap();
    let der = s
        .stack
        .kms
        .get_public_key()
        .key_id(&arn)
        .send()
        .await
        .unwrap()
        .public_key()
        .unwrap()
        .as_ref()
        .to_vec();
    let message = digest::signing_string(&document.window_end, &s.bucket, key_name, &sha256, None);
    assert!(digest::verify_signature(
        &der,
        digest::SigningAlgorithm::RsaPkcs1Sha256,
        message.as_bytes(),
        &signature
    ));
    assert_eq!(document.signing.key_id, arn);
}

#[tokio::test]
async fn a_version_deleted_between_listing_and_hashing_is_recorded_as_vanished() {
    let s = setup().await;
    let writer = s.writer().await;
    let gone = digest_writer::ListedVersion {
        bucket: s.bucket.clone(),
        key: "rds-logs/deleted-meanwhile".into(),
        version_id: None,
        size: 42,
        last_modified_ms: 1_796_022_000_000,
    };
    let recorded = writer.store.hash(&gone).await.unwrap();
    assert!(recorded.vanished);
    assert_eq!((recorded.size, recorded.sha256.as_str()), (42, ""));
    assert_eq!(recorded.last_modified, "2026-11-30T07:00:00Z");
}

/// An object nobody can read (here uploaded straight into an archive storage class, which
/// needs only `s3:PutObject`) is recorded as unreadable with its listed size, and the chain
/// goes on: the run succeeds, the next run digests the next object, and the metric counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_nobody_can_read_is_recorded_unreadable_and_the_chain_goes_on() {
    let s = setup().await;
    let writer = s.writer().await;
    s.put("rds-logs/a", b"a").await;
    s.stack
        .s3
        .put_object()
        .bucket(&s.bucket)
        .key("rds-logs/frozen")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(b"twelve bytes".to_vec().into())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .expect("an unreadable object does not fail the run");
    assert_eq!(first.unreadable_objects, 1, "{first:?}");
    let metrics = digest_writer::handler::run_metrics(Some(&first), audit_core::now_ms());
    let lines = metrics.lines(audit_core::now_ms() as u64);
    let record = audit_core::metrics::check_line(&lines[0]).unwrap();
    assert_eq!(record.total("UnreadableObjects"), 1.0);

    let mut recorded = Vec::new();
    for d in &first.digests {
        recorded.extend(s.stored_digest(&d.key).await.objects);
    }
    let frozen = recorded
        .iter()
        .find(|o| o.key == "rds-logs/frozen")
        .unwrap();
    assert_eq!((frozen.size, frozen.sha256.as_str()), (12, ""));
    assert!(
        frozen
            .unreadable
            .as_deref()
            .is_some_and(|why| why.contains("InvalidObjectState")),
        "{frozen:?}"
    );
    let readable = recorded.iter().find(|o| o.key == "rds-logs/a").unwrap();
    assert_eq!(readable.unreadable, None);
    use sha2::Digest as _;
    assert_eq!(readable.sha256, hex::encode(sha2::Sha256::digest(b"a")));

    s.put("rds-logs/b", b"b").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    assert!(!second.digests.is_empty(), "{second:?}");
    assert_eq!(second.unreadable_objects, 0);
    assert_eq!(
        s.head().await["sequence"].as_u64().unwrap(),
        second.digests.last().unwrap().sequence
    );
}
