//! The stack's Athena side, checked without Athena: the Glue table and the four named queries
//! parse as Athena's dialects (Hive DDL, Trino), name only the table's columns, and return
//! the original change-audit lab's answers when run (translated to DuckDB) on a change log the
//! real stream-to-firehose wrote. What cannot be checked here: the OpenX SerDe's reading of
//! the JSON (DuckDB is given the columns as the SerDe would produce them), partition
//! projection, and Trino's own execution.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_dynamodb::types::StreamViewType;
use devstack::change_audit::{CHANGES_PREFIX, ChangeAuditStack};
use devstack::moto;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn check(template: &Path, change_log: Option<&Path>) -> (bool, Value) {
    let venv = devstack::python_tools().unwrap();
    let script = devstack::repo_root().join("crates/xtask/tests/athena_queries.py");
    let mut command = Command::new(venv.join("bin/python"));
    command.arg(script).arg(template);
    if let Some(dir) = change_log {
        command.arg(dir);
    }
    let out = command.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// The original lab's Orders example through the real stream-to-firehose: order 101 walks
/// OPEN, PICKEDUP, DELIVERED, RETURNED; order 102 is put and deleted. The delivered objects
/// are laid out as Firehose's hour folders, one of them delivered twice.
async fn change_log(dir: &Path) {
    let aws = moto().isolated();
    let stack = ChangeAuditStack::create(&aws, "athena").await.unwrap();
    let stream = stack
        .create_audited_table("Orders", "orderId", StreamViewType::NewAndOldImages)
        .await
        .unwrap();
    stack.write_orders_example("Orders").await.unwrap();
    let forwarder = stack.start_forwarder(&[]).await.unwrap();
    let mut source = stack.stream_source(&stream).await.unwrap();
    while let Some(d) = source.poll_once(&forwarder).await.unwrap() {
        assert_eq!(d.failed, 0);
    }
    let objects = stack.delivered().await.unwrap();
    assert!(!objects.is_empty());
    for (i, object) in objects.iter().enumerate() {
        let path = dir.join(object.key.strip_prefix(CHANGES_PREFIX).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &object.raw).unwrap();
        if i == 0 {
            // At-least-once delivery: the same records again, an hour later.
            let again = dir.join("2099/12/31/23/redelivered");
            std::fs::create_dir_all(again.parent().unwrap()).unwrap();
            std::fs::write(again, &object.raw).unwrap();
        }
    }
}

fn rows<'a>(report: &'a Value, query: &str) -> &'a Vec<Value> {
    let entry = &report["queries"][query];
    entry["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{query} did not run: {entry}"))
}

#[tokio::test]
async fn the_named_queries_parse_as_trino_and_answer_the_labs_questions() {
    let dir = tempfile::tempdir().unwrap();
    change_log(dir.path()).await;
    let template = devstack::repo_root().join("infra-main/template.yaml");
    let (ok, report) = check(&template, Some(dir.path()));
    assert!(ok, "{report:#}");
    assert_eq!(report["glue_table"]["parsed"], true);
    assert_eq!(
        report["glue_table"]["columns"]["changed_attributes"],
        "STRUCT<added: ARRAY<STRING>, removed: ARRAY<STRING>, modified: ARRAY<STRING>>"
    );
    for name in [
        "item-history",
        "state-transitions",
        "deletions",
        "changes-per-hour",
    ] {
        assert_eq!(report["queries"][name]["parsed"], true, "{name}");
    }

    // Order 101's history, once per change though one object was delivered twice.
    let history = rows(&report, "item-history");
    let states: Vec<&str> = history
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["OPEN", "PICKEDUP", "DELIVERED", "RETURNED"]);
    let events: Vec<&str> = history
        .iter()
        .map(|r| r["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["INSERT", "MODIFY", "MODIFY", "MODIFY"]);

    let transitions: Vec<(String, String)> = rows(&report, "state-transitions")
        .iter()
        .filter(|r| r["item"].as_str().unwrap().contains("101"))
        .map(|r| {
            (
                r["previous_value"].as_str().unwrap_or("-").to_owned(),
                r["new_value"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("-", "OPEN"),
            ("OPEN", "PICKEDUP"),
            ("PICKEDUP", "DELIVERED"),
            ("DELIVERED", "RETURNED")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    let deletions = rows(&report, "deletions");
    assert_eq!(deletions.len(), 1);
    assert!(deletions[0]["keys"].as_str().unwrap().contains("102"));
    assert_eq!(deletions[0]["ttl_expired"], false);

    let mut per_event = std::collections::BTreeMap::new();
    for r in rows(&report, "changes-per-hour") {
        *per_event
            .entry(r["event_name"].as_str().unwrap().to_owned())
            .or_insert(0) += r["changes"].as_i64().unwrap();
    }
    assert_eq!(
        per_event.into_iter().collect::<Vec<_>>(),
        [
            ("INSERT".to_owned(), 2),
            ("MODIFY".to_owned(), 3),
            ("REMOVE".to_owned(), 1)
        ]
    );
}

#[test]
fn a_query_naming_a_column_the_table_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(devstack::repo_root().join("infra-main/template.yaml"))
        .unwrap()
        .replace(
            "json_extract_scalar(new_image, '$.state') AS state",
            "json_extract_scalar(new_imge, '$.state') AS state",
        );
    let broken = dir.path().join("template.yaml");
    std::fs::write(&broken, text).unwrap();
    let (ok, report) = check(&broken, None);
    assert!(!ok);
    assert!(
        report["queries"]["item-history"]["error"]
            .as_str()
            .unwrap()
            .contains("new_imge"),
        "{report:#}"
    );
}
