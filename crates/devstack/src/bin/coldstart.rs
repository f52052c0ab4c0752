//! Cold-start benchmark: starts a function binary under the local Runtime API `RUNS` times
//! (default 30) and reports the time from process start to its first request for work, which
//! covers loading the binary, tracing and configuration, and building the SDK clients.
//!
//! usage: coldstart <binary> [KEY=VALUE ...]   (the KEY=VALUEs are the function's configuration)
//!
//! With `MOTO_TABLE=<name>` the function runs against moto, where a table of that name (key `id`)
//! exists: for functions that read it at cold start (table-updater's `DescribeTable`).

use devstack::LocalLambda;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(binary) = args.next() else {
        eprintln!("usage: coldstart <binary> [KEY=VALUE ...]");
        std::process::exit(2);
    };
    let config: Vec<(String, String)> = args
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let mut aws_vars: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if let Ok(table) = std::env::var("MOTO_TABLE") {
        let aws = devstack::moto().isolated();
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
        if let Err(e) = devstack::AwsEnv::create_table(&dynamodb, &table, "id", None).await {
            eprintln!("{e}");
            std::process::exit(1);
        }
        aws_vars = aws.vars();
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let function = LocalLambda::builder(&binary)
            .envs(aws_vars.iter().cloned())
            .envs(config.iter().cloned())
            .start()
            .await
            .expect("start");
        match function.wait_ready(Duration::from_secs(30)).await {
            Ok(d) => samples.push(d),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!(
        "{binary}: {runs} cold starts: min {:.1?}, median {:.1?}, p90 {:.1?}, max {:.1?}; binary {:.1} MiB",
        pick(0.0),
        pick(0.5),
        pick(0.9),
        pick(1.0),
        size as f64 / 1_048_576.0
    );
}
