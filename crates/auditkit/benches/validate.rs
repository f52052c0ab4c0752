//! `cargo bench -p auditkit --bench validate` (`make bench-validate`): how fast evidence is
//! proven. `FILES` files of `FILE_MIB` MiB (default 1,000 × 1 MiB = 1 GiB of random bytes)
//! are written to the emulator's S3, digested by digest-writer (in process), exported to a
//! folder as `aws s3 sync` would, then, `RUNS` times side by side (default 3):
//! - `sha256sum` of the same files (GNU coreutils, one process: the bar),
//! - `auditkit validate --dir` on the copy (the release binary),
//!
//! and once `auditkit validate` against S3 (bound by the emulator, a Python server).
//! Each figure is wall time and peak RSS (`/usr/bin/time`), warm page cache for both.

#![allow(clippy::unwrap_used)] // a benchmark that cannot unwrap has failed

use audit_core::Env;
use devstack::evidence::EvidenceStack;
use devstack::moto;
use digest_writer::RunRequest;
use digest_writer::handler::DigestWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wall seconds and peak RSS (MiB) of a command, from `/usr/bin/time`.
fn timed(program: &str, args: &[String], envs: &[(String, String)], expect_ok: bool) -> (f64, f64) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "-o"])
        .arg(report.path())
        .arg(program)
        .args(args)
        .envs(envs.iter().cloned())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!expect_ok || status.success(), "{program} failed: {status}");
    let text = std::fs::read_to_string(report.path()).unwrap();
    let last = text.lines().last().unwrap_or_default();
    let mut parts = last.split_whitespace();
    let wall: f64 = parts.next().unwrap().parse().unwrap();
    let rss_kib: f64 = parts.next().unwrap().parse().unwrap();
    (wall, rss_kib / 1024.0)
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn summary(label: &str, runs: &[(f64, f64)]) -> f64 {
    let mut walls: Vec<f64> = runs.iter().map(|r| r.0).collect();
    walls.sort_by(f64::total_cmp);
    let rss = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    let median = walls[walls.len() / 2];
    println!(
        "{label:<34} min {:.2} s  median {median:.2} s  max {:.2} s  peak RSS {rss:.1} MiB",
        walls[0],
        walls[walls.len() - 1]
    );
    median
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this binary too (without `--bench`): time nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (files, file_mib, runs) = (var("FILES", 1000), var("FILE_MIB", 1), var("RUNS", 3));
    let aws = moto().isolated();
    let stack = EvidenceStack::start(&aws).await.unwrap();
    let bucket = stack.versioned_bucket("bench-evidence").await.unwrap();
    println!(
        "writing {files} files of {file_mib} MiB to s3://{bucket}/rds-logs/ on the emulator ..."
    );
    let mut block = vec![0u8; file_mib << 20];
    for i in 0..files {
        // Distinct random contents (hashing cannot be short-circuited by repeats).
        for chunk in block.chunks_mut(8) {
            chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes()[..chunk.len()]);
        }
        stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("rds-logs/db-{}/audit.log.{i}.gz", i % 10))
            .body(block.clone().into())
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let env = stack.writer_env(&bucket, &[format!("{bucket}/rds-logs/")], 1, None);
    let config = digest_writer::Config::from_env(&Env::from_pairs(env)).unwrap();
    let mut writer = DigestWriter::new(config, &aws.sdk_config().await);
    writer.store.s3 = stack.s3.clone();
    let started = Instant::now();
    let written = writer
        .run(RunRequest::Scheduled, audit_core::now_ms())
        .await
        .unwrap();
    let digest_wall = started.elapsed().as_secs_f64();
    let total_mib = (files * file_mib) as f64;
    println!(
        "digest-writer (in process, {} hashing at once): {} objects, {total_mib:.0} MiB from the emulator in {digest_wall:.2} s ({:.0} MiB/s)",
        writer.config.hash_concurrency,
        written.objects_hashed,
        total_mib / digest_wall
    );

    let scratch = tempfile::Builder::new()
        .prefix("auditkit-bench-validate-")
        .tempdir()
        .unwrap();
    let dir = scratch.path().join("evidence");
    stack.export(&[&bucket], &dir).await.unwrap();
    let pem: PathBuf = scratch.path().join("key.pem");
    let auditkit = env!("CARGO_BIN_EXE_auditkit");
    let vars = aws.vars();
    let ok = Command::new(auditkit)
        .args(["digest-public-key", "--key-id", &stack.key_arn, "--out"])
        .arg(&pem)
        .envs(vars.iter().cloned())
        .status()
        .unwrap();
    assert!(ok.success());
    let evidence_files = files_under(&dir.join(&bucket).join("rds-logs"));
    assert_eq!(evidence_files.len(), files);
    let dir_args: Vec<String> = [
        "validate",
        "--dir",
        dir.to_str().unwrap(),
        "--public-key",
        pem.to_str().unwrap(),
        "--bucket",
        &bucket,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();

    // Warm the page cache for both.
    timed("sha256sum", &evidence_files, &[], true);
    let one_core: Vec<String> = dir_args
        .iter()
        .cloned()
        .chain(["--parallel".to_owned(), "1".to_owned()])
        .collect();
    let (mut sums, mut validations, mut single) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        sums.push(timed("sha256sum", &evidence_files, &[], true));
        validations.push(timed(auditkit, &dir_args, &[], true));
        single.push(timed(auditkit, &one_core, &[], true));
    }
    println!("\n{files} files, {total_mib:.0} MiB, {runs} runs each, alternating:");
    let sum_median = summary("sha256sum (coreutils 9.1)", &sums);
    let validate_median = summary("auditkit validate --dir", &validations);
    summary("auditkit validate --dir --parallel 1", &single);
    println!(
        "ratio validate/sha256sum (medians): {:.2} (target <= 1.20)",
        validate_median / sum_median
    );
    let s3_args: Vec<String> = ["validate", "--bucket", &bucket, "--key-id", &stack.key_arn]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let s3 = timed(auditkit, &s3_args, &vars, true);
    println!(
        "auditkit validate (S3 on the emulator): {:.2} s ({:.0} MiB/s), peak RSS {:.1} MiB",
        s3.0,
        total_mib / s3.0,
        s3.1
    );
}
