//! `cargo bench -p auditkit --bench history` (`make bench-history`): how fast `auditkit
//! history` reads a change log. `OBJECTS` gzip objects (default 8) of `LINES` change lines
//! each (default 200,000: MODIFY records of 10,000 orders with realistic images, the shape
//! stream-to-firehose writes) are made in memory; then, `RUNS` times (default 3):
//! - `gzip -dc` of the same bytes (GNU gzip, one process: the bar for decompression alone),
//! - the scanner looking for one order on one thread,
//! - the scanner on every core, one object per thread (as `auditkit history` runs it).
//!
//! Figures are compressed MB/s (10^6 bytes), the unit the target is set in (≥ 100 MB/s of
//! compressed change log per core), and decompressed MB/s beside it.

#![allow(clippy::unwrap_used)] // a benchmark that cannot unwrap has failed

use auditkit::history::{ItemKey, Scanner};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One change-log object: `lines` MODIFY records over 10,000 orders.
fn object(seed: u64, lines: usize) -> (Vec<u8>, usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let states = ["OPEN", "PICKEDUP", "DELIVERED", "RETURNED", "CANCELLED"];
    let mut text = String::with_capacity(lines * 900);
    for i in 0..lines {
        let order = rng.u32(0..10_000);
        let (old, new) = (states[rng.usize(0..5)], states[rng.usize(0..5)]);
        let customer = rng.u32(0..1_000_000);
        let total = rng.u32(100..1_000_000);
        let at = 1_764_000_000 + seed as u32 * 3600 + (i as u32 % 3600);
        let mut image = |state: &str, updated: u32| {
            format!(
                "{{\"orderId\":\"{order}\",\"state\":\"{state}\",\"customerId\":\"C{customer:07}\",\"total\":{total}.{:02},\"currency\":\"EUR\",\"lastUpdatedDate\":{updated},\"items\":[{{\"sku\":\"SKU-{:05}\",\"qty\":{}}},{{\"sku\":\"SKU-{:05}\",\"qty\":{}}}],\"address\":{{\"city\":\"City {}\",\"zip\":\"{:05}\"}}}}",
                total % 100,
                rng.u32(0..100_000),
                rng.u32(1..5),
                rng.u32(0..100_000),
                rng.u32(1..5),
                rng.u32(0..5000),
                rng.u32(0..99_999),
            )
        };
        let new_image = image(new, at);
        let old_image = image(old, at - 3600);
        text.push_str(&format!(
            "{{\"event_id\":\"{:032x}\",\"event_name\":\"MODIFY\",\"table\":\"Orders\",\"keys\":{{\"orderId\":\"{order}\"}},\"new_image\":{new_image},\"old_image\":{old_image},\"changed_attributes\":{{\"added\":[],\"removed\":[],\"modified\":[\"lastUpdatedDate\",\"state\"]}},\"sequence_number\":\"{}\",\"approximate_creation_time\":\"2026-11-30T07:{:02}:{:02}Z\",\"stream_view_type\":\"NEW_AND_OLD_IMAGES\",\"ttl_expired\":false,\"region\":\"eu-west-1\",\"images_omitted\":null}}\n",
            rng.u128(..),
            49_000_000_000_000_000_000u128 + (seed as u128) * 1_000_000 + i as u128,
            (i / 60) % 60,
            i % 60
        ));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    (gz.finish().unwrap(), text.len())
}

fn main() {
    let objects = var("OBJECTS", 8);
    let lines = var("LINES", 200_000);
    let runs = var("RUNS", 3);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let made: Vec<(Vec<u8>, usize)> = (0..objects as u64).map(|s| object(s, lines)).collect();
    let compressed: usize = made.iter().map(|(gz, _)| gz.len()).sum();
    let plain: usize = made.iter().map(|(_, n)| *n).sum();
    println!(
        "change log: {objects} objects, {} lines, {:.1} MB compressed, {:.1} MB of JSON lines (ratio {:.1}), {cores} cores",
        objects * lines,
        compressed as f64 / 1e6,
        plain as f64 / 1e6,
        plain as f64 / compressed as f64
    );
    let item = ItemKey::parse("Orders", &["orderId=4242".into()]).unwrap();
    let rate = |secs: f64| {
        format!(
            "{:>6.1} MB/s compressed, {:>6.1} MB/s decompressed ({:.3} s)",
            compressed as f64 / 1e6 / secs,
            plain as f64 / 1e6 / secs,
            secs
        )
    };
    for run in 1..=runs {
        // The bar: GNU gzip decompressing the same bytes to /dev/null.
        let started = Instant::now();
        for (gz, _) in &made {
            let mut child = Command::new("gzip")
                .arg("-dc")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(gz).unwrap();
            assert!(child.wait().unwrap().success());
        }
        println!(
            "run {run}: gzip -dc (1 core)        {}",
            rate(started.elapsed().as_secs_f64())
        );

        let started = Instant::now();
        let mut found = Vec::new();
        let scanner = Scanner::new(item.clone(), 0, i64::MAX / 2);
        for (gz, _) in &made {
            scanner.scan_object(gz, &mut found).unwrap();
        }
        let one = started.elapsed().as_secs_f64();
        println!(
            "run {run}: history scan, 1 core    {} -> {} changes",
            rate(one),
            found.len()
        );
        assert!(!found.is_empty(), "the order is in the log");

        let started = Instant::now();
        let scanner = std::sync::Arc::new(scanner);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let total_found = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((gz, _)) = made.get(i) else { break };
                        let mut found = Vec::new();
                        scanner.scan_object(gz, &mut found).unwrap();
                        total_found.fetch_add(found.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let all = started.elapsed().as_secs_f64();
        println!(
            "run {run}: history scan, {cores} cores   {} -> {} changes; per core {:.1} MB/s",
            rate(all),
            total_found.into_inner(),
            compressed as f64 / 1e6 / all / cores as f64
        );
    }
}
