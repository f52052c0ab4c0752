//! Copy benchmark (`make bench-copy`): one audit file of `SIZE_MIB` (default 256) from the
//! RDS log-file double into S3 on the local stack, by the log-downloader binary given as the
//! first argument (the release build), measured side by side with `aws s3 cp` of the same file
//! to the same emulator. Reports wall time and the downloader process's peak RSS (VmHWM).
//!
//! usage: bench_copy <log-downloader binary>

use devstack::audit_logs::write_exact;
use devstack::backup::{BackupStack, due_image, listed_version, stream_record};
use devstack::{LocalLambda, python_tools};
use serde_json::json;
use std::time::{Duration, Instant};

const FILE: &str = "audit/audit.log.0.2026-11-22-08-30.0";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_copy failed: {e}");
        std::process::exit(1);
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn run() -> Result<(), String> {
    let binary = std::env::args()
        .nth(1)
        .ok_or("usage: bench_copy <log-downloader binary>")?;
    let size_mib: usize = std::env::var("SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let stack = BackupStack::start().await?;
    let path = stack.rds_logs.instance_dir("bench-db").join(FILE);
    write_exact(&path, "bench-db", size_mib << 20).map_err(|e| e.to_string())?;
    let (size, written) = listed_version(&path)?;
    let image = due_image("bench-db", FILE, size, written, 1);
    stack.put_row(&image).await?;
    let event = json!({"Records": [stream_record("100", &image, None)]});

    let downloader = LocalLambda::builder(&binary)
        .envs(stack.function_env())
        .env("TRACKING_TABLE", &stack.table)
        .env("BACKUP_BUCKET", &stack.bucket)
        .timeout(Duration::from_secs(900))
        .start()
        .await?;
    downloader
        .wait_ready(Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    let pid = downloader.pid().ok_or("no pid")?;
    let started = Instant::now();
    let response = downloader.invoke(&event).await.map_err(|e| e.to_string())?;
    let downloader_wall = started.elapsed();
    let peak = peak_rss_kib(pid).ok_or("cannot read VmHWM")?;
    if response["batchItemFailures"]
        .as_array()
        .is_none_or(|f| !f.is_empty())
    {
        return Err(format!(
            "the copy failed: {response}\n{}",
            downloader.logs().join("\n")
        ));
    }
    let objects = stack.objects().await?;
    let copied = objects.first().ok_or("no object")?;
    let exact = copied.content == std::fs::read(&path).map_err(|e| e.to_string())?;
    let stored = stack
        .s3
        .head_object()
        .bucket(&stack.bucket)
        .key(&copied.key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?
        .content_length()
        .unwrap_or(0);
    drop(objects);

    let venv = python_tools()?;
    let started = Instant::now();
    let status = std::process::Command::new(venv.join("bin/aws"))
        .args([
            "s3",
            "cp",
            "--only-show-errors",
            "--endpoint-url",
            &stack.aws.endpoint,
        ])
        .arg(&path)
        .arg(format!("s3://{}/awscli-copy", stack.bucket))
        .envs(stack.aws.vars())
        .status()
        .map_err(|e| e.to_string())?;
    let awscli_wall = started.elapsed();
    if !status.success() {
        return Err("aws s3 cp failed".into());
    }
    println!(
        "{size_mib} MiB audit file: log-downloader {:.2} s, peak RSS {:.1} MiB, stored {:.1} MiB gzip, byte-exact: {exact}; \
         aws s3 cp of the same file to the same emulator {:.2} s",
        downloader_wall.as_secs_f64(),
        peak as f64 / 1024.0,
        stored as f64 / 1_048_576.0,
        awscli_wall.as_secs_f64()
    );
    if !exact {
        return Err("the copy is not byte-exact".into());
    }
    Ok(())
}
