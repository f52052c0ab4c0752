//! `make demo`: the product's main job run locally, end to end, against the embedded stack.
//!
//! Today that is the first step of the Aurora audit-log backup: a fake Aurora cluster with two
//! instances, plus one excluded instance and one PostgreSQL instance, is created in the moto
//! server; the real `db-scanner` binary runs under the local Lambda Runtime API, receives a
//! scheduled EventBridge event, and queues one message per instance to back up. The demo
//! prints what it set up, what the function answered and what arrived on the queue.

use devstack::{LocalLambda, moto};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found; build it first (make demo does)",
            path.display()
        ))
    }
}

async fn run() -> Result<(), String> {
    let scanner_binary = sibling_binary("db-scanner")?;
    println!("== auditkit demo: Aurora audit-log backup, step 1 (db-scanner)\n");
    println!("Starting the local stack (moto server; first run installs it into .venv) ...");
    let moto = moto();
    let aws = moto.isolated();
    println!(
        "  moto server at {} (region {})",
        moto.endpoint(),
        aws.region
    );
    let sdk = aws.sdk_config().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    let e = |e: &dyn std::fmt::Display| e.to_string();
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
        println!(
            "  created DB instance {id:<15} engine {engine:<13} cluster {}",
            cluster.unwrap_or("-")
        );
    }
    let queue_url = sqs
        .create_queue()
        .queue_name("auditkit-scan-queue")
        .send()
        .await
        .map_err(|x| e(&x))?
        .queue_url
        .unwrap_or_default();
    println!("  created SQS queue {queue_url}\n");

    let config = [
        ("QUEUE_URL", queue_url.as_str()),
        ("ENGINES", "aurora-mysql"),
        ("EXCLUDE_INSTANCES", "orders-sandbox"),
        ("LOG_LEVEL", "INFO"),
    ];
    println!(
        "Running {} under the local Lambda Runtime API with:",
        scanner_binary.display()
    );
    for (k, v) in config {
        println!("  {k}={v}");
    }
    let scanner = LocalLambda::builder(&scanner_binary)
        .envs(aws.vars())
        .envs(config)
        .echo_logs(true)
        .start()
        .await?;
    let cold_start = scanner
        .wait_ready(Duration::from_secs(30))
        .await
        .map_err(|x| x.to_string())?;
    println!("  cold start (process start to first request for work): {cold_start:.1?}\n");

    let event = json!({
        "version": "0", "id": "demo-schedule-1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-11-22T10:00:00Z",
        "region": aws.region, "resources": ["arn:aws:events:us-east-1:000000000000:rule/auditkit-scan"],
        "detail": {}
    });
    println!("Invoking with a scheduled EventBridge event ...");
    let summary = scanner.invoke(&event).await.map_err(|x| x.to_string())?;
    println!(
        "\nResponse:\n{}\n",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .map_err(|x| e(&x))?;
    println!("Messages on the scan queue (what log-detector will read):");
    for m in received.messages() {
        let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
        println!("  {body}");
    }

    println!("\nA manual run for one instance: {{\"instances\": [\"orders-reader\"]}}");
    let manual = scanner
        .invoke(&json!({"instances": ["orders-reader"]}))
        .await
        .map_err(|x| x.to_string())?;
    println!("  queued {}", manual["queued_instances"]);
    println!(
        "\nA manual run naming an instance that does not exist is refused and queues nothing:"
    );
    match scanner.invoke(&json!({"instances": ["orders-gone"]})).await {
        Err(error) => println!("  {error}"),
        Ok(v) => return Err(format!("expected a refusal, got {v}")),
    }
    println!("\nDone. Everything the demo started stops now.");
    Ok(())
}
