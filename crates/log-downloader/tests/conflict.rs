//! The bucket writer of SECURITY.md against the downloader: somebody with `s3:PutObject` on
//! the backup bucket places an object at a backup key before the copy (keys are predictable:
//! `{file}.{last written}.gz`), with metadata claiming to be the file. Against moto's S3 and
//! DynamoDB and the RDS log-file double, over real HTTP.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
use common::{copier, order, write_source};

use devstack::backup::BackupStack;
use log_downloader::handler::invocation_metrics;
use log_downloader::{CopyOutcome, backup_key, conflict_key, meta};
use sha2::Digest;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

/// Places `bytes` (gzipped) at `key` with metadata that claims them as the source.
async fn place(stack: &BackupStack, key: &str, bytes: &[u8]) {
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(key)
        .metadata(meta::SHA256, sha256_hex(bytes))
        .metadata(meta::SIZE, bytes.len().to_string())
        .body(gzip(bytes).into())
        .send()
        .await
        .unwrap();
}

/// Before: the downloader found the object, read its metadata and recorded the row as copied
/// with the forged checksum; the real log was never copied and rotated away.
#[tokio::test]
async fn an_object_placed_at_the_backup_key_is_never_adopted_and_the_real_log_is_still_stored() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let path = write_source(&stack, "squat-db", name, 300_000);
    let source = std::fs::read(&path).unwrap();
    let copier = copier(&stack, "squat", 3).await;
    let order = order(&stack, "squat-db", name, 1).await;
    let key = backup_key("squat", &order, true);
    let forged = b"2026-11-22 08:30:00 nothing happened here\n";
    place(&stack, &key, forged).await;

    let outcome = copier.copy(&order).await.unwrap();
    let beside = conflict_key(&key, &sha256_hex(&source));
    assert_eq!(
        outcome,
        CopyOutcome::Conflict {
            squatted: key.clone(),
            key: beside.clone(),
            bytes: source.len() as u64,
            sha256: sha256_hex(&source),
        }
    );
    let objects = stack.objects().await.unwrap();
    let genuine = objects.iter().find(|o| o.key == beside).unwrap();
    assert!(
        genuine.content == source,
        "the genuine copy is stored, byte for byte"
    );
    let placed = objects.iter().find(|o| o.key == key).unwrap();
    assert_eq!(placed.content, forged, "the placed object is left as it is");
    assert!(
        stack
            .version_counts()
            .await
            .unwrap()
            .values()
            .all(|n| *n == 1),
        "nothing written over anything"
    );
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["state"], "copied");
    assert_eq!(row["copied_key"], beside.as_str());
    assert_eq!(row["copied_sha256"], sha256_hex(&source));
    assert_eq!(
        row["copy_conflict"],
        key.as_str(),
        "the row names the conflict"
    );

    // The conflict is a metric the stack alarms on, and the copy still counts as copied.
    let result = Ok(Some((outcome, order.last_written)));
    let metrics = invocation_metrics(std::iter::once(&result), order.last_written);
    assert_eq!(metrics.values("CopyConflicts"), Some(&[1.0][..]));
    assert_eq!(metrics.values("FilesCopied"), Some(&[1.0][..]));

    // A replay finds its own copy beside the placed object: nothing more is stored.
    let again = copier.copy(&order).await.unwrap();
    assert_eq!(again, CopyOutcome::AlreadyCopied { key: beside });
    assert_eq!(stack.version_counts().await.unwrap().len(), 2);
}

/// The placed object holds the file's real bytes (a copy taken some other way): provably
/// this file, so it is accepted as the backup, and completed with its checksum beside it.
#[tokio::test]
async fn an_object_holding_exactly_the_files_bytes_is_accepted_as_its_copy() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let path = write_source(&stack, "same-db", name, 100_000);
    let source = std::fs::read(&path).unwrap();
    let copier = copier(&stack, "same", 3).await;
    let order = order(&stack, "same-db", name, 1).await;
    let key = backup_key("same", &order, true);
    place(&stack, &key, &source).await;

    let outcome = copier.copy(&order).await.unwrap();
    assert_eq!(outcome, CopyOutcome::AlreadyCopied { key: key.clone() });
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["copied_key"], key.as_str());
    assert!(row.get("copy_conflict").is_none());
}

/// The placed object's metadata claims the right checksum, but its bytes are not the file's:
/// the metadata is never the proof.
#[tokio::test]
async fn metadata_claiming_the_files_checksum_does_not_make_other_bytes_its_copy() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let path = write_source(&stack, "claim-db", name, 50_000);
    let source = std::fs::read(&path).unwrap();
    let copier = copier(&stack, "claim", 3).await;
    let order = order(&stack, "claim-db", name, 1).await;
    let key = backup_key("claim", &order, true);
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(&key)
        .metadata(meta::SHA256, sha256_hex(&source))
        .metadata(meta::SIZE, source.len().to_string())
        .body(gzip(b"forged").into())
        .send()
        .await
        .unwrap();

    let outcome = copier.copy(&order).await.unwrap();
    assert!(
        matches!(&outcome, CopyOutcome::Conflict { squatted, .. } if *squatted == key),
        "{outcome:?}"
    );
}

/// Somebody also predicted the conflict key (they would need the source's SHA-256): the copy
/// fails for good, naming both keys, and records nothing.
#[tokio::test]
async fn both_keys_taken_is_a_permanent_failure_that_records_nothing() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let path = write_source(&stack, "both-db", name, 20_000);
    let source = std::fs::read(&path).unwrap();
    let copier = copier(&stack, "both", 3).await;
    let order = order(&stack, "both-db", name, 1).await;
    let key = backup_key("both", &order, true);
    place(&stack, &key, b"one").await;
    place(&stack, &conflict_key(&key, &sha256_hex(&source)), b"two").await;

    let error = copier.copy(&order).await.unwrap_err();
    assert!(
        matches!(&error, log_downloader::CopyError::Conflict { .. }),
        "{error}"
    );
    assert!(!audit_core::Classify::retryable(&error));
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["state"], "due", "not recorded as copied");
    assert_eq!(row["last_copy_error"], "CopyConflict");
}
