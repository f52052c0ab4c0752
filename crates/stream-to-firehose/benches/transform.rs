//! `cargo bench -p stream-to-firehose` (or `make bench-transform`): transform throughput, and the
//! time the same batch spends in `PutRecordBatch` against the emulator.
//!
//! Input: a Lambda stream event of MODIFY records, NEW_AND_OLD_IMAGES, each image a 1 KiB item
//! of 20 attributes (strings, numbers including a 38-digit one, a set, a nested map, a list,
//! binary). Measured on one core, from the event's bytes as the Runtime API sends them (the
//! function's `RawPayloadLayer` hands them over untouched): `read_batch` reads the event and
//! rewrites every image in one pass, then every record becomes its newline-terminated audit
//! line, with the diff. Peak RSS is the process's high-water mark.
//!
//! Then the lines of one batch are delivered to a Firehose delivery stream in moto (one S3
//! object per call), through the same `deliver` the function uses.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use stream_to_firehose::handler::transform;

// The allocator the function binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 5_000;
const ROUNDS: usize = 15;

fn image(order: usize, state: &str) -> Value {
    let mut item = serde_json::Map::new();
    item.insert("orderId".into(), json!({"S": format!("order-{order:08}")}));
    item.insert("state".into(), json!({"S": state}));
    item.insert(
        "customer".into(),
        json!({"S": format!("customer-{:06}@example.com", order % 9973)}),
    );
    item.insert(
        "total".into(),
        json!({"N": "12345678901234567890123456789012.345678"}),
    );
    item.insert("quantity".into(), json!({"N": (order % 17).to_string()}));
    item.insert("lastUpdatedDate".into(), json!({"N": "1705337067"}));
    item.insert("express".into(), json!({"BOOL": order.is_multiple_of(2)}));
    item.insert(
        "tags".into(),
        json!({"SS": ["fragile", "gift", "priority"]}),
    );
    item.insert(
        "checksum".into(),
        json!({"B": "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    );
    item.insert(
        "address".into(),
        json!({"M": {"street": {"S": "221B Baker Street"}, "city": {"S": "London"}, "zip": {"S": "NW1 6XE"}}}),
    );
    item.insert(
        "lines".into(),
        json!({"L": [{"M": {"sku": {"S": "SKU-0001"}, "qty": {"N": "2"}}}, {"M": {"sku": {"S": "SKU-0002"}, "qty": {"N": "1"}}}]}),
    );
    for i in 0..9 {
        item.insert(format!("note{i}"), json!({"S": "x".repeat(60)}));
    }
    Value::Object(item)
}

/// A stream event of `records` changes. `both_images`: MODIFY with NEW_AND_OLD_IMAGES (two
/// images and the diff); otherwise INSERT with NEW_IMAGE (the original change-audit lab's view type).
fn event_json(records: usize, both_images: bool) -> Vec<u8> {
    let records: Vec<Value> = (0..records)
        .map(|i| {
            let mut change = json!({
                "ApproximateCreationDateTime": 1_763_805_600,
                "Keys": {"orderId": {"S": format!("order-{i:08}")}},
                "NewImage": image(i, "DELIVERED"),
                "SequenceNumber": format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
                "SizeBytes": 2048,
                "StreamViewType": if both_images { "NEW_AND_OLD_IMAGES" } else { "NEW_IMAGE" },
            });
            if both_images {
                change["OldImage"] = image(i, "PICKEDUP");
            }
            json!({
                "eventID": format!("{i:032x}"),
                "eventName": if both_images { "MODIFY" } else { "INSERT" },
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders/stream/2026-11-22T10:00:00.000",
                "dynamodb": change,
            })
        })
        .collect();
    serde_json::to_vec(&json!({"Records": records})).unwrap_or_default()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Reads and transforms `input` (an event of `records` records) ROUNDS times; prints the
/// median throughput.
fn measure(label: &str, input: &[u8], records: usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut out_bytes = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let done = match transform(input) {
            Ok(done) => done,
            Err(e) => panic!("the generated event does not read: {e}"),
        };
        let elapsed = start.elapsed();
        let lines = done.lines;
        assert!(done.bad.is_none() && lines.len() == records);
        out_bytes = lines.iter().map(|l| l.data.len()).sum::<usize>();
        std::hint::black_box(&lines);
        times.push(elapsed);
    }
    times.sort();
    let median = times[ROUNDS / 2];
    let per_second = |d: Duration| records as f64 / d.as_secs_f64();
    println!(
        "{label}: event {:.1} MiB ({} bytes/record) -> {:.1} MiB of lines ({} bytes/line)",
        input.len() as f64 / 1048576.0,
        input.len() / records,
        out_bytes as f64 / 1048576.0,
        out_bytes / records
    );
    println!(
        "  median {:.0} records/s (best {:.0}, worst {:.0}), {:.0} MB/s of event JSON; \
         {:.1} ms per {records} records",
        per_second(median),
        per_second(times[0]),
        per_second(times[ROUNDS - 1]),
        input.len() as f64 / median.as_secs_f64() / 1e6,
        median.as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo test --all-targets` runs this binary too (without `--bench`): check that the
    // generated batch transforms, and time nothing.
    if !std::env::args().any(|a| a == "--bench") {
        let input = event_json(20, true);
        let done = transform(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(done.bad.is_none() && done.lines.len() == 20);
        return;
    }
    let item_bytes = serde_json::to_vec(&image(1, "DELIVERED")).map_or(0, |v| v.len());
    println!(
        "{RECORDS} records per batch, items of 20 attributes ({item_bytes} bytes as DynamoDB JSON), one core, median of {ROUNDS}"
    );
    let new_image_view = event_json(RECORDS, false);
    measure(
        "INSERT, NEW_IMAGE (the original change-audit lab's stream)",
        &new_image_view,
        RECORDS,
    );
    let both = event_json(RECORDS, true);
    measure(
        "MODIFY, NEW_AND_OLD_IMAGES (two images and the diff)",
        &both,
        RECORDS,
    );
    // The Python anchor's own records (bench/stream-transform-vs-python.sh writes them), so
    // the ratio compares the same bytes.
    if let Ok(path) = std::env::var("TRANSFORM_EVENT") {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let records = match transform(&input) {
            Ok(done) => done.records,
            Err(e) => panic!("{path}: {e}"),
        };
        measure(
            &format!("{path}: the Python anchor's MODIFY records"),
            &input,
            records,
        );
    }
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => panic!("tokio: {e}"),
    };
    runtime.block_on(put_against_moto(&both));
}

async fn put_against_moto(input: &[u8]) {
    let aws = devstack::moto().isolated();
    let sdk = aws.sdk_config().await;
    let stream = match devstack::change_audit::ChangeAuditStack::create(&aws, "bench").await {
        Ok(s) => s,
        Err(e) => panic!("creating the delivery stream in moto: {e}"),
    };
    let firehose = aws_sdk_firehose::Client::new(&sdk);
    let lines = match transform(input) {
        Ok(done) => done.lines,
        Err(e) => panic!("{e}"),
    };
    let data: Vec<&[u8]> = lines.iter().map(|l| l.data.as_slice()).collect();
    let backoff =
        audit_core::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 3);
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let report = stream_to_firehose::delivery::deliver(
            &firehose,
            &stream.delivery_stream,
            &data,
            backoff,
            None,
        )
        .await;
        times.push(start.elapsed());
        assert!(
            report.undelivered.is_empty(),
            "{:?}",
            report.undelivered.first()
        );
        println!(
            "PutRecordBatch to moto: {} records in {} calls, {:.2} s ({:.0} records/s)",
            data.len(),
            report.calls,
            start.elapsed().as_secs_f64(),
            data.len() as f64 / start.elapsed().as_secs_f64()
        );
    }
    times.sort();
    println!(
        "median PutRecordBatch time for the batch: {:.2} s (moto writes one S3 object per call)",
        times[1].as_secs_f64()
    );
}
