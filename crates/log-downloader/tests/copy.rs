//! Copies against the RDS log-file double and moto's S3 and DynamoDB, over real HTTP.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
use common::{copier, order, write_source};

use devstack::audit_logs::{aurora_line, write_exact};
use devstack::backup::{BackupStack, listed_version};
use log_downloader::handler::Copier;
use log_downloader::{CopyOutcome, meta};
use sha2::Digest;
use std::sync::atomic::Ordering;

const MB: usize = 1_048_576;

/// A stack whose REST endpoint refuses every request: copies go through the Portion API.
async fn portion_only_stack() -> BackupStack {
    let stack = BackupStack::start().await.unwrap();
    stack
        .rds_logs
        .faults()
        .refuse_rest
        .store(true, Ordering::SeqCst);
    stack
}

/// Writes `bytes` as the source file `name` of `instance`.
fn write_raw(stack: &BackupStack, instance: &str, name: &str, bytes: &[u8]) {
    let path = stack.rds_logs.instance_dir(instance).join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
}

/// A source log: an ordinary line, `hostile` (as raw bytes), another ordinary line.
fn log_around(instance: &str, hostile: &[u8]) -> Vec<u8> {
    let mut source = aurora_line(instance, 1).into_bytes();
    source.extend_from_slice(hostile);
    source.extend_from_slice(aurora_line(instance, 2).as_bytes());
    source
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Files of the sizes the issue names: 0 B, one line, exactly 1 MB, 1 MB + one line, 50 MB.
fn write_matrix(stack: &BackupStack, instance: &str) -> Vec<(String, Vec<u8>)> {
    let dir = stack.rds_logs.instance_dir(instance);
    let one_line = aurora_line(instance, 7);
    let sizes = [
        ("audit/audit.log.0.2026-11-22-08-30.0", 0),
        ("audit/audit.log.1.2026-11-22-08-30.0", one_line.len()),
        ("audit/audit.log.2.2026-11-22-08-30.0", MB),
        ("audit/audit.log.3.2026-11-22-08-30.0", MB + one_line.len()),
        ("audit/audit.log.0.2026-11-22-08-31.0", 50 * MB),
    ];
    sizes
        .iter()
        .map(|(name, size)| {
            let path = dir.join(name);
            write_exact(&path, instance, *size).unwrap();
            ((*name).to_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

async fn assert_copied_exactly(
    stack: &BackupStack,
    copier: &Copier,
    instance: &str,
    files: &[(String, Vec<u8>)],
) {
    for (name, source) in files {
        let order = order(stack, instance, name, 1).await;
        let outcome = copier
            .copy(&order)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let CopyOutcome::Copied { key, bytes, sha256 } = outcome else {
            panic!("{name}: {outcome:?}");
        };
        assert_eq!(bytes, source.len() as u64, "{name}");
        assert_eq!(sha256, sha256_hex(source), "{name}");
        let objects = stack.objects().await.unwrap();
        let object = objects.iter().find(|o| o.key == key).unwrap();
        assert!(
            object.content == *source,
            "{name}: the object differs from the source file"
        );
        // A single part carries its checksum; a multipart upload's is in its sidecar.
        let sidecar = objects
            .iter()
            .find(|o| o.key == format!("{key}{}", audit_core::s3_upload::SIDECAR_SUFFIX));
        let checksum = match sidecar {
            Some(s) => audit_core::s3_upload::parse_sidecar(&s.content).unwrap(),
            None => object.metadata.clone(),
        };
        assert_eq!(
            sidecar.is_some(),
            !object.metadata.contains_key(meta::SHA256),
            "{name}: the checksum is in exactly one place"
        );
        assert_eq!(checksum[meta::SHA256], sha256_hex(source), "{name}");
        assert_eq!(checksum[meta::SIZE], source.len().to_string());
        assert_eq!(object.metadata[meta::INSTANCE], instance);
        assert_eq!(object.metadata[meta::FILE], *name);
        assert_eq!(
            object.metadata[meta::LAST_WRITTEN],
            order.last_written.to_string()
        );
    }
}

#[tokio::test]
async fn every_byte_arrives_through_the_rest_endpoint() {
    let stack = BackupStack::start().await.unwrap();
    let files = write_matrix(&stack, "exact-rest");
    let copier = copier(&stack, "rest", 3).await;
    assert_copied_exactly(&stack, &copier, "exact-rest", &files).await;
    // One version check and one REST download per file; the Portion API never.
    let calls = stack.rds_logs.calls();
    assert!(
        calls
            .iter()
            .all(|c| c == "downloadCompleteLogFile" || c == "DescribeDBLogFiles"),
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "downloadCompleteLogFile")
            .count(),
        files.len(),
        "{calls:?}"
    );
    // The tracking rows record each copy.
    for row in stack.rows().await.unwrap() {
        assert_eq!(row["state"], "copied", "{row}");
        assert!(
            row["copied_key"]
                .as_str()
                .unwrap()
                .starts_with("rest/aurora-mysql/orders/exact-rest/")
        );
    }
}

#[tokio::test]
async fn every_byte_arrives_through_the_portion_fallback_despite_truncation_and_early_ends() {
    let stack = BackupStack::start().await.unwrap();
    let files = write_matrix(&stack, "exact-portion");
    stack
        .rds_logs
        .faults()
        .refuse_rest
        .store(true, Ordering::SeqCst);
    stack.rds_logs.faults().end_early.store(3, Ordering::SeqCst);
    let copier = copier(&stack, "portion", 3).await;
    assert_copied_exactly(&stack, &copier, "exact-portion", &files).await;
    let calls = stack.rds_logs.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "downloadCompleteLogFile")
            .count(),
        1,
        "refused once, then not tried again"
    );
    // 50 MB of ~200-byte lines: nearly every 1 MB page would have split a line.
    assert!(
        calls
            .iter()
            .filter(|c| *c == "DownloadDBLogFilePortion")
            .count()
            > 100,
        "{}",
        calls.len()
    );
    assert_eq!(
        stack.rds_logs.faults().end_early.load(Ordering::SeqCst),
        0,
        "the early ends happened"
    );
}

#[tokio::test]
async fn a_rest_download_that_ends_early_is_retried_and_never_recorded_short() {
    let stack = BackupStack::start().await.unwrap();
    let path = write_source(&stack, "short-db", "audit/server_audit.log", 3 * MB);
    stack.rds_logs.faults().end_early.store(1, Ordering::SeqCst);
    let copier = copier(&stack, "short", 3).await;
    let order = order(&stack, "short-db", "audit/server_audit.log", 1).await;
    let outcome = copier.copy(&order).await.unwrap();
    assert!(
        matches!(outcome, CopyOutcome::Copied { bytes, .. } if bytes == 3 * MB as u64),
        "{outcome:?}"
    );
    let objects = stack.objects().await.unwrap();
    assert_eq!(objects.len(), 1);
    assert!(objects[0].content == std::fs::read(&path).unwrap());
}

#[tokio::test]
async fn an_order_for_a_version_renamed_away_is_dropped_without_a_copy() {
    let stack = BackupStack::start().await.unwrap();
    let path = write_source(&stack, "mysql-db", "audit/server_audit.log", 5_000);
    let copier = copier(&stack, "renamed", 3).await;
    let order = order(&stack, "mysql-db", "audit/server_audit.log", 1).await;
    // Rename rotation before the copy: the name now holds a new, small file.
    std::fs::rename(&path, path.with_extension("log.1")).unwrap();
    write_exact(&path, "mysql-db", 40).unwrap();
    let outcome = copier.copy(&order).await.unwrap();
    assert_eq!(outcome, CopyOutcome::SourceReplaced);
    assert!(
        stack.objects().await.unwrap().is_empty(),
        "a short copy must not be stored"
    );
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(
        row["state"], "observed",
        "handed back so the next poll orders the new bytes"
    );
}

/// Rename rotation between the order and the copy, to a *larger* file: `.1` (63 bytes) was
/// ordered, then renamed to `.2`, and a 66-byte file became `.1`. The object must carry the
/// time and bytes of what was copied, never the ordered version's key over another file's
/// bytes.
#[tokio::test]
async fn a_larger_file_renamed_in_before_the_copy_is_keyed_by_what_was_copied() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/server_audit.log.1";
    let path = write_source(&stack, "rotating-db", name, 63);
    let copier = copier(&stack, "rotated", 3).await;
    let ordered = order(&stack, "rotating-db", name, 1).await;
    std::fs::rename(&path, path.with_extension("2")).unwrap();
    write_exact(&path, "rotating-db", 66).unwrap();
    let later = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(ordered.last_written + 5_000).unwrap());
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (size_now, written_now) = listed_version(&path).unwrap();
    assert_ne!(written_now, ordered.last_written);

    let outcome = copier.copy(&ordered).await.unwrap();
    let CopyOutcome::Copied { key, bytes, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(bytes, 66);
    assert!(key.ends_with(&format!("{name}.{written_now}.gz")), "{key}");
    let objects = stack.objects().await.unwrap();
    assert_eq!(objects.len(), 1);
    let object = &objects[0];
    assert!(object.content == std::fs::read(&path).unwrap());
    assert_eq!(object.metadata[meta::LAST_WRITTEN], written_now.to_string());
    assert_eq!(object.metadata[meta::SIZE], size_now.to_string());
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["copied_last_written"], written_now, "{row}");
}

#[tokio::test]
async fn a_replayed_order_creates_no_second_object() {
    let stack = BackupStack::start().await.unwrap();
    // 12 MB of hex digests: about half compresses away, so the gzip still spans two 5 MiB
    // parts (a multipart upload, whose metadata is fixed before its checksum is known).
    let mut source = Vec::with_capacity(12 * MB);
    let mut digest = [0u8; 32];
    while source.len() < 12 * MB {
        digest = sha2::Sha256::digest(digest).into();
        source.extend_from_slice(hex::encode(digest).as_bytes());
        source.push(b'\n');
    }
    write_raw(
        &stack,
        "replay-db",
        "audit/audit.log.0.2026-11-22-08-30.0",
        &source,
    );
    let path = stack
        .rds_logs
        .instance_dir("replay-db")
        .join("audit/audit.log.0.2026-11-22-08-30.0");
    let copier = copier(&stack, "replay", 3).await;
    let order = order(
        &stack,
        "replay-db",
        "audit/audit.log.0.2026-11-22-08-30.0",
        1,
    )
    .await;
    let first = copier.copy(&order).await.unwrap();
    let second = copier.copy(&order).await.unwrap();
    let CopyOutcome::Copied { key, .. } = &first else {
        panic!("{first:?}");
    };
    assert_eq!(second, CopyOutcome::AlreadyCopied { key: key.clone() });
    // Two keys, each written once: the backup and the sidecar holding its checksum (a
    // multipart upload's metadata is fixed before the checksum is known; a copy onto itself
    // would be a second version, which a validator must take for an overwrite).
    let sidecar = format!("{key}{}", audit_core::s3_upload::SIDECAR_SUFFIX);
    assert_eq!(
        stack.version_counts().await.unwrap(),
        [(key.clone(), 1), (sidecar.clone(), 1)]
            .into_iter()
            .collect()
    );
    let objects = stack.objects().await.unwrap();
    let backup = objects.iter().find(|o| &o.key == key).unwrap();
    assert!(backup.content == std::fs::read(&path).unwrap());
    assert!(
        !backup.metadata.contains_key(meta::SHA256),
        "no metadata added after the upload"
    );
    let written = objects.iter().find(|o| o.key == sidecar).unwrap();
    let checksum = audit_core::s3_upload::parse_sidecar(&written.content).unwrap();
    assert_eq!(
        checksum[meta::SHA256],
        sha256_hex(&std::fs::read(&path).unwrap())
    );
    assert_eq!(checksum[meta::SIZE], source.len().to_string());
}

#[tokio::test]
async fn throttled_rds_calls_are_retried() {
    let stack = BackupStack::start().await.unwrap();
    let path = write_source(
        &stack,
        "busy-db",
        "audit/audit.log.0.2026-11-22-08-30.0",
        2 * MB,
    );
    let copier = copier(&stack, "busy", 3).await;
    let order = order(&stack, "busy-db", "audit/audit.log.0.2026-11-22-08-30.0", 1).await;
    stack.rds_logs.faults().throttle.store(2, Ordering::SeqCst);
    let outcome = copier.copy(&order).await.unwrap();
    assert!(matches!(outcome, CopyOutcome::Copied { .. }), "{outcome:?}");
    assert_eq!(stack.rds_logs.faults().throttle.load(Ordering::SeqCst), 0);
    let objects = stack.objects().await.unwrap();
    assert!(
        objects[0].content == std::fs::read(&path).unwrap(),
        "the retried copy is byte-exact"
    );
    // Throttling is a reason to wait, not to give up the REST endpoint.
    assert!(
        !stack
            .rds_logs
            .calls()
            .iter()
            .any(|c| c == "DownloadDBLogFilePortion")
    );
}

#[tokio::test]
async fn an_object_left_without_its_checksum_is_measured_and_completed_beside_never_on_top() {
    let stack = BackupStack::start().await.unwrap();
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let path = write_source(&stack, "torn-db", name, 200_000);
    let source = std::fs::read(&path).unwrap();
    let copier = copier(&stack, "torn", 3).await;
    let order = order(&stack, "torn-db", name, 1).await;
    // An earlier attempt completed the upload but stopped before its checksum was written.
    let key = log_downloader::backup_key("torn", &order, true);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &source).unwrap();
    stack
        .s3
        .put_object()
        .bucket(&stack.bucket)
        .key(&key)
        .body(gz.finish().unwrap().into())
        .send()
        .await
        .unwrap();

    let outcome = copier.copy(&order).await.unwrap();
    assert_eq!(outcome, CopyOutcome::AlreadyCopied { key: key.clone() });
    let sidecar = format!("{key}{}", audit_core::s3_upload::SIDECAR_SUFFIX);
    assert_eq!(
        stack.version_counts().await.unwrap(),
        [(key.clone(), 1), (sidecar.clone(), 1)]
            .into_iter()
            .collect(),
        "the object is left as it is (one version); its checksum goes beside it"
    );
    let objects = stack.objects().await.unwrap();
    let written = objects.iter().find(|o| o.key == sidecar).unwrap();
    let checksum = audit_core::s3_upload::parse_sidecar(&written.content).unwrap();
    assert_eq!(checksum[meta::SHA256], sha256_hex(&source));
    assert_eq!(checksum[meta::SIZE], source.len().to_string());
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["copied_sha256"], sha256_hex(&source));
    assert_eq!(row["copied_size"], source.len());
}

/// A database user logs statements ending in RDS's truncation notice. Through the Portion
/// fallback they must come through as they are (they were taken for cut lines, the page shrank
/// to one line, and the file was given up as `LineTooLong`).
#[tokio::test]
async fn logged_text_that_imitates_the_truncation_notice_is_copied_exactly() {
    let stack = portion_only_stack().await;
    let instance = "mimic-db";
    let name = "audit/audit.log.0.2026-11-22-08-30.0";
    let mut source = Vec::new();
    for i in 0..3_000 {
        let line = aurora_line(instance, i);
        source.extend_from_slice(line.trim_end_matches('\n').as_bytes());
        source.extend_from_slice(log_downloader::download::TRUNCATION_NOTICE.as_bytes());
        source.push(b'\n');
    }
    write_raw(&stack, instance, name, &source);
    let copier = copier(&stack, "mimic", 2).await;
    assert_copied_exactly(&stack, &copier, instance, &[(name.to_owned(), source)]).await;
}

/// A line over 1 MB can never come through the Portion API (a documented RDS limit): the copy
/// fails for good, and the row says why, so a file that stays `due` is not a mystery.
#[tokio::test]
async fn a_line_over_1_mb_on_the_portion_api_is_a_failure_the_row_names() {
    let stack = portion_only_stack().await;
    let instance = "huge-line-db";
    let name = "audit/server_audit.log";
    let mut source = aurora_line(instance, 1).into_bytes();
    source.extend(std::iter::repeat_n(b'x', 1_200_000));
    source.push(b'\n');
    write_raw(&stack, instance, name, &source);
    let copier = copier(&stack, "huge", 2).await;
    let order = order(&stack, instance, name, 1).await;
    let error = copier.copy(&order).await.unwrap_err();
    assert_eq!(audit_core::Classify::code(&error), "LineTooLong", "{error}");
    assert!(stack.objects().await.unwrap().is_empty());
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["state"], "due", "{row}");
    assert_eq!(row["last_copy_error"], "LineTooLong", "{row}");
    assert!(row["last_copy_error_at"].as_i64().is_some(), "{row}");
}

/// A latin1 client's `caf\xe9` in an audit log: the Portion API returns U+FFFD in its place,
/// so its copy is longer than the file and not the file. It is stored (better than nothing)
/// beside the exact key, marked lossy, without `source-sha256`, and not recorded as a copy:
/// the file stays due, and the exact copy through REST later takes the exact key.
#[tokio::test]
async fn bytes_the_portion_api_cannot_return_make_a_marked_lossy_copy_never_an_exact_one() {
    let stack = portion_only_stack().await;
    let instance = "latin1-db";
    let name = "audit/server_audit.log";
    let source = log_around(
        instance,
        b"20261122 08:30:01,db,app,10.0.0.7,42,7,QUERY,shop,'SELECT ''caf\xe9''',0\r\n",
    );
    write_raw(&stack, instance, name, &source);
    let portion_only = copier(&stack, "latin1", 2).await;
    let order = order(&stack, instance, name, 1).await;

    let outcome = portion_only.copy(&order).await.unwrap();
    let CopyOutcome::Lossy { key, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(key.ends_with(".lossy.gz"), "{key}");
    let objects = stack.objects().await.unwrap();
    assert_eq!(objects.len(), 1);
    let object = &objects[0];
    assert!(
        object.content != source,
        "the Portion API altered the bytes"
    );
    assert_eq!(object.metadata[meta::FIDELITY], "lossy");
    assert!(
        !object.metadata.contains_key(meta::SHA256),
        "a lossy copy never claims the source's checksum: {:?}",
        object.metadata
    );
    assert_eq!(
        object.metadata[meta::COPY_SHA256],
        sha256_hex(&object.content)
    );
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["state"], "due", "not recorded as copied: {row}");
    assert_eq!(row["last_copy_error"], "LossyCopy", "{row}");

    // The REST endpoint is back (a new execution environment): the exact copy takes the
    // exact key, and the row is recorded.
    stack
        .rds_logs
        .faults()
        .refuse_rest
        .store(false, Ordering::SeqCst);
    let fresh = copier(&stack, "latin1", 2).await;
    let outcome = fresh.copy(&order).await.unwrap();
    let CopyOutcome::Copied { sha256, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(sha256, sha256_hex(&source));
    let row = &stack.rows().await.unwrap()[0];
    assert_eq!(row["state"], "copied", "{row}");
    assert!(row.get("last_copy_error").is_none(), "{row}");
}

/// RDS MySQL/MariaDB rotate by renaming (`server_audit.log.1` becomes `.2`, keeping its size
/// and `LastWritten`). The renamed file is the one already backed up: its new name is recorded
/// against the existing object, and its bytes are not stored again.
#[tokio::test]
async fn a_file_renamed_by_rotation_is_recorded_against_its_existing_copy() {
    let stack = BackupStack::start().await.unwrap();
    let instance = "renaming-db";
    let first = "audit/server_audit.log.1";
    let second = "audit/server_audit.log.2";
    let path = write_source(&stack, instance, first, 30_000);
    let copier = copier(&stack, "renaming", 2).await;
    let order_first = order(&stack, instance, first, 1).await;
    let CopyOutcome::Copied { key, .. } = copier.copy(&order_first).await.unwrap() else {
        panic!("the first copy");
    };
    // Rotation: `.1` becomes `.2` (same bytes, same time), a new file becomes `.1`.
    let dir = stack.rds_logs.instance_dir(instance);
    std::fs::rename(&path, dir.join(second)).unwrap();
    write_exact(&path, instance, 12_000).unwrap();

    let order_second = order(&stack, instance, second, 1).await;
    let outcome = copier.copy(&order_second).await.unwrap();
    assert_eq!(
        outcome,
        CopyOutcome::AlreadyCopied { key: key.clone() },
        "recorded against the existing object"
    );
    assert_eq!(
        stack.objects().await.unwrap().len(),
        1,
        "nothing stored again"
    );
    let rows = stack.rows().await.unwrap();
    let row = rows.iter().find(|r| r["log_file"] == second).unwrap();
    assert_eq!(row["state"], "copied", "{row}");
    assert_eq!(row["copied_key"], key.as_str(), "{row}");

    // The new `.1` is another file: copied as usual.
    let order_new = order(&stack, instance, first, 2).await;
    assert!(matches!(
        copier.copy(&order_new).await.unwrap(),
        CopyOutcome::Copied { .. }
    ));
    assert_eq!(stack.objects().await.unwrap().len(), 2);
}

/// Control characters in logged statements (a terminal's ESC sequences, a stray BEL or NUL)
/// come through the Portion fallback byte for byte.
#[tokio::test]
async fn control_characters_in_a_line_come_through_the_portion_api_exactly() {
    let stack = portion_only_stack().await;
    let instance = "ctrl-db";
    let name = "audit/server_audit.log";
    let source = log_around(
        instance,
        b"20261122 08:30:02,db,app,10.0.0.7,42,8,QUERY,shop,'SELECT ''\x1b[31mred\x1b[0m\x07\x00''',0\r\n",
    );
    write_raw(&stack, instance, name, &source);
    let copier = copier(&stack, "ctrl", 2).await;
    assert_copied_exactly(&stack, &copier, instance, &[(name.to_owned(), source)]).await;
}
