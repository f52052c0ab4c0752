//! `auditkit validate` against chains the real digest-writer wrote on the emulator (S3 with
//! Object Lock and versions, KMS signatures, the DynamoDB head item), online and on a local
//! copy: a clean chain validates, and each tampering is reported with its reason.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
use common::*;

use audit_core::digest::{self};
use digest_writer::RunRequest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_a_late_object_validates_clean_on_s3_and_offline_and_locked_versions_stay() {
    let fx = Fixture::chain().await;
    let digests = fx.written.len();

    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(invalid_lines(&out).is_empty(), "{out}");
    assert_eq!(
        counts(&out),
        (format!("{digests}/{digests}"), "6/6".to_owned()),
        "{out}"
    );

    // A re-run for a window already digested changes nothing.
    let covered = fx
        .written
        .iter()
        .map(|d| digest::parse_rfc3339(&d.window_end).unwrap())
        .max()
        .unwrap();
    let rerun = fx
        .writer
        .run(
            RunRequest::UpTo {
                window_end_ms: covered,
            },
            audit_core::now_ms(),
        )
        .await
        .unwrap();
    assert!(rerun.digests.is_empty(), "{rerun:?}");

    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("evidence");
    let key = fx.export(&dir).await;
    let (code, out) = fx.validate_dir(&dir, &key);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        counts(&out),
        (format!("{digests}/{digests}"), "6/6".to_owned()),
        "{out}"
    );
    // The bucket folder holding the digests is found when not named.
    let (code, out) = fx.auditkit(&[
        "validate",
        "--dir",
        dir.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");

    // --deep decompresses each backup: only the one whose source-sha256 lies is reported.
    let (code, out) = fx.validate_s3(&["--deep"]);
    assert_eq!(code, 1, "{out}");
    let lines = invalid_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let bad = format!(
        "INVALID deep-mismatch s3://{}/rds-logs/db-1/bad-source.gz",
        fx.evidence
    );
    assert!(lines[0].starts_with(&bad), "{out}");

    // Digests and evidence carry the bucket's default retention; a locked version cannot be
    // deleted, and a plain delete only hides it (the validator reads versions).
    let newest = fx.written.iter().max_by_key(|d| d.sequence).unwrap();
    // (moto answers GetObjectRetention with the object; HeadObject carries the same facts.)
    let head = fx
        .stack
        .s3
        .head_object()
        .bucket(&fx.evidence)
        .key(&newest.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE")
    );
    assert!(head.object_lock_retain_until_date().is_some());
    let version = fx
        .stack
        .s3
        .head_object()
        .bucket(&fx.evidence)
        .key("rds-logs/db-1/audit.log.1.gz")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let refused = fx
        .stack
        .s3
        .delete_object()
        .bucket(&fx.evidence)
        .key("rds-logs/db-1/audit.log.1.gz")
        .version_id(&version)
        .send()
        .await;
    assert!(refused.is_err(), "a locked version was deleted");
    fx.stack
        .s3
        .delete_object()
        .bucket(&fx.evidence)
        .key("rds-logs/db-1/audit.log.1.gz")
        .send()
        .await
        .unwrap();
    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(
        code, 0,
        "a delete marker hides nothing from the validator: {out}"
    );

    // The reports bucket has no lock: deleting the version there is seen.
    let report = fx
        .stack
        .s3
        .head_object()
        .bucket(&fx.reports)
        .key("database_audits/report.json")
        .send()
        .await
        .unwrap();
    fx.stack
        .s3
        .delete_object()
        .bucket(&fx.reports)
        .key("database_audits/report.json")
        .version_id(report.version_id().unwrap())
        .send()
        .await
        .unwrap();
    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "INVALID missing s3://{}/database_audits/report.json",
            fx.reports
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tampering_is_reported_with_the_reason_it_names() {
    let mut fx = Fixture::chain().await;
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("evidence");
    let key = fx.export(&base).await;
    let ev = fx.evidence.clone();
    let newest = fx.newest_sequence();
    let expect = |dir: &Path, reason: &str, what: &Path| {
        let (code, out) = fx.validate_dir(dir, &key);
        assert_eq!(code, 1, "{reason}: {out}");
        let line = format!("INVALID {reason} {}", what.display());
        assert!(
            invalid_lines(&out).iter().any(|l| l.starts_with(&line)),
            "expected {line}\n{out}"
        );
        out
    };

    // An object modified.
    let dir = copy_of(&base, "modified");
    let object = dir.join(&ev).join("rds-logs/db-1/audit.log.1.gz");
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[12] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let out = expect(&dir, "hash-mismatch", &object);
    assert_eq!(invalid_lines(&out).len(), 1, "{out}");

    // An object deleted.
    let dir = copy_of(&base, "deleted");
    let object = dir.join(&fx.reports).join("database_audits/report.json");
    std::fs::remove_file(&object).unwrap();
    expect(&dir, "missing", &object);

    // A digest in the middle of the chain deleted.
    let dir = copy_of(&base, "gap");
    let middle = fx.digest_path(&dir, 2);
    std::fs::remove_file(&middle).unwrap();
    expect(&dir, "chain-gap", &middle);

    // The newest digest deleted: the head item outside the bucket still names it.
    let dir = copy_of(&base, "tail");
    let tail = fx.digest_path(&dir, newest);
    std::fs::remove_file(&tail).unwrap();
    expect(&dir, "chain-tail-missing", &tail);

    // An object added under an evidence prefix, dated inside the validated period.
    let dir = copy_of(&base, "added");
    let added = dir
        .join(&ev)
        .join("dynamodb-changes/2026/11/30/07/forged.gz");
    std::fs::write(&added, gzip(b"{}\n")).unwrap();
    let genesis_time = std::fs::metadata(dir.join(&ev).join("rds-logs/db-1/audit.log.1.gz"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&added)
        .unwrap()
        .set_modified(genesis_time)
        .unwrap();
    expect(&dir, "unlisted", &added);

    // A digest edited (an object's hash changed to match a forged object).
    let dir = copy_of(&base, "edited");
    let edited = fx.digest_path(&dir, 1);
    let (mut document, _) = digest::decode(&std::fs::read(&edited).unwrap()).unwrap();
    document.objects[0].sha256 = "00".repeat(32);
    std::fs::write(&edited, digest::encode(&document).gzip).unwrap();
    expect(&dir, "bad-signature", &edited);

    // Signatures swapped between two digests.
    let dir = copy_of(&base, "swapped");
    let (one, two) = (fx.digest_path(&dir, 1), fx.digest_path(&dir, 2));
    let sig = |p: &Path| PathBuf::from(format!("{}.sig", p.display()));
    std::fs::copy(sig(&one), sig(&two)).unwrap();
    expect(&dir, "bad-signature", &two);

    // An old digest replayed in place of a newer one.
    let dir = copy_of(&base, "replayed");
    let (old, newer) = (fx.digest_path(&dir, 2), fx.digest_path(&dir, 3));
    std::fs::copy(&old, &newer).unwrap();
    std::fs::copy(sig(&old), sig(&newer)).unwrap();
    expect(&dir, "bad-signature", &newer);

    // A file the source has and no backup ever covered, past the copy SLO.
    fx.track(
        "db-2",
        "never.log",
        audit_core::now_ms() - 3 * 3_600_000,
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(fx.run().await.not_copied, 1);
    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(invalid_lines(&out).len(), 1, "{out}");
    assert!(
        invalid_lines(&out)[0].starts_with("INVALID not-copied db-2/never.log"),
        "{out}"
    );
}

/// An audit-api archive month (gzip JSON lines, per company in chain order) of company 6001's
/// places `places`, linked as audit-api links them; `edit` rewrites one place's message after
/// its hash was computed (an event edited in the database before the month was archived).
fn event_archive(places: &[i64], edit: Option<i64>) -> Vec<u8> {
    use audit_core::event_chain::{EventFields, GENESIS, canonical_v1, link_hash};
    let mut prev = GENESIS;
    let mut lines = String::from(
        r#"{"id": 1, "event_timestamp": "2026-03-01T00:00:00+00:00", "functionality_id": 1, "event_type_id": 1, "store_id": null, "company_id": 6001, "user": null, "message": "archived before the chain", "status": "Success", "additional_data": null, "chain_seq": null, "prev_hash": null, "row_hash": null}"#,
    );
    lines.push('\n');
    let time = chrono::DateTime::parse_from_rfc3339("2026-03-10T08:00:00.250000Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for seq in 1..=*places.iter().max().unwrap() {
        let message = format!("event {seq} | café");
        let fields = EventFields {
            chain_seq: seq,
            id: 40 + seq,
            event_time: time,
            functionality: "Authenticate",
            event_type: "Login",
            store_id: Some(101),
            company_id: Some(6001),
            user: Some("jdoe"),
            message: Some(&message),
            status: "Success",
            additional_data: Some(r#"{"amount": 10.10}"#),
        };
        let mut canonical = Vec::new();
        canonical_v1(&fields, &mut canonical);
        let hash = link_hash(&prev, &canonical);
        if places.contains(&seq) {
            let stored_message = if edit == Some(seq) {
                "edited after the fact".to_owned()
            } else {
                message.clone()
            };
            let line = serde_json::json!({
                "id": 40 + seq, "event_timestamp": "2026-03-10T08:00:00.25+00:00",
                "functionality_id": 1, "event_type_id": 1, "store_id": 101, "company_id": 6001,
                "user": "jdoe", "message": stored_message, "status": "Success",
                "additional_data": "ADDITIONAL",
                "event_time_utc": "2026-03-10T08:00:00.250000Z",
                "functionality": "Authenticate", "event_type": "Login", "chain_seq": seq,
                "prev_hash": hex::encode(prev), "row_hash": hex::encode(hash),
            })
            .to_string()
            // The stored jsonb exactly as PostgreSQL prints it (serde_json would write 10.1).
            .replace(r#""ADDITIONAL""#, r#"{"amount": 10.10}"#);
            lines.push_str(&line);
            lines.push('\n');
        }
        prev = hash;
    }
    gzip(lines.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_checks_an_archived_month_of_audit_events_link_by_link() {
    let mut fx = Fixture::new().await;
    let reports = fx.reports.clone();
    // March holds places 1, 2 and 4 (3 is an event of another month); April's file was
    // written from a database where place 6 had been edited.
    let march = "auditevents-archive/auditevents_202603.jsonl.gz";
    let april = "auditevents-archive/auditevents_202604.jsonl.gz";
    fx.put(&reports, march, event_archive(&[1, 2, 4], None), None)
        .await;
    fx.put(&reports, april, event_archive(&[5, 6, 7], Some(6)), None)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(fx.run().await.digests[0].objects, 2);

    // Without --deep the stored bytes are what the digest says: valid.
    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 0, "{out}");
    // With it, each line is checked against its hash and its predecessor.
    let (code, out) = fx.validate_s3(&["--deep"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        invalid_lines(&out),
        [format!(
            "INVALID event-chain s3://{reports}/{april} (company 6001: hash-mismatch at chain_seq 6 (event id 46))"
        )],
        "{out}"
    );
    // The same from a local copy, offline.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("evidence");
    let key = fx.export(&dir).await;
    let (code, out) = fx.auditkit(&[
        "validate",
        "--dir",
        dir.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
        "--bucket",
        &fx.evidence,
        "--deep",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(invalid_lines(&out).len(), 1, "{out}");
    assert!(
        invalid_lines(&out)[0].starts_with("INVALID event-chain"),
        "{out}"
    );
    assert!(out.contains("chain_seq 6"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_write_one_digest() {
    let fx = Fixture::new().await;
    fx.put(&fx.evidence, "rds-logs/db-1/a.gz", gzip(b"a\n"), None)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = writer(&fx.stack, &fx.env).await;
    let now = audit_core::now_ms();
    let (a, b) = tokio::join!(
        fx.writer.run(RunRequest::Scheduled, now),
        other.run(RunRequest::Scheduled, now)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.digests.len() + b.digests.len(), 1, "{a:?}\n{b:?}");
    assert!(a.skipped.is_some() || b.skipped.is_some());
    let (code, out) = fx.validate_s3(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1/1 digest files valid"), "{out}");
}

#[test]
fn usage_errors_exit_2_and_name_what_is_wrong() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_auditkit"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["validate", "--bucket", "b"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--key-id") && err.contains("--public-key"),
        "{err}"
    );
    let (code, err) = run(&[
        "validate",
        "--dir",
        "/nonexistent",
        "--public-key",
        "/nonexistent.pem",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent"), "{err}");
    let (code, err) = run(&[
        "validate",
        "--bucket",
        "b",
        "--public-key",
        "k",
        "--start-time",
        "last week",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--start-time"), "{err}");
}
