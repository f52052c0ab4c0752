//! A 100,000-row xlsx export through the Lambda path: the release `audit-api` binary under
//! devstack's local Runtime API with `RESPONSE_STREAMING=true`, the body read as it streams
//! and thrown away. Prints the time, the bytes and the function process's peak RSS per run
//! (VmHWM, reset between runs). `cargo bench -p audit-api --bench lambda_export`
//! (`EXPORT_EVENTS` changes the row count).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Service, append_events_sql, function_url_get};
use std::time::{Duration, Instant};

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this binary too (without `--bench`): a small export
    // through the same path, once, checks the bench still works and measures nothing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let events: u32 = std::env::var("EXPORT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| measuring)
        .unwrap_or(if measuring { 100_000 } else { 2_000 });
    let svc = Service::start(&[]).await;
    let loading = Instant::now();
    for _ in 0..events.div_ceil(50_000) {
        svc.sql(&append_events_sql(events.min(50_000), 60));
    }
    let stored = svc.count_events();
    println!(
        "{stored} events of company 7 loaded in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let lambda = common::local_function(
        env!("CARGO_BIN_EXE_audit-api"),
        &svc.database,
        &[
            ("RESPONSE_STREAMING", "true"),
            ("EXPORT_MAX_ROWS", "10000000"),
        ],
        Duration::from_secs(600),
    )
    .await;
    let pid = lambda.pid().expect("pid");
    println!("cold start done: peak RSS {} KiB", peak_rss_kib(pid));
    let export = function_url_get("/pyaudit/api/audit-events/export", "company_id=7");
    for run in 1..=if measuring { 3 } else { 1 } {
        // Resets VmHWM to the current RSS, so each run's peak is its own.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let before = peak_rss_kib(pid);
        let start = Instant::now();
        let mut response = lambda
            .invoke_with_response_stream(&export)
            .await
            .expect("export");
        assert_eq!(response.status(), 200, "{:?}", response.prelude);
        let first_byte = start.elapsed();
        let (mut bytes, mut chunks) = (0usize, 0usize);
        while let Some(chunk) = response.next_chunk().await {
            bytes += chunk.expect("no error mid-stream").len();
            chunks += 1;
        }
        assert_eq!(
            response.header("x-export-rows"),
            Some(stored.to_string().as_str())
        );
        println!(
            "run {run}: {} rows, {bytes} bytes in {chunks} chunks, {:.2} s ({:.2} s to the headers); \
             function RSS {before} KiB before, peak {} KiB",
            response.header("x-export-rows").unwrap_or("?"),
            start.elapsed().as_secs_f64(),
            first_byte.as_secs_f64(),
            peak_rss_kib(pid)
        );
    }
}
