//! End to end on the local stack: writes to real tables (moto) produce stream records, which
//! the real binary, under the local Lambda Runtime API, delivers to a Firehose delivery stream
//! (moto) that writes them to S3.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_dynamodb::types::{AttributeValue as Av, StreamViewType};
use devstack::change_audit::ChangeAuditStack;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn s(v: &str) -> Av {
    Av::S(v.to_owned())
}

#[tokio::test]
async fn changes_from_real_table_writes_land_in_s3_once_each_as_documented_lines() {
    let aws = devstack::moto().isolated();
    let stack = ChangeAuditStack::create(&aws, "e2e").await.unwrap();
    let orders = devstack::unique_name("Orders");
    let stream_arn = stack
        .create_audited_table(&orders, "orderId", StreamViewType::NewAndOldImages)
        .await
        .unwrap();
    let db = &stack.dynamodb;

    // 101: created OPEN, then picked up. 102: created with every kind of value, then deleted.
    db.put_item()
        .table_name(&orders)
        .item("orderId", s("101"))
        .item("state", s("OPEN"))
        .item("lastUpdatedDate", Av::N("1705337067".into()))
        .send()
        .await
        .unwrap();
    db.put_item()
        .table_name(&orders)
        .item("orderId", s("102"))
        .item(
            "total",
            Av::N("12345678901234567890123456789012345678".into()),
        )
        .item("receipt", Av::B(vec![0xde, 0xad, 0xbe, 0xef].into()))
        .item("tags", Av::Ss(vec!["gift".into(), "fragile".into()]))
        .item("note", s(""))
        .item(
            "address",
            Av::M(
                [
                    ("city".to_owned(), s("London")),
                    ("lines".to_owned(), Av::L(vec![s("221B")])),
                ]
                .into(),
            ),
        )
        .send()
        .await
        .unwrap();
    db.update_item()
        .table_name(&orders)
        .key("orderId", s("101"))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":s", s("PICKEDUP"))
        .send()
        .await
        .unwrap();
    db.delete_item()
        .table_name(&orders)
        .key("orderId", s("102"))
        .send()
        .await
        .unwrap();

    let forwarder = stack.start_forwarder(&[]).await.unwrap();
    let mut source = stack.stream_source(&stream_arn).await.unwrap();
    source.batch_size = 3; // several invocations, so several PutRecordBatch calls
    let mut invocations = 0;
    while let Some(delivery) = source.poll_once(&forwarder).await.unwrap() {
        assert_eq!(delivery.failed, 0, "{delivery:?}");
        assert_eq!(delivery.invocation_error, None);
        invocations += 1;
    }
    assert_eq!(invocations, 2);

    let objects = stack.delivered().await.unwrap();
    assert_eq!(objects.len(), 2, "one object per PutRecordBatch in moto");
    assert!(
        objects.iter().all(|o| o.ends_with_newline),
        "every record ends with \\n"
    );
    assert!(
        objects
            .iter()
            .all(|o| o.key.starts_with("dynamodb-changes/"))
    );
    let raw: Vec<u8> = objects.iter().flat_map(|o| o.raw.clone()).collect();
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.contains(r#""total":12345678901234567890123456789012345678"#),
        "the 38-digit number keeps every digit: {raw}"
    );

    let mut lines: Vec<Value> = objects.into_iter().flat_map(|o| o.lines).collect();
    // Once each: four writes, four lines, four distinct event ids.
    assert_eq!(lines.len(), 4);
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    lines.sort_by(|a, b| {
        let (a, b) = (
            a["sequence_number"].as_str().unwrap(),
            b["sequence_number"].as_str().unwrap(),
        );
        audit_core::batch::compare_sequence_numbers(a, b)
    });
    let summary: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["keys"]["orderId"].as_str().unwrap().to_owned(),
                l["event_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("101", "INSERT"),
        ("102", "INSERT"),
        ("101", "MODIFY"),
        ("102", "REMOVE"),
    ]
    .iter()
    .map(|(k, e)| ((*k).to_owned(), (*e).to_owned()))
    .collect();
    assert_eq!(summary, expected);

    for line in &lines {
        assert_eq!(line["table"], orders.as_str());
        // moto writes awsRegion us-east-1 into every stream record, whatever the table's region;
        // the line carries the record's awsRegion (checked in the unit tests).
        assert!(!line["region"].as_str().unwrap().is_empty());
        assert_eq!(line["stream_view_type"], "NEW_AND_OLD_IMAGES");
        assert_eq!(line["ttl_expired"], false);
        assert_eq!(line["images_omitted"], Value::Null);
        assert!(
            line["approximate_creation_time"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    let inserted = &lines[1]["new_image"];
    assert_eq!(inserted["receipt"], "3q2+7w==", "binary as base64");
    let mut tags: Vec<&str> = inserted["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["fragile", "gift"], "a set as an array");
    assert_eq!(inserted["note"], "");
    assert_eq!(
        inserted["address"],
        json!({"city": "London", "lines": ["221B"]})
    );

    let modified = &lines[2];
    assert_eq!(modified["old_image"]["state"], "OPEN");
    assert_eq!(modified["new_image"]["state"], "PICKEDUP");
    assert_eq!(
        modified["changed_attributes"],
        json!({"added": [], "removed": [], "modified": ["state"]})
    );
    let removed = &lines[3];
    assert_eq!(removed["new_image"], Value::Null);
    assert_eq!(removed["old_image"]["orderId"], "102");

    // The function logged one summary per batch, in JSON.
    let summaries: Vec<Value> = forwarder
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "batch done")
        .collect();
    assert_eq!(summaries.len(), 2);
    let delivered: u64 = summaries
        .iter()
        .map(|l| l["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, 4);
}

#[tokio::test]
async fn a_new_image_stream_as_the_original_lab_set_it_up_still_gives_a_complete_trail() {
    let aws = devstack::moto().isolated();
    let stack = ChangeAuditStack::create(&aws, "original").await.unwrap();
    let table = devstack::unique_name("Orders");
    let stream_arn = stack
        .create_audited_table(&table, "orderId", StreamViewType::NewImage)
        .await
        .unwrap();
    for state in ["OPEN", "PICKEDUP", "DELIVERED"] {
        stack
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("orderId", s("101"))
            .item("state", s(state))
            .send()
            .await
            .unwrap();
    }
    let forwarder = stack.start_forwarder(&[]).await.unwrap();
    let mut source = stack.stream_source(&stream_arn).await.unwrap();
    while source.poll_once(&forwarder).await.unwrap().is_some() {}
    let lines: Vec<Value> = stack
        .delivered()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|o| o.lines)
        .collect();
    let states: BTreeMap<String, (String, Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["sequence_number"].as_str().unwrap().to_owned(),
                (
                    l["new_image"]["state"].as_str().unwrap().to_owned(),
                    l["old_image"].clone(),
                    l["changed_attributes"].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(states.len(), 3);
    for (state, old_image, changed) in states.values() {
        assert!(["OPEN", "PICKEDUP", "DELIVERED"].contains(&state.as_str()));
        // No old image on this view type, so what changed is unknown, not empty.
        assert_eq!((old_image, changed), (&Value::Null, &Value::Null));
    }
}
