//! Evidence integrity: digest-writer signs chained digests of what the other sections wrote
//! (once after the backup, once at the end), then `auditkit validate` proves it on S3 and on a
//! local copy, and finds the one byte a tamperer changed.

use devstack::evidence::EvidenceStack;
use devstack::{AwsEnv, LocalLambda, function_binary};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Windows this short let the demo close a few of them in seconds (the stack's are hourly).
const WINDOW_SECONDS: u32 = 2;

pub struct Evidence {
    pub(crate) stack: EvidenceStack,
    backup_bucket: String,
    tracking_table: String,
    chain_length: u64,
}

fn scheduled_event(region: &str) -> Value {
    json!({
        "version": "0", "id": "demo-digest", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-11-30T07:05:00Z",
        "region": region, "resources": ["arn:aws:events:::rule/auditkit-digests"], "detail": {}
    })
}

impl Evidence {
    pub async fn start(
        aws: &AwsEnv,
        backup_bucket: &str,
        tracking_table: &str,
    ) -> Result<Self, String> {
        println!(
            "\n== Evidence integrity: signed, chained digests (digest-writer, auditkit validate)\n"
        );
        let stack = EvidenceStack::start(aws).await?;
        println!(
            "  signing key {} (ECC_NIST_P256, SIGN_VERIFY), chain head in table {}",
            stack.key_arn, stack.head_table
        );
        println!(
            "  digests go to s3://{backup_bucket}/auditkit-digests/ (the stack's bucket has Object Lock on by default; \
             this demo bucket does not, so the tampering below is done on a copy)"
        );
        Ok(Evidence {
            stack,
            backup_bucket: backup_bucket.to_owned(),
            tracking_table: tracking_table.to_owned(),
            chain_length: 0,
        })
    }

    /// One digest-writer run over `locations` (`bucket/prefix`), after the current window closed.
    pub async fn digest(&mut self, locations: &[String]) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(
            u64::from(WINDOW_SECONDS) * 1000 + 100,
        ))
        .await;
        let env = self.stack.writer_env(
            &self.backup_bucket,
            locations,
            WINDOW_SECONDS,
            Some((&self.tracking_table, &self.backup_bucket)),
        );
        let writer = LocalLambda::builder(function_binary("digest-writer")?)
            .envs(env)
            .start()
            .await?;
        let summary = writer
            .invoke(&scheduled_event(&self.stack.aws.region))
            .await
            .map_err(|e| e.to_string())?;
        let digests = summary["digests"].as_array().cloned().unwrap_or_default();
        println!(
            "  digest-writer over {}: {} digest(s), {} object(s) hashed ({} bytes), {} source file(s) not copied",
            locations.join(", "),
            digests.len(),
            summary["objects_hashed"],
            summary["bytes_hashed"],
            summary["not_copied"]
        );
        for d in &digests {
            println!(
                "    #{} {} window ending {}: {} object(s) -> s3://{}/{}",
                d["sequence"],
                d["kind"].as_str().unwrap_or_default(),
                d["window_end"].as_str().unwrap_or_default(),
                d["objects"],
                self.backup_bucket,
                d["key"].as_str().unwrap_or_default()
            );
            self.chain_length = d["sequence"].as_u64().unwrap_or(self.chain_length);
        }
        Ok(())
    }

    /// Validates on S3, exports the buckets and the public key, validates the copy, then a
    /// tampered copy.
    pub async fn validate(&self, buckets: &[&str]) -> Result<(), String> {
        let auditkit = function_binary("auditkit")?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| devstack::repo_root().join("target"));
        let demo_dir = target.join("demo");
        let dir = demo_dir.join("evidence");
        let pem = demo_dir.join("digest-public-key.pem");
        let tampered = demo_dir.join("evidence-tampered");
        for old in [&dir, &tampered] {
            if old.exists() {
                std::fs::remove_dir_all(old).map_err(|e| format!("{}: {e}", old.display()))?;
            }
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        println!(
            "\n  the chain has {} digest(s); validating it (the AWS variables point at the local emulator):",
            self.chain_length
        );
        let (bucket, key, table) = (
            &self.backup_bucket,
            &self.stack.key_arn,
            &self.stack.head_table,
        );
        // --deep also decompresses every backup and checks it against its source-sha256.
        self.run(
            &auditkit,
            &[
                "validate",
                "--bucket",
                bucket,
                "--key-id",
                key,
                "--head-table",
                table,
                "--deep",
            ],
            0,
        )?;

        let files = self.stack.export(buckets, &dir).await?;
        println!(
            "\n  exported {files} object(s) of {} bucket(s) to {} (as aws s3 sync does)",
            buckets.len(),
            dir.display()
        );
        self.run(
            &auditkit,
            &["digest-public-key", "--key-id", key, "--out", path(&pem)],
            0,
        )?;
        self.run(
            &auditkit,
            &[
                "validate",
                "--dir",
                path(&dir),
                "--public-key",
                path(&pem),
                "--bucket",
                bucket,
            ],
            0,
        )?;

        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&dir)
            .arg(&tampered)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err("copying the evidence folder failed".into());
        }
        let victim = first_backup(&tampered.join(bucket).join(crate::backup::BACKUP_PREFIX))
            .ok_or("no backup in the exported copy")?;
        let mut bytes = std::fs::read(&victim).map_err(|e| e.to_string())?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&victim, bytes).map_err(|e| e.to_string())?;
        println!("\n  tampering: flipped one bit of {}", victim.display());
        self.run(
            &auditkit,
            &[
                "validate",
                "--dir",
                path(&tampered),
                "--public-key",
                path(&pem),
                "--bucket",
                bucket,
            ],
            1,
        )?;
        Ok(())
    }

    /// Prints the command, runs it with the emulator's AWS variables, prints its output and
    /// checks its exit status.
    pub(crate) fn run(&self, binary: &Path, args: &[&str], expected: i32) -> Result<(), String> {
        crate::run_printed("auditkit", binary, args, &self.stack.aws.vars(), expected)
    }
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The first file under `dir` (depth first, sorted).
fn first_backup(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        if p.is_dir() {
            first_backup(&p)
        } else {
            Some(p)
        }
    })
}
