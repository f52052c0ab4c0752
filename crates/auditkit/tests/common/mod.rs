//! What the validator's integration tests share: a fixture of evidence buckets, the head
//! table and a digest-writer wired to them, the auditkit binary, and output readers.

#![allow(dead_code)] // each test binary uses part of it
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use audit_core::Env;
use audit_core::digest::{self, DigestKind};
use devstack::evidence::EvidenceStack;
use devstack::{AwsEnv, moto, unique_name};
use digest_writer::RunRequest;
use digest_writer::handler::{DigestWriter, RunSummary, WrittenDigest};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one auditkit command may run here: far above any run (seconds); only a hang
/// reaches it.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

pub struct Fixture {
    pub stack: EvidenceStack,
    pub evidence: String,
    pub reports: String,
    pub tracking: String,
    pub env: Vec<(String, String)>,
    pub writer: DigestWriter,
    pub written: Vec<WrittenDigest>,
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub async fn writer(stack: &EvidenceStack, env: &[(String, String)]) -> DigestWriter {
    let config = digest_writer::Config::from_env(&Env::from_pairs(env.to_vec())).unwrap();
    let mut writer = DigestWriter::new(config, &stack.aws.sdk_config().await);
    writer.store.s3 = stack.s3.clone(); // path-style, as the function gets from its env
    writer
}

impl Fixture {
    pub async fn new() -> Fixture {
        let aws = moto().isolated();
        let stack = EvidenceStack::start(&aws).await.unwrap();
        let evidence = stack.locked_bucket("evidence", 1).await.unwrap();
        let reports = stack.versioned_bucket("reports").await.unwrap();
        let tracking = unique_name("tracking");
        AwsEnv::create_table(&stack.dynamodb, &tracking, "instance_id", None)
            .await
            .unwrap();
        let locations = vec![
            format!("{evidence}/rds-logs/"),
            format!("{evidence}/dynamodb-changes/"),
            format!("{reports}/database_audits/"),
            format!("{reports}/auditevents-archive/"),
        ];
        let env = stack.writer_env(&evidence, &locations, 1, Some((&tracking, &evidence)));
        let writer = writer(&stack, &env).await;
        Fixture {
            stack,
            evidence,
            reports,
            tracking,
            env,
            writer,
            written: Vec::new(),
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>, source_sha256: Option<&str>) {
        let mut put = self
            .stack
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into());
        if let Some(sha) = source_sha256 {
            put = put.metadata(digest::SOURCE_SHA256_METADATA, sha);
        }
        put.send().await.unwrap();
    }

    pub async fn track(
        &self,
        instance: &str,
        file: &str,
        first_seen: i64,
        copied_key: Option<&str>,
    ) {
        let mut item = serde_json::json!({
            "instance_id": instance, "log_file": file, "engine": "aurora-mysql",
            "size": 6, "last_written": first_seen, "first_seen": first_seen,
            "state": if copied_key.is_some() { "copied" } else { "due" },
            "due_generation": 1, "expires_at": 0,
        });
        if let Some(key) = copied_key {
            item["copied_key"] = key.into();
            item["copied_last_written"] = first_seen.into();
        }
        self.stack
            .dynamodb
            .put_item()
            .table_name(&self.tracking)
            .set_item(Some(serde_dynamo::to_item(item).unwrap()))
            .send()
            .await
            .unwrap();
    }

    pub async fn run_at(&mut self, now: i64) -> RunSummary {
        let summary = self.writer.run(RunRequest::Scheduled, now).await.unwrap();
        self.written.extend(summary.digests.iter().cloned());
        summary
    }

    pub async fn run(&mut self) -> RunSummary {
        self.run_at(audit_core::now_ms()).await
    }

    /// A chain of several windows with evidence in two buckets, a backup whose source-sha256
    /// is wrong (only `--deep` sees it), and a late object in a backfill digest.
    pub async fn chain() -> Fixture {
        let mut fx = Fixture::new().await;
        let (ev, rep) = (fx.evidence.clone(), fx.reports.clone());
        let log = b"2026-11-30 07:00:01 db-1 QUERY select 1\n";
        let log_sha = hex::encode(Sha256::digest(log));
        fx.put(
            &ev,
            "rds-logs/db-1/audit.log.1.gz",
            gzip(log),
            Some(&log_sha),
        )
        .await;
        fx.put(
            &ev,
            "rds-logs/db-1/bad-source.gz",
            gzip(b"other bytes\n"),
            Some(&log_sha),
        )
        .await;
        fx.put(
            &ev,
            "dynamodb-changes/2026/11/30/07/batch-1.gz",
            gzip(b"{}\n"),
            None,
        )
        .await;
        fx.put(
            &rep,
            "database_audits/report.json",
            b"{\"tables\":[]}".to_vec(),
            None,
        )
        .await;
        fx.track(
            "db-1",
            "audit.log",
            audit_core::now_ms(),
            Some("rds-logs/db-1/audit.log.1.gz"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let first = fx.run().await;
        assert_eq!(
            first.digests.len(),
            1,
            "the genesis digest covers all before it"
        );
        assert_eq!(first.digests[0].objects, 4);
        assert_eq!(first.not_copied, 0);

        fx.put(
            &ev,
            "dynamodb-changes/2026/11/30/07/batch-2.gz",
            gzip(b"{\"a\":1}\n"),
            None,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = fx.run().await;
        assert!(!second.digests.is_empty());
        assert_eq!(second.digests.iter().map(|d| d.objects).sum::<usize>(), 1);

        // A writer whose windows closed before a delivery finished: the object's
        // LastModified falls in a window already digested.
        let ahead = fx.run_at(audit_core::now_ms() + 2500).await;
        assert!(!ahead.digests.is_empty());
        fx.put(&ev, "rds-logs/db-1/late.gz", gzip(b"late\n"), None)
            .await;
        let backfill = fx.run().await;
        assert_eq!(backfill.digests.len(), 1, "{backfill:?}");
        assert_eq!(backfill.digests[0].kind, DigestKind::Backfill);
        assert_eq!(backfill.digests[0].objects, 1);
        assert!(backfill.digests[0].key.contains("_backfill_"));

        // Time catches up with the writer; the next window is an ordinary one.
        tokio::time::sleep(Duration::from_millis(3700)).await;
        let after = fx.run().await;
        assert!(
            after
                .digests
                .iter()
                .all(|d| d.kind == DigestKind::Hourly && d.objects == 0)
        );
        assert!(!after.digests.is_empty());
        fx
    }

    pub fn auditkit(&self, args: &[&str]) -> (i32, String) {
        let out = devstack::process::output_within(
            Command::new(env!("CARGO_BIN_EXE_auditkit"))
                .args(args)
                .envs(self.stack.aws.vars()),
            COMMAND_LIMIT,
        )
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    pub fn validate_s3(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec![
            "validate",
            "--bucket",
            &self.evidence,
            "--key-id",
            &self.stack.key_arn,
            "--head-table",
            &self.stack.head_table,
        ];
        args.extend_from_slice(extra);
        self.auditkit(&args)
    }

    pub fn validate_dir(&self, dir: &Path, key: &Path) -> (i32, String) {
        self.auditkit(&[
            "validate",
            "--dir",
            dir.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
            "--head-table",
            &self.stack.head_table,
            "--bucket",
            &self.evidence,
        ])
    }

    pub async fn export(&self, dir: &Path) -> PathBuf {
        self.stack
            .export(&[&self.evidence, &self.reports], dir)
            .await
            .unwrap();
        let pem = dir.with_extension("pem");
        let (code, out) = self.auditkit(&[
            "digest-public-key",
            "--key-id",
            &self.stack.key_arn,
            "--out",
            pem.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}");
        pem
    }

    pub fn digest_path(&self, dir: &Path, sequence: u64) -> PathBuf {
        let written = self
            .written
            .iter()
            .find(|d| d.sequence == sequence)
            .unwrap();
        dir.join(&self.evidence).join(&written.key)
    }

    pub fn newest_sequence(&self) -> u64 {
        self.written.iter().map(|d| d.sequence).max().unwrap()
    }
}

pub fn invalid_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.starts_with("INVALID"))
        .collect()
}

pub fn counts(output: &str) -> (String, String) {
    let line = |suffix: &str| {
        output
            .lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_default()
            .trim_end_matches(suffix)
            .to_owned()
    };
    (line(" digest files valid"), line(" objects valid"))
}

/// Copies `from` to a fresh folder, keeping modification times.
pub fn copy_of(from: &Path, name: &str) -> PathBuf {
    let to = from.with_file_name(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}
