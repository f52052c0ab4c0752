//! The insiders of SECURITY.md against `auditkit validate` and `auditkit restore`, on chains
//! the real digest-writer wrote on the emulator. Object Lock lets a bucket writer add, never
//! remove: each test adds something (a version on top of a backup, a forged digest, a file in
//! a local copy that leads elsewhere) and checks that it is named, never believed.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
use common::*;

use audit_core::digest::{self, EvidenceDigest};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

const BACKUP: &str = "rds-logs/db-1/audit.log.1.gz";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A new version of `key` with forged bytes and `source-sha256` metadata computed over them:
/// what `s3:PutObject` allows on a versioned, Object-Locked bucket.
async fn overwrite(fx: &Fixture, key: &str, forged: &[u8]) -> String {
    let put = fx
        .stack
        .s3
        .put_object()
        .bucket(&fx.evidence)
        .key(key)
        .metadata(digest::SOURCE_SHA256_METADATA, sha256_hex(forged))
        .metadata("source-size", forged.len().to_string())
        .body(gzip(forged).into())
        .send()
        .await
        .unwrap();
    put.version_id().unwrap().to_owned()
}

/// Before: the next digest-writer run signed the new version as ordinary evidence and
/// validate printed `2/2 objects valid`, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_replaced_by_a_new_version_is_overwritten_on_s3_and_in_a_local_copy() {
    let mut fx = Fixture::chain().await;
    let forged = overwrite(
        &fx,
        BACKUP,
        b"2026-11-30 07:00:01 db-1 QUERY nothing to see\n",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = fx.run().await;
    assert_eq!(
        run.digests.iter().map(|d| d.objects).sum::<usize>(),
        1,
        "signed as new evidence"
    );

    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 1, "{out}");
    let line = format!("INVALID overwritten s3://{}/{BACKUP}", fx.evidence);
    let lines = invalid_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with(&line), "{out}");
    assert!(
        lines[0].contains(&forged) && lines[0].contains("2 versions"),
        "{out}"
    );
    let (_, objects) = counts(&out);
    assert_eq!(objects, "6/7", "the version on top is never valid: {out}");

    // A local copy holds the current (forged) version: its bytes are not the first digested
    // version's, and are named as the version added on top.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("evidence");
    let key = fx.export(&dir).await;
    let (code, out) = fx.validate_dir(&dir, &key);
    assert_eq!(code, 1, "{out}");
    let path = dir.join(&fx.evidence).join(BACKUP);
    assert!(
        invalid_lines(&out).iter().any(|l| l
            .starts_with(&format!("INVALID overwritten {}", path.display()))
            && l.contains(&format!("holds version {forged}"))),
        "{out}"
    );
}

/// A digest signed by nobody trusted (any `.sig`), listing the replaced backup's new version
/// and its true hash. Before: `validate --bucket` without the head table counted the replaced
/// backup valid through it; the only finding was the forged file itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_no_trusted_key_signed_changes_no_other_finding() {
    let fx = Fixture::chain().await;
    let genuine = fx.written.iter().max_by_key(|d| d.sequence).unwrap();
    let stored = fx
        .stack
        .s3
        .get_object()
        .bucket(&fx.evidence)
        .key(&genuine.key)
        .send()
        .await
        .unwrap();
    let bytes = stored.body.collect().await.unwrap().into_bytes();
    let (mut forged, _): (EvidenceDigest, String) = digest::decode(&bytes).unwrap();

    let replaced = b"forged backup\n";
    let version = overwrite(&fx, BACKUP, replaced).await;
    let head = fx
        .stack
        .s3
        .head_object()
        .bucket(&fx.evidence)
        .key(BACKUP)
        .version_id(&version)
        .send()
        .await
        .unwrap();
    let replaced_gzip = gzip(replaced);
    let listed = digest::DigestedObject {
        bucket: fx.evidence.clone(),
        key: BACKUP.to_owned(),
        version_id: Some(version.clone()),
        size: head.content_length().unwrap() as u64,
        sha256: sha256_hex(&replaced_gzip),
        last_modified: digest::rfc3339(head.last_modified().unwrap().to_millis().unwrap()),
        source_sha256: Some(sha256_hex(replaced)),
        source_size: Some(replaced.len() as u64),
        vanished: false,
        unreadable: None,
    };
    // Keys that would leave a local copy, if a forged digest's contents were ever used.
    let mut escape = listed.clone();
    escape.key = "../../../../etc/passwd".to_owned();
    let mut absolute = listed.clone();
    absolute.key = "/etc/passwd".to_owned();
    forged.objects = vec![listed, escape, absolute];
    forged.sequence = 9_999;
    forged.window_end = "9999-12-31T00:00:00Z".to_owned();
    let key = format!(
        "{}9999/12/31/auditkit-digest_99991231T000000Z{}",
        digest::DEFAULT_PREFIX,
        digest::DIGEST_SUFFIX
    );
    forged.digest_key = key.clone();
    let encoded = digest::encode(&forged);
    fx.put(&fx.evidence, &key, encoded.gzip, None).await;
    fx.put(&fx.evidence, &format!("{key}.sig"), b"00ff".to_vec(), None)
        .await;

    // As an auditor holding a copy of the bucket runs it: no head table.
    let (code, out) = fx.auditkit(&[
        "validate",
        "--bucket",
        &fx.evidence,
        "--key-id",
        &fx.stack.key_arn,
    ]);
    assert_eq!(code, 1, "{out}");
    let lines = invalid_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("INVALID bad-signature s3://{}/{key}", fx.evidence))),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "INVALID overwritten s3://{}/{BACKUP}",
            fx.evidence
        ))),
        "the forged digest does not make the version on top valid: {out}"
    );
    let (digests, objects) = counts(&out);
    assert_eq!(
        objects, "6/6",
        "the forged digest's objects are not expected: {out}"
    );
    let all = fx.written.len();
    assert_eq!(digests, format!("{all}/{}", all + 1), "{out}");

    // In a local copy the forged digest's keys are never opened.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("evidence");
    let pem = fx.export(&dir).await;
    let (code, out) = fx.auditkit(&[
        "validate",
        "--dir",
        dir.to_str().unwrap(),
        "--public-key",
        pem.to_str().unwrap(),
        "--bucket",
        &fx.evidence,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("passwd"), "{out}");
}

/// A local copy whose files lead elsewhere: a backup replaced by a symlink to `/dev/zero`
/// (which hung the validator) and a `.sig` sidecar far larger than a signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_that_leads_elsewhere_is_named_never_followed() {
    let fx = Fixture::chain().await;
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("evidence");
    let pem = fx.export(&dir).await;
    let backup = dir.join(&fx.evidence).join(BACKUP);
    std::fs::remove_file(&backup).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &backup).unwrap();
    // The newest digest's (not the one naming the backup, which must still count).
    let newest = fx.written.iter().max_by_key(|d| d.sequence).unwrap();
    let sig = dir.join(&fx.evidence).join(format!("{}.sig", newest.key));
    std::fs::write(&sig, vec![b'a'; 4096]).unwrap();

    let (code, out) = fx.validate_dir(&dir, &pem);
    assert_eq!(code, 1, "{out}");
    let lines = invalid_lines(&out);
    assert!(
        lines.iter().any(
            |l| l.starts_with(&format!("INVALID unsafe-key {}", backup.display()))
                && l.contains("symlink")
        ),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("bad-signature") && l.contains("4096 bytes, over")),
        "{out}"
    );
}

/// `auditkit restore` of a backup the bucket writer replaced: the first version comes back,
/// checked against the checksum the signed digests record (the row no longer names this copy),
/// and the version on top is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_back_the_first_version_checked_against_the_signed_digests() {
    let mut fx = Fixture::new().await;
    let (instance, file) = ("db-9", "audit/server_audit.log");
    let older = b"2026-11-30 07:00:01 db-9 CONNECT etl\n".to_vec();
    let mut newer = older.clone();
    newer.extend_from_slice(b"2026-11-30 07:05:00 db-9 QUERY DROP TABLE orders\n");
    let key =
        |lw: i64| format!("rds-logs/aurora-mysql/orders/{instance}/2026/11/30/{file}.{lw}.gz");
    let (old_key, new_key) = (key(1_796_022_001_000), key(1_796_022_300_000));
    for (k, bytes) in [(&old_key, &older), (&new_key, &newer)] {
        fx.stack
            .s3
            .put_object()
            .bucket(&fx.evidence)
            .key(k)
            .metadata(digest::SOURCE_SHA256_METADATA, sha256_hex(bytes))
            .metadata("source-size", bytes.len().to_string())
            .metadata("source-instance", instance)
            .body(gzip(bytes).into())
            .send()
            .await
            .unwrap();
    }
    // The tracking table as the stack has it (instance and file), the row recording the newer
    // copy, as the downloader leaves it.
    let tracking = devstack::unique_name("tracking");
    let key_of = |name: &str, kind| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let string = |name: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    fx.stack
        .dynamodb
        .create_table()
        .table_name(&tracking)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(key_of(
            "instance_id",
            aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .key_schema(key_of("log_file", aws_sdk_dynamodb::types::KeyType::Range))
        .attribute_definitions(string("instance_id"))
        .attribute_definitions(string("log_file"))
        .send()
        .await
        .unwrap();
    let row = serde_json::json!({
        "instance_id": instance, "log_file": file, "engine": "aurora-mysql", "cluster_id": "orders",
        "size": newer.len(), "last_written": 1_796_022_300_000_i64, "first_seen": 1, "state": "copied",
        "due_generation": 2, "copied_generation": 2, "copied_key": new_key,
        "copied_sha256": sha256_hex(&newer), "copied_size": newer.len(), "expires_at": 0,
    });
    fx.stack
        .dynamodb
        .put_item()
        .table_name(&tracking)
        .set_item(Some(serde_dynamo::to_item(row).unwrap()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fx.run().await;
    // Then the older backup is replaced, metadata and all.
    let forged = b"2026-11-30 07:00:01 db-9 CONNECT nobody\n";
    overwrite(&fx, &old_key, forged).await;

    let scratch = tempfile::tempdir().unwrap();
    let pem = scratch.path().join("key.pem");
    let (code, out) = fx.auditkit(&[
        "digest-public-key",
        "--key-id",
        &fx.stack.key_arn,
        "--out",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let target = scratch.path().join("restored.log");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--tracking-table",
            &tracking,
            "--bucket",
            &fx.evidence,
            "--instance",
            instance,
            "--file",
            file,
            "--at",
            "1796022001000",
            "--out",
            target.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fx.auditkit(&args)
    };
    // Without the digests nothing outside the object records this older copy.
    let (code, out) = restore(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--public-key") && !target.exists(), "{out}");

    let (code, out) = restore(&["--public-key", pem.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        older,
        "the first version's bytes"
    );
    assert!(out.contains("matches digest"), "{out}");
    assert!(
        out.contains("WARNING") && out.contains("on top of the backup"),
        "{out}"
    );
}

/// An upload nobody can read (straight into an archive storage class: `s3:PutObject` is
/// enough) no longer stops the digest chain. The digest records it as unreadable, and validate
/// names it, and only it, as evidence nothing proves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_upload_keeps_the_chain_going_and_is_named_unreadable() {
    let mut fx = Fixture::new().await;
    fx.put(
        &fx.evidence,
        BACKUP,
        gzip(b"line\n"),
        Some(&sha256_hex(b"line\n")),
    )
    .await;
    fx.stack
        .s3
        .put_object()
        .bucket(&fx.evidence)
        .key("rds-logs/db-1/frozen.gz")
        .storage_class(aws_sdk_s3::types::StorageClass::DeepArchive)
        .body(gzip(b"unprovable\n").into())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = fx.run().await;
    assert_eq!(run.unreadable_objects, 1, "{run:?}");

    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 1, "{out}");
    let lines = invalid_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "INVALID unreadable s3://{}/rds-logs/db-1/frozen.gz (the digest writer could not read its bytes",
            fx.evidence
        )),
        "{out}"
    );
    let (_, objects) = counts(&out);
    assert_eq!(objects, "1/2", "{out}");
}
