//! The Aurora audit-log backup: a fake Aurora cluster (two instances writing striped audit
//! logs, plus an excluded instance and a PostgreSQL instance) in moto and the RDS log-file
//! double. Each poll sends a scheduled event to db-scanner; the dev stack then delivers the
//! scan queue to log-detector and the tracking table's stream to log-downloader the way
//! Lambda's event source mappings do (honouring partial batch responses). Files rotate between
//! polls; the second poll copies only what changed. Ends with what is in S3 and whether each
//! copy matches its source.

use devstack::audit_logs::AuroraAuditLogs;
use devstack::backup::BackupStack;
use devstack::event_sources::{SqsSource, StreamSource};
use devstack::{LocalLambda, function_binary, moto};
use serde_json::json;
use sha2::Digest;
use std::collections::BTreeSet;
use std::time::Duration;

/// Where the demo's log-downloader writes backups (the evidence section digests it).
pub const BACKUP_PREFIX: &str = "audit-logs";

const QUIET: Duration = Duration::from_millis(1500);

pub struct Demo {
    pub stack: BackupStack,
    scanner: LocalLambda,
    detector: LocalLambda,
    downloader: LocalLambda,
    queue: SqsSource,
    stream: StreamSource,
}

impl Demo {
    async fn poll(&mut self, round: u32) -> Result<(), String> {
        let event = json!({
            "version": "0", "id": format!("demo-{round}"), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": "2026-11-22T10:00:00Z",
            "region": self.stack.aws.region, "resources": ["arn:aws:events:::rule/auditkit-scan"], "detail": {}
        });
        let summary = self
            .scanner
            .invoke(&event)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "  db-scanner: found {}, queued {} {}, skipped: {} by engine, {} excluded, {} not available",
            summary["found"],
            summary["queued"],
            summary["queued_instances"],
            summary["skipped_by_engine"],
            summary["skipped_excluded"],
            summary["skipped_not_available"]
        );
        while let Some(d) = self.queue.poll_once(&self.detector).await? {
            println!(
                "  log-detector: {} message(s), {} reported for redelivery",
                d.records, d.failed
            );
        }
        while let Some(d) = self.stream.poll_once(&self.downloader).await? {
            println!(
                "  log-downloader: {} stream record(s), {} reported for retry",
                d.records, d.failed
            );
        }
        Ok(())
    }
}

/// Runs the backup scenario; the stack it started stays up (the other scenarios use its AWS
/// endpoint) until the returned [`Demo`] is dropped.
pub async fn run() -> Result<Demo, String> {
    println!("== auditkit demo: Aurora audit-log backup, end to end on the local stack\n");
    println!(
        "Starting the local stack (moto, installed into .venv on first run; the RDS log-file double) ..."
    );
    let stack = BackupStack::start().await?;
    println!(
        "  moto {} (region {}), RDS endpoint {}",
        moto().endpoint(),
        stack.aws.region,
        stack.rds_logs.endpoint()
    );
    println!(
        "  tracking table {}, backup bucket {}, scan queue {}",
        stack.table, stack.bucket, stack.queue_url
    );

    let sdk = stack.aws.sdk_config().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    rds.create_db_cluster()
        .db_cluster_identifier("orders-aurora")
        .engine("aurora-mysql")
        .master_username("admin")
        .master_user_password("demo-password-1")
        .send()
        .await
        .map_err(|x| e(&x))?;
    for (id, cluster, engine) in [
        ("orders-writer", Some("orders-aurora"), "aurora-mysql"),
        ("orders-reader", Some("orders-aurora"), "aurora-mysql"),
        ("orders-sandbox", Some("orders-aurora"), "aurora-mysql"),
        ("reports-pg", None, "postgres"),
    ] {
        let mut request = rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.r6g.large");
        request = match cluster {
            Some(c) => request.db_cluster_identifier(c),
            None => request
                .allocated_storage(20)
                .master_username("admin")
                .master_user_password("demo-password-1"),
        };
        request.send().await.map_err(|x| e(&x))?;
    }
    println!(
        "  fake cluster orders-aurora: orders-writer, orders-reader, orders-sandbox (excluded); reports-pg (postgres)\n"
    );

    let mut writer = AuroraAuditLogs::new(
        &stack.rds_logs.instance_dir("orders-writer"),
        "orders-writer",
        40_000,
    )
    .map_err(|x| e(&x))?;
    let mut reader = AuroraAuditLogs::new(
        &stack.rds_logs.instance_dir("orders-reader"),
        "orders-reader",
        40_000,
    )
    .map_err(|x| e(&x))?;

    let scanner = LocalLambda::builder(function_binary("db-scanner")?)
        .envs(stack.function_env())
        .env("QUEUE_URL", &stack.queue_url)
        .env("EXCLUDE_INSTANCES", "orders-sandbox")
        .start()
        .await?;
    // Demo timing: a file counts as no longer written after 1 s (default 5 min).
    let detector = stack.start_detector(&[("QUIET_PERIOD", "1s")]).await?;
    let downloader = stack
        .start_downloader(&[("BACKUP_PREFIX", BACKUP_PREFIX)])
        .await?;
    println!(
        "Functions running under the local Lambda Runtime API: db-scanner, log-detector, log-downloader\n"
    );
    let queue = stack.scan_queue_source();
    let stream = stack.tracking_stream_source().await?;
    let mut demo = Demo {
        stack,
        scanner,
        detector,
        downloader,
        queue,
        stream,
    };

    println!(
        "Poll 1: the instances have written 1,200 audit records each (files rotated on the way)"
    );
    writer.append(1200).map_err(|x| e(&x))?;
    reader.append(1200).map_err(|x| e(&x))?;
    tokio::time::sleep(QUIET).await;
    demo.poll(1).await?;
    let after_first: BTreeSet<String> = demo
        .stack
        .objects()
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();

    println!(
        "\nPoll 2: orders-writer writes 1,000 more records (its files fill and rotate again); orders-reader is idle"
    );
    writer.append(1000).map_err(|x| e(&x))?;
    tokio::time::sleep(QUIET).await;
    demo.poll(2).await?;

    let stored = demo.stack.objects().await?;
    // A multipart backup's checksum is in its write-once sidecar (`<key>.meta.json`), not on
    // the object: nothing is written onto a backup once it exists.
    let sidecars: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        stored
            .iter()
            .filter_map(|o| {
                let key = o.key.strip_suffix(".meta.json")?;
                Some((key.to_owned(), serde_json::from_slice(&o.content).ok()?))
            })
            .collect();
    let objects: Vec<_> = stored
        .into_iter()
        .filter(|o| o.metadata.contains_key("source-instance"))
        .map(|mut o| {
            if let Some(extra) = sidecars.get(&o.key) {
                o.metadata.extend(extra.clone());
            }
            o
        })
        .collect();
    println!("\nCopied by poll 2 (only what changed):");
    for o in objects.iter().filter(|o| !after_first.contains(&o.key)) {
        println!(
            "  {} ({} bytes)",
            o.metadata["source-file"], o.metadata["source-size"]
        );
    }

    println!("\nWhat is in S3 (uncompressed content checked against the file on the instance):");
    println!(
        "  {:<14} {:<38} {:>8}  {:<10} S3 key",
        "instance", "file", "size", "checksum"
    );
    let mut all_match = true;
    for o in &objects {
        let instance = &o.metadata["source-instance"];
        let file = &o.metadata["source-file"];
        let source = std::fs::read(demo.stack.rds_logs.instance_dir(instance).join(file))
            .unwrap_or_default();
        let content_sha = hex::encode(sha2::Sha256::digest(&o.content));
        // A file that grew after its copy matches as a prefix: the copy is the file as it was.
        let verdict =
            if content_sha == o.metadata["source-sha256"] && source.starts_with(&o.content) {
                if source.len() == o.content.len() {
                    "match"
                } else {
                    "prefix"
                }
            } else {
                all_match = false;
                "MISMATCH"
            };
        println!(
            "  {instance:<14} {file:<38} {:>8}  {verdict:<10} {}",
            o.content.len(),
            o.key
        );
    }
    println!(
        "\n{} objects; {}",
        objects.len(),
        if all_match {
            "every copy is byte-exact"
        } else {
            "SOME COPIES DIFFER"
        }
    );
    if !all_match {
        return Err("a copy differs from its source".into());
    }
    operator_view(&demo)?;
    Ok(demo)
}

/// What an operator runs against the backup: its status, then one file restored and verified.
fn operator_view(demo: &Demo) -> Result<(), String> {
    println!("\nThe operator's view (auditkit):");
    let auditkit = function_binary("auditkit")?;
    let env = demo.stack.aws.vars();
    let table = demo.stack.table.as_str();
    let bucket = demo.stack.bucket.as_str();
    crate::run_printed(
        "auditkit",
        &auditkit,
        &["status", "--tracking-table", table, "--bucket", bucket],
        &env,
        0,
    )?;
    let dir = demo.stack.rds_logs.instance_dir("orders-writer");
    let mut files: Vec<String> = std::fs::read_dir(dir.join("audit"))
        .map_err(|e| e.to_string())?
        .filter_map(|f| f.ok())
        .map(|f| format!("audit/{}", f.file_name().to_string_lossy()))
        .collect();
    files.sort();
    let file = files.first().ok_or("orders-writer has no audit log")?;
    let restore = |extra: &[&str], expected| {
        let mut args = vec![
            "restore",
            "--tracking-table",
            table,
            "--bucket",
            bucket,
            "--backup-prefix",
            BACKUP_PREFIX,
            "--instance",
            "orders-writer",
            "--file",
            file,
        ];
        args.extend_from_slice(extra);
        crate::run_printed("auditkit", &auditkit, &args, &env, expected)
    };
    restore(&["--list"], 0)?;
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let target = out.path().join("restored.log");
    restore(&["--out", &target.to_string_lossy()], 0)?;
    let restored = std::fs::read(&target).map_err(|e| e.to_string())?;
    let source = std::fs::read(dir.join(file)).map_err(|e| e.to_string())?;
    if !source.starts_with(&restored) {
        return Err(format!(
            "the restored {file} is not the file on the instance"
        ));
    }
    println!("  the restored file is byte for byte the file on the instance (as of its copy)");
    Ok(())
}
