//! `cargo bench -p table-updater --bench plan`: parse, validate and build the update for a
//! 20-attribute request with a condition; then the request fingerprint an idempotent retry is
//! matched by (canonical form, SHA-256); time per request, one core.

use std::time::Instant;
use table_updater::request::plan;
use table_updater::updater::fingerprint;
use table_updater::{KeyAttribute, KeyKind, KeySchema};

fn request() -> String {
    let mut attributes = Vec::new();
    for i in 0..20 {
        let value = match i % 5 {
            0 => format!("\"value number {i} with some text\""),
            1 => "12345678901234567890123456789012345678".to_owned(),
            2 => "true".to_owned(),
            3 => r#"{"street":"221B Baker Street","city":"London","zip":"NW1 6XE"}"#.to_owned(),
            _ => r#"["gift","fragile",3,{"qty":2}]"#.to_owned(),
        };
        attributes.push(format!("\"attribute_{i}\":{value}"));
    }
    format!(
        r#"{{"id":"user-123","attributes":{{{}}},"enable_logging":true,
            "condition_expression":"status = 'active' AND attribute_not_exists(deleted_at)",
            "idempotency_key":"retry-7f3a"}}"#,
        attributes.join(",")
    )
}

fn main() {
    let schema = KeySchema {
        partition: KeyAttribute {
            name: "id".into(),
            kind: KeyKind::S,
        },
        sort: None,
    };
    let body = request();
    let check = plan(&body, &schema, false, None);
    assert!(
        check.as_ref().is_ok_and(|p| p.attributes.len() == 20),
        "{check:?}"
    );
    // `cargo test --all-targets` runs this binary too (without `--bench`): time nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    const N: u32 = 100_000;
    let rounds = measure(N, || {
        std::hint::black_box(plan(std::hint::black_box(&body), &schema, false, None).is_ok());
    });
    println!(
        "20-attribute request ({} bytes) with a condition: {rounds}, 7 rounds of {N}",
        body.len()
    );
    let planned = plan(&body, &schema, false, None).expect("planned");
    let rounds = measure(N, || {
        std::hint::black_box(fingerprint("users", std::hint::black_box(&planned)));
    });
    println!("its request fingerprint (canonical form, SHA-256): {rounds}, 7 rounds of {N}");
}

/// Median, best and worst time per call over 7 rounds of `n` calls.
fn measure(n: u32, mut call: impl FnMut()) -> String {
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..n {
            call();
        }
        rounds.push(start.elapsed() / n);
    }
    rounds.sort();
    format!(
        "median {:.2} µs per request (best {:.2}, worst {:.2})",
        rounds[3].as_secs_f64() * 1e6,
        rounds[0].as_secs_f64() * 1e6,
        rounds[6].as_secs_f64() * 1e6,
    )
}
