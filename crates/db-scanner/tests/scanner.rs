//! db-scanner against the moto server, through its real binary under the local Runtime API.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_rds::Client as Rds;
use aws_sdk_sqs::Client as Sqs;
use devstack::{AwsEnv, InvokeError, LocalLambda, moto, unique_name};
use serde_json::{Value, json};
use std::collections::BTreeSet;

struct Stack {
    aws: AwsEnv,
    rds: Rds,
    sqs: Sqs,
    queue_url: String,
}

async fn stack() -> Stack {
    let aws = moto().isolated();
    let sdk = aws.sdk_config().await;
    let sqs = Sqs::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("scan"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Stack {
        rds: Rds::new(&sdk),
        sqs,
        queue_url,
        aws,
    }
}

impl Stack {
    async fn aurora_cluster(&self, cluster: &str, instances: &[String]) {
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(cluster)
            .engine("aurora-mysql")
            .master_username("admin")
            .master_user_password("password-123")
            .send()
            .await
            .unwrap();
        for id in instances {
            self.rds
                .create_db_instance()
                .db_instance_identifier(id)
                .db_cluster_identifier(cluster)
                .engine("aurora-mysql")
                .db_instance_class("db.r6g.large")
                .send()
                .await
                .unwrap();
        }
    }

    async fn standalone(&self, id: &str, engine: &str) {
        self.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("password-123")
            .send()
            .await
            .unwrap();
    }

    async fn scanner(&self, extra: &[(&str, &str)]) -> LocalLambda {
        LocalLambda::builder(env!("CARGO_BIN_EXE_db-scanner"))
            .envs(self.aws.vars())
            .env("QUEUE_URL", &self.queue_url)
            .envs(extra.iter().copied())
            .start()
            .await
            .unwrap()
    }

    /// Every message on the queue (bodies parsed), deleting as it reads.
    async fn drain(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for m in messages {
                bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

fn scheduled_event() -> Value {
    json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
        "time": "2026-11-22T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/auditkit-scan"], "detail": {}
    })
}

#[tokio::test]
async fn scheduled_scan_follows_every_page_and_queues_what_passes_the_filter() {
    let s = stack().await;
    // 45 Aurora instances: three pages of 20.
    let aurora: Vec<String> = (0..45).map(|i| format!("aurora-{i:02}")).collect();
    s.aurora_cluster("orders-cluster", &aurora).await;
    s.standalone("legacy-db", "mysql").await; // excluded by name
    s.standalone("reports-pg", "postgres").await; // engine not configured
    s.standalone("paused-db", "mysql").await;
    s.rds
        .stop_db_instance()
        .db_instance_identifier("paused-db")
        .send()
        .await
        .unwrap();

    let scanner = s
        .scanner(&[
            ("ENGINES", "aurora-mysql,mysql"),
            ("EXCLUDE_INSTANCES", "legacy-db"),
            ("DESCRIBE_PAGE_SIZE", "20"),
        ])
        .await;
    let summary = scanner.invoke(&scheduled_event()).await.unwrap();

    assert_eq!(summary["found"], 48, "{summary}");
    assert_eq!(summary["queued"], 45);
    assert_eq!(summary["skipped_by_engine"], 1);
    assert_eq!(summary["skipped_excluded"], 1);
    assert_eq!(summary["skipped_not_available"], 1);

    let messages = s.drain().await;
    let queued: BTreeSet<&str> = messages
        .iter()
        .map(|m| m["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(queued, aurora.iter().map(String::as_str).collect());
    assert_eq!(messages.len(), 45, "one message per instance");
    for m in &messages {
        assert_eq!(m["version"], 1);
        assert_eq!(m["engine"], "aurora-mysql");
        assert_eq!(m["cluster_id"], "orders-cluster");
        assert!(m["scanned_at"].as_str().unwrap().ends_with('Z'), "{m}");
    }
    // The log is JSON lines, with the summary as a structured event.
    let finished = scanner
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "scan finished")
        .expect("a 'scan finished' JSON log line");
    assert_eq!(finished["queued"], 45);
}

#[tokio::test]
async fn manual_scan_queues_only_the_named_instances() {
    let s = stack().await;
    let ids: Vec<String> = (0..3).map(|i| format!("billing-{i}")).collect();
    s.aurora_cluster("billing", &ids).await;

    let scanner = s.scanner(&[]).await;
    let summary = scanner
        .invoke(&json!({"instances": ["BILLING-2", "billing-0"]}))
        .await
        .unwrap();
    assert_eq!(summary["found"], 2);
    assert_eq!(summary["queued"], 2);

    let queued: BTreeSet<String> = s
        .drain()
        .await
        .iter()
        .map(|m| m["instance_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        queued,
        BTreeSet::from(["billing-0".to_owned(), "billing-2".to_owned()])
    );
}

#[tokio::test]
async fn bad_manual_events_are_rejected_by_field_and_queue_nothing() {
    let s = stack().await;
    s.aurora_cluster("crm", &["crm-1".to_owned()]).await;
    let scanner = s.scanner(&[]).await;

    for (event, expected) in [
        (
            json!({"instances": "crm-1"}),
            "instances: expected an array",
        ),
        (json!({"instances": ["crm-1", "crm_2"]}), "instances[1]"),
        (json!({"instance": ["crm-1"]}), "instance: unknown field"),
        (
            json!({"instances": ["crm-1", "crm-9"]}),
            "instances: no DB instance named crm-9",
        ),
    ] {
        match scanner.invoke(&event).await {
            Err(InvokeError::Function(e)) => {
                assert_eq!(e.error_type, "Permanent.InvalidEvent", "{event}");
                assert!(
                    e.error_message.contains(expected),
                    "{event}: {}",
                    e.error_message
                );
            }
            other => panic!("{event}: expected a function error, got {other:?}"),
        }
    }
    assert!(
        s.drain().await.is_empty(),
        "a rejected event must queue nothing"
    );
}

#[tokio::test]
async fn a_queue_that_does_not_exist_fails_the_invocation() {
    let s = stack().await;
    s.aurora_cluster("hr", &["hr-1".to_owned()]).await;
    let missing_queue = s.queue_url.replace("/scan-", "/deleted-");
    let scanner = LocalLambda::builder(env!("CARGO_BIN_EXE_db-scanner"))
        .envs(s.aws.vars())
        .env("QUEUE_URL", &missing_queue)
        .env("SEND_MAX_ATTEMPTS", "2")
        .start()
        .await
        .unwrap();
    match scanner.invoke(&scheduled_event()).await {
        Err(InvokeError::Function(e)) => {
            assert!(e.error_type.ends_with(".QueueSendFailed"), "{e:?}");
            assert!(
                e.error_message
                    .contains("1 of 1 instances could not be queued"),
                "{e:?}"
            );
            assert!(e.error_message.contains("hr-1"), "{e:?}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_or_invalid_configuration_stops_the_cold_start_naming_the_variable() {
    let aws = moto().isolated();
    for (vars, variable) in [
        (vec![], "QUEUE_URL"),
        (
            vec![
                ("QUEUE_URL", "http://127.0.0.1:1/q"),
                ("ENGINES", "oracle-ee"),
            ],
            "ENGINES",
        ),
        (
            vec![
                ("QUEUE_URL", "http://127.0.0.1:1/q"),
                ("DESCRIBE_PAGE_SIZE", "500"),
            ],
            "DESCRIBE_PAGE_SIZE",
        ),
        (
            vec![
                ("QUEUE_URL", "http://127.0.0.1:1/q"),
                ("LOG_LEVEL", "chatty"),
            ],
            "LOG_LEVEL",
        ),
    ] {
        let scanner = LocalLambda::builder(env!("CARGO_BIN_EXE_db-scanner"))
            .envs(aws.vars())
            .envs(vars)
            .start()
            .await
            .unwrap();
        match scanner.invoke(&scheduled_event()).await {
            Err(InvokeError::Init { error, logs }) => {
                assert_eq!(error.error_type, "Runtime.ConfigurationError");
                assert!(
                    error.error_message.contains(variable),
                    "{}",
                    error.error_message
                );
                // One JSON log line names the variable.
                let line = logs
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["level"] == "ERROR")
                    .unwrap_or_else(|| panic!("no JSON error line in:\n{logs}"));
                assert_eq!(line["variable"], variable);
            }
            other => panic!("{variable}: expected an init error, got {other:?}"),
        }
    }
}
