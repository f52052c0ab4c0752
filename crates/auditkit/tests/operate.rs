//! `auditkit status`, `restore` and `history` against what the real functions wrote: Aurora
//! audit logs copied by log-detector and log-downloader from the RDS log-file double into
//! moto, and an Orders table's changes carried by stream-to-firehose into the change log.
//! Needs the function binaries (`make test` builds them).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_dynamodb::types::{AttributeValue as Av, StreamViewType};
use devstack::LocalLambda;
use devstack::audit_logs::{AuroraAuditLogs, age_files};
use devstack::backup::BackupStack;
use devstack::change_audit::ChangeAuditStack;
use devstack::event_sources::{SqsSource, StreamSource};
use devstack::{moto, unique_name};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn auditkit(env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let out = devstack::process::output_within(
        Command::new(env!("CARGO_BIN_EXE_auditkit"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned()),
        // Far above any run here (seconds): only a hang reaches it.
        Duration::from_secs(120),
    )
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

struct Backups {
    stack: BackupStack,
    detector: LocalLambda,
    downloader: LocalLambda,
    queue: SqsSource,
    stream: StreamSource,
}

impl Backups {
    async fn start() -> Self {
        let stack = BackupStack::start().await.unwrap();
        Backups {
            detector: stack.start_detector(&[]).await.unwrap(),
            downloader: stack.start_downloader(&[]).await.unwrap(),
            queue: stack.scan_queue_source(),
            stream: stack.tracking_stream_source().await.unwrap(),
            stack,
        }
    }

    /// One scan of `instance` through the detector; the downloader copies only when `copy`.
    async fn poll(&mut self, instance: &str, copy: bool) {
        let body = BackupStack::scan_message(instance, Some("orders"), "aurora-mysql");
        self.stack
            .sqs
            .send_message()
            .queue_url(&self.stack.queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
        let delivered = self.queue.poll_once(&self.detector).await.unwrap();
        assert!(delivered.is_some_and(|d| d.failed == 0));
        if copy {
            while let Some(d) = self.stream.poll_once(&self.downloader).await.unwrap() {
                assert_eq!(d.failed, 0, "{}", self.downloader.logs().join("\n"));
            }
        }
    }

    fn args<'a>(&'a self, command: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            command,
            "--tracking-table",
            &self.stack.table,
            "--bucket",
            &self.stack.bucket,
        ];
        args.extend_from_slice(extra);
        args
    }
}

fn only_file(dir: &Path) -> String {
    let mut names = Vec::new();
    for day in std::fs::read_dir(dir.join("audit")).unwrap() {
        names.push(format!(
            "audit/{}",
            day.unwrap().file_name().to_string_lossy()
        ));
    }
    names.sort();
    names.remove(0)
}

#[tokio::test]
async fn status_shows_lag_and_restore_brings_back_each_version_verified() {
    let mut b = Backups::start().await;
    let env = b.stack.aws.vars();
    let instance = unique_name("aurora");
    let dir = b.stack.rds_logs.instance_dir(&instance);
    let mut logs = AuroraAuditLogs::new(&dir, &instance, 1_000_000).unwrap();
    logs.append(200).unwrap();
    age_files(&dir, Duration::from_secs(3 * 3600)).unwrap();
    b.poll(&instance, true).await;
    let file = only_file(&dir);
    let first_version = std::fs::read(dir.join(&file)).unwrap();

    // Everything copied: no lag, exit 0; the JSON says the same.
    let (code, text) = auditkit(&env, &b.args("status", &[]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&instance) && text.contains("0s"), "{text}");
    let (code, text) = auditkit(
        &env,
        &b.args("status", &["--json", "--instance", &instance]),
    );
    assert_eq!(code, 0, "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = &doc["instances"][0];
    assert_eq!(row["lag_ms"], 0);
    assert_eq!(row["files_behind"], 0);
    assert!(row["files_tracked"].as_u64().unwrap() >= 1);
    assert_eq!(row["newest_source_written"], row["newest_backup_written"]);

    // The files grow; the detector orders copies, the downloader has not run: the copies are
    // three hours old, so the lag is over the default two hours and status exits 1.
    logs.append(200).unwrap();
    age_files(&dir, Duration::from_secs(600)).unwrap();
    b.poll(&instance, false).await;
    let (code, text) = auditkit(&env, &b.args("status", &["--instance", &instance]));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("over the limit, most behind: audit/"),
        "{text}"
    );
    let (code, text) = auditkit(&env, &b.args("status", &["--json", "--stall-after", "0s"]));
    assert_eq!(code, 1, "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = &doc["instances"][0];
    assert!(
        row["lag_ms"].as_i64().unwrap() >= 3 * 3_600_000 - 60_000,
        "{row}"
    );
    assert!(row["copies_ordered"].as_u64().unwrap() >= 1);
    assert_eq!(row["copies_ordered"], row["copies_stalled"]);
    let (code, _) = auditkit(&env, &b.args("status", &["--max-lag", "1d"]));
    assert_eq!(code, 0, "a day's allowance covers three hours");

    // Copied again: two versions of the file, each restorable byte for byte.
    b.poll(&instance, true).await;
    let second_version = std::fs::read(dir.join(&file)).unwrap();
    assert_ne!(first_version, second_version);
    let restore = |instance: &str, extra: &[&str]| {
        let mut args = vec!["--instance", instance, "--file", &file];
        args.extend_from_slice(extra);
        auditkit(&env, &b.args("restore", &args))
    };
    let (code, text) = restore(&instance, &["--list"]);
    assert_eq!(code, 0, "{text}");
    let versions: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{text}");
    assert!(text.contains("exact"), "{text}");

    let out = tempfile::tempdir().unwrap();
    let newest = out.path().join("newest.log");
    let newest_s = newest.to_str().unwrap();
    let (code, text) = restore(&instance, &["--out", newest_s]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("matches the tracking row"), "{text}");
    assert_eq!(std::fs::read(&newest).unwrap(), second_version);
    // The row records only the newest copy; an older one's checksum is in the signed digests
    // (tests/insider.rs restores one with them). Its own metadata is never the proof.
    let older = out.path().join("older.log");
    let older_s = older.to_str().unwrap();
    let (code, text) = restore(&instance, &["--at", versions[0], "--out", older_s]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("nothing outside the object records") && text.contains("--public-key"),
        "{text}"
    );
    assert!(!older.exists());
    assert_ne!(first_version, second_version);

    // Refusals name what is wrong and write nothing.
    let (code, text) = restore(&instance, &["--out", newest_s]);
    assert_eq!(
        (code, text.contains("never overwrites")),
        (2, true),
        "{text}"
    );
    let elsewhere = out.path().join("x.log");
    let elsewhere_s = elsewhere.to_str().unwrap();
    let (code, text) = restore(&instance, &["--at", "17", "--out", elsewhere_s]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("at LastWritten 17") && text.contains(versions[1]),
        "{text}"
    );
    let (code, text) = restore("no-such-db", &["--out", elsewhere_s]);
    assert_eq!(
        (code, text.contains("no such instance: no-such-db")),
        (2, true),
        "{text}"
    );
    let (code, text) = auditkit(&env, &b.args("status", &["--instance", "no-such-db"]));
    assert_eq!(
        (code, text.contains("no such instance")),
        (2, true),
        "{text}"
    );

    // The bucket writer puts a new version of the newest backup, with its metadata: restore
    // still brings back the first version's bytes, verified against the row, and names the
    // version on top.
    let key = b
        .stack
        .objects()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.metadata.get("source-file") == Some(&file) && o.content == second_version)
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &second_version[1..]).unwrap();
    b.stack
        .s3
        .put_object()
        .bucket(&b.stack.bucket)
        .key(&key.key)
        .set_metadata(Some(key.metadata.clone()))
        .body(gz.finish().unwrap().into())
        .send()
        .await
        .unwrap();
    let (code, text) = restore(&instance, &["--out", elsewhere_s]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("WARNING") && text.contains("on top of the backup: not restored"),
        "{text}"
    );
    assert_eq!(std::fs::read(&elsewhere).unwrap(), second_version);

    // No credentials: the error says so instead of hanging or printing a table.
    let no_creds: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
        .cloned()
        .chain([("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned())])
        .collect();
    let (code, text) = auditkit(&no_creds, &b.args("status", &[]));
    assert_eq!(code, 2, "{text}");
    assert!(text.to_lowercase().contains("credentials"), "{text}");
}

#[tokio::test]
async fn history_prints_one_items_changes_from_the_change_log() {
    let aws = moto().isolated();
    let stack = ChangeAuditStack::create(&aws, "history").await.unwrap();
    let table = unique_name("Orders");
    let stream_arn = stack
        .create_audited_table(&table, "orderId", StreamViewType::NewAndOldImages)
        .await
        .unwrap();
    // The lab's example, then a neighbour whose key starts with 101, then 101 deleted.
    stack.write_orders_example(&table).await.unwrap();
    let db = &stack.dynamodb;
    let s = |v: &str| Av::S(v.to_owned());
    db.put_item()
        .table_name(&table)
        .item("orderId", s("1011"))
        .item("state", s("OPEN"))
        .send()
        .await
        .unwrap();
    db.delete_item()
        .table_name(&table)
        .key("orderId", s("101"))
        .send()
        .await
        .unwrap();
    let forwarder = stack.start_forwarder(&[]).await.unwrap();
    let mut source = stack.stream_source(&stream_arn).await.unwrap();
    while let Some(d) = source.poll_once(&forwarder).await.unwrap() {
        assert_eq!(d.failed, 0);
    }

    let env = aws.vars();
    let base = ["history", "--bucket", &stack.bucket, "--table", &table];
    let args = |extra: &[&'static str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let (code, text) = auditkit(&env, &args(&["--key", "orderId=101"]));
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("5 change(s) of "), "{text}");
    let events: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.contains("change(s)"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        events,
        ["INSERT", "MODIFY", "MODIFY", "MODIFY", "REMOVE"],
        "{text}"
    );
    assert!(text.contains("state: \"OPEN\" -> \"PICKEDUP\""), "{text}");
    assert!(
        text.contains("state: \"DELIVERED\" -> \"RETURNED\""),
        "{text}"
    );
    assert!(
        text.contains("lastUpdatedDate: 1705351467 -> 1705430667"),
        "{text}"
    );
    assert!(text.contains("    deleted"), "{text}");
    assert!(!text.contains("1011"), "another item's changes: {text}");

    let (code, text) = auditkit(&env, &args(&["--key", "orderId=101", "--json"]));
    assert_eq!(code, 0, "{text}");
    let steps: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps[4]["old_image"]["state"], "RETURNED");

    // Nothing in the range: exit 1. Too much to read here: the Athena query, exit 2.
    let (code, text) = auditkit(
        &env,
        &args(&["--key", "orderId=101", "--until", "2020-01-01"]),
    );
    assert_eq!((code, text.starts_with("0 change(s)")), (1, true), "{text}");
    let (code, text) = auditkit(&env, &args(&["--key", "orderId=101", "--max-scan", "1"]));
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("FROM dynamodb_changes") && text.contains("--max-scan"),
        "{text}"
    );
    let (code, text) = auditkit(&env, &args(&["--key", "orderId"]));
    assert_eq!((code, text.contains("attr=value")), (2, true), "{text}");
}
