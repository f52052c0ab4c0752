//! The audit line of a stream record: conversion, the diff as the line reports it, oversize
//! records, the transform of a batch.

use super::*;
use crate::event::{StreamBatch, StreamRecord, UserIdentity, read_batch};
use crate::handler;
use serde_json::{Value, json};
use std::ops::{Deref, DerefMut};

/// One record, read from the text of a one-record event as the function reads it.
struct Record(StreamBatch<'static>);

impl Deref for Record {
    type Target = StreamRecord<'static>;
    fn deref(&self) -> &Self::Target {
        &self.0.records[0]
    }
}

impl DerefMut for Record {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0.records[0]
    }
}

/// A batch read from `{"Records": records}` (the text lives as long as the test binary).
fn read(records: &[Value]) -> StreamBatch<'static> {
    let text: &'static str = Box::leak(json!({ "Records": records }).to_string().into_boxed_str());
    read_batch(text.as_bytes()).unwrap()
}

fn audit_line(record: &Record) -> Result<AuditLine, RecordError> {
    super::audit_line(&record.0.records[0], &record.0.rewritten)
}

const ARN: &str =
    "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders/stream/2026-11-22T10:00:00.000";

/// A stream record as Lambda delivers it.
fn stream_record(
    event_name: &str,
    view: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Record {
    Record(read(&[record_json(event_name, view, keys, new, old)]))
}

/// The JSON of one stream record as Lambda delivers it.
fn record_json(
    event_name: &str,
    view: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_763_805_600.0,
        "Keys": keys,
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 59,
        "StreamViewType": view,
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": "c4ca4238a0b923820dcc509a6f75849b",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": dynamodb,
        "eventSourceARN": ARN,
    })
}

fn line(record: &Record) -> Value {
    let line = audit_line(record).unwrap();
    assert_eq!(
        line.data.last(),
        Some(&b'\n'),
        "every line ends with a newline"
    );
    assert_eq!(
        line.data.iter().filter(|b| **b == b'\n').count(),
        1,
        "one line per record"
    );
    serde_json::from_slice(&line.data).unwrap()
}

fn order_keys() -> Value {
    json!({"orderId": {"S": "101"}})
}

#[test]
fn every_attribute_type_becomes_plain_json() {
    let image = json!({
        "orderId": {"S": "101"},
        "empty": {"S": ""},
        "quote": {"S": "say \"hi\"\\\n\u{1}ü"},
        "big": {"N": "12345678901234567890123456789012345678"},
        "tiny": {"N": "-0.000000000000000000000000000000000001"},
        "exp": {"N": "1E+130"},
        "flag": {"BOOL": true},
        "nothing": {"NULL": true},
        "blob": {"B": "3q2+7w=="},
        "tags": {"SS": ["b", "a"]},
        "scores": {"NS": ["1", "99999999999999999999999999999999999999"]},
        "blobs": {"BS": ["AA==", "/w=="]},
        "list": {"L": [{"S": "x"}, {"N": "2"}, {"L": [{"NULL": true}]}]},
        "deep": {"M": {"a": {"M": {"b": {"M": {"c": {"L": [{"M": {"d": {"N": "7"}}}]}}}}}}},
    });
    let record = stream_record(
        "INSERT",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(image),
        None,
    );
    let raw = audit_line(&record).unwrap().data;
    let text = std::str::from_utf8(&raw).unwrap();
    // Exact digits reach the line as number tokens: nothing went through f64.
    assert!(
        text.contains(r#""big":12345678901234567890123456789012345678"#),
        "{text}"
    );
    assert!(
        text.contains(r#""tiny":-0.000000000000000000000000000000000001"#),
        "{text}"
    );
    assert!(text.contains(r#""exp":1E+130"#), "{text}");
    assert!(
        text.contains(r#""scores":[1,99999999999999999999999999999999999999]"#),
        "{text}"
    );

    let v: Value = serde_json::from_slice(&raw).unwrap();
    let new = &v["new_image"];
    assert_eq!(new["orderId"], "101");
    assert_eq!(new["empty"], "");
    assert_eq!(new["quote"], "say \"hi\"\\\n\u{1}ü");
    assert_eq!(new["flag"], true);
    assert_eq!(new["nothing"], Value::Null);
    assert_eq!(new["blob"], "3q2+7w==");
    assert_eq!(new["tags"], json!(["b", "a"]));
    assert_eq!(new["blobs"], json!(["AA==", "/w=="]));
    assert_eq!(new["list"], json!(["x", 2, [null]]));
    assert_eq!(new["deep"], json!({"a": {"b": {"c": [{"d": 7}]}}}));
    assert_eq!(v["keys"], json!({"orderId": "101"}));
    assert_eq!(v["old_image"], Value::Null);
    assert_eq!(
        v["changed_attributes"],
        Value::Null,
        "only a MODIFY has a diff"
    );
}

#[test]
fn the_line_has_the_documented_fields_in_order() {
    let record = stream_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(json!({"orderId": {"S": "101"}, "state": {"S": "PICKEDUP"}})),
        Some(json!({"orderId": {"S": "101"}, "state": {"S": "OPEN"}})),
    );
    let data = audit_line(&record).unwrap().data;
    let v: serde_json::Map<String, Value> = serde_json::from_slice(&data).unwrap();
    let names: Vec<&str> = RECORD_COLUMNS.iter().map(|(name, _)| *name).collect();
    // The map may or may not keep order (a serde_json feature): check the set here and the
    // written order below.
    let mut expected = names.clone();
    expected.sort_unstable();
    let mut found: Vec<&str> = v.keys().map(String::as_str).collect();
    found.sort_unstable();
    assert_eq!(found, expected);
    let text = std::str::from_utf8(&data).unwrap();
    let positions: Vec<usize> = names
        .iter()
        .map(|n| text.find(&format!("\"{n}\":")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "written in RECORD_COLUMNS order"
    );
    // Each value has the JSON kind its Glue column type reads.
    for (name, glue_type) in RECORD_COLUMNS {
        let value = &v[*name];
        let ok = match *glue_type {
            "boolean" => value.is_boolean(),
            t if t.starts_with("map<") || t.starts_with("struct<") => value.is_object(),
            // JSON text: strings, objects (the images) and null all read as string.
            _ => value.is_string() || value.is_object() || value.is_null(),
        };
        assert!(ok, "{name} = {value} does not fit {glue_type}");
    }
    assert_eq!(v["event_id"], "c4ca4238a0b923820dcc509a6f75849b");
    assert_eq!(v["event_name"], "MODIFY");
    assert_eq!(v["table"], "Orders");
    assert_eq!(v["sequence_number"], "4421584500000000017450439091");
    assert_eq!(v["approximate_creation_time"], "2025-11-22T10:00:00Z");
    assert_eq!(v["stream_view_type"], "NEW_AND_OLD_IMAGES");
    assert_eq!(v["ttl_expired"], false);
    assert_eq!(v["region"], "eu-west-1");
    assert_eq!(v["images_omitted"], Value::Null);
    assert_eq!(
        v["changed_attributes"],
        json!({"added": [], "removed": [], "modified": ["state"]})
    );
}

#[test]
fn each_view_type_carries_its_images() {
    let new = json!({"orderId": {"S": "101"}, "state": {"S": "DELIVERED"}});
    let old = json!({"orderId": {"S": "101"}, "state": {"S": "PICKEDUP"}});
    let cases = [
        ("NEW_IMAGE", Some(new.clone()), None),
        ("OLD_IMAGE", None, Some(old.clone())),
        ("NEW_AND_OLD_IMAGES", Some(new.clone()), Some(old.clone())),
        ("KEYS_ONLY", None, None),
    ];
    for (view, n, o) in cases {
        let v = line(&stream_record(
            "MODIFY",
            view,
            order_keys(),
            n.clone(),
            o.clone(),
        ));
        assert_eq!(v["stream_view_type"], view);
        assert_eq!(v["keys"]["orderId"], "101", "{view}");
        assert_eq!(
            v["new_image"]["state"].as_str(),
            n.as_ref().map(|_| "DELIVERED"),
            "{view}"
        );
        assert_eq!(
            v["old_image"]["state"].as_str(),
            o.as_ref().map(|_| "PICKEDUP"),
            "{view}"
        );
        // The diff needs both images; with one, what changed is unknown (null), not "nothing".
        let has_diff = view == "NEW_AND_OLD_IMAGES";
        assert_eq!(!v["changed_attributes"].is_null(), has_diff, "{view}");
    }
}

#[test]
fn a_number_that_is_not_one_is_refused_naming_its_attribute() {
    let new = json!({"orderId": {"S": "101"}, "lines": {"L": [{"M": {"qty": {"N": "lots"}}}]}});
    let record = stream_record("INSERT", "NEW_IMAGE", order_keys(), Some(new), None);
    match audit_line(&record) {
        Err(RecordError::Image { path, message, .. }) => {
            assert_eq!(path, "dynamodb.NewImage.lines.[0].qty");
            assert!(message.contains("\"lots\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_records_name_the_field() {
    let mut record = stream_record("INSERT", "NEW_IMAGE", order_keys(), None, None);
    record.event_name = "UPSERT".into();
    let error = audit_line(&record).unwrap_err();
    assert!(
        error.to_string().contains("field eventName is \"UPSERT\""),
        "{error}"
    );

    let mut record = stream_record("INSERT", "NEW_IMAGE", order_keys(), None, None);
    record.change.sequence_number = None;
    let error = audit_line(&record).unwrap_err();
    assert!(
        error.to_string().contains("dynamodb.SequenceNumber"),
        "{error}"
    );

    let mut record = stream_record("INSERT", "NEW_IMAGE", order_keys(), None, None);
    record.event_source_arn = Some("arn:aws:sqs:eu-west-1:1:queue".into());
    let error = audit_line(&record).unwrap_err();
    assert!(error.to_string().contains("eventSourceARN"), "{error}");
}

#[test]
fn ttl_deletions_are_marked() {
    let old = json!({"orderId": {"S": "101"}, "expires": {"N": "1700000000"}});
    let mut record = stream_record(
        "REMOVE",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        None,
        Some(old),
    );
    assert_eq!(line(&record)["ttl_expired"], false, "a caller's delete");
    record.user_identity = Some(UserIdentity {
        type_: "Service".into(),
        principal_id: "dynamodb.amazonaws.com".into(),
    });
    let v = line(&record);
    assert_eq!(v["ttl_expired"], true);
    assert_eq!(v["event_name"], "REMOVE");
    assert_eq!(v["old_image"]["expires"], 1_700_000_000);
}

#[test]
fn the_table_name_comes_from_the_stream_arn() {
    assert_eq!(table_name(ARN), Some("Orders"));
    assert_eq!(
        table_name("arn:aws:dynamodb:us-east-1:1:table/a.b-c_d"),
        Some("a.b-c_d")
    );
    assert_eq!(table_name("arn:aws:sqs:us-east-1:1:q"), None);
}

fn big_string(bytes: usize) -> Value {
    json!({"S": "x".repeat(bytes)})
}

#[test]
fn an_oversize_record_drops_the_old_image_then_the_new_and_is_still_delivered() {
    // Old image alone pushes the record over: it goes, the new image stays.
    let new = json!({"orderId": {"S": "101"}, "note": big_string(300_000)});
    let old = json!({"orderId": {"S": "101"}, "note": big_string(800_000)});
    let record = stream_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(new),
        Some(old),
    );
    let line = audit_line(&record).unwrap();
    assert!(line.data.len() <= MAX_RECORD_BYTES);
    let v: Value = serde_json::from_slice(&line.data).unwrap();
    assert_eq!(v["old_image"], Value::Null);
    assert_eq!(v["new_image"]["note"].as_str().unwrap().len(), 300_000);
    let reason = v["images_omitted"].as_str().unwrap();
    assert!(
        reason.starts_with("old_image left out: the record was 1100"),
        "{reason}"
    );
    assert_eq!(line.images_omitted.as_deref(), Some(reason));
    // The diff was computed from the full images.
    assert_eq!(v["changed_attributes"]["modified"], json!(["note"]));

    // Escaping can make a 400 KB item's JSON larger than the record limit on its own.
    let controls = "\u{1}".repeat(200_000); // six bytes each once escaped
    let new = json!({"orderId": {"S": "101"}, "raw": {"S": controls}});
    let record = stream_record("INSERT", "NEW_IMAGE", order_keys(), Some(new), None);
    let v = super::tests::line(&record);
    assert_eq!(v["new_image"], Value::Null);
    assert_eq!(v["keys"]["orderId"], "101", "the keys always stay");
    assert!(
        v["images_omitted"]
            .as_str()
            .unwrap()
            .starts_with("new_image left out")
    );

    // Each image alone is over the limit: both go, and the line says so.
    let new = json!({"orderId": {"S": "101"}, "note": big_string(1_100_000)});
    let old = json!({"orderId": {"S": "101"}, "note": big_string(1_100_000)});
    let record = stream_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(new),
        Some(old),
    );
    let v = super::tests::line(&record);
    assert_eq!(
        (v["new_image"].is_null(), v["old_image"].is_null()),
        (true, true)
    );
    assert!(
        v["images_omitted"]
            .as_str()
            .unwrap()
            .starts_with("old_image and new_image left out")
    );
}

#[test]
fn a_record_just_under_the_limit_is_left_whole() {
    let base = audit_line(&stream_record(
        "INSERT",
        "NEW_IMAGE",
        order_keys(),
        Some(json!({"orderId": {"S": "101"}, "note": {"S": ""}})),
        None,
    ))
    .unwrap()
    .data
    .len();
    let fill = |extra: usize| {
        let new =
            json!({"orderId": {"S": "101"}, "note": big_string(MAX_RECORD_BYTES - base + extra)});
        audit_line(&stream_record(
            "INSERT",
            "NEW_IMAGE",
            order_keys(),
            Some(new),
            None,
        ))
        .unwrap()
    };
    let exact = fill(0);
    assert_eq!(exact.data.len(), MAX_RECORD_BYTES);
    assert_eq!(exact.images_omitted, None);
    assert!(fill(1).images_omitted.is_some());
}

#[test]
fn a_bad_record_stops_the_transform_at_that_record() {
    let good = record_json("INSERT", "NEW_IMAGE", order_keys(), None, None);
    let mut bad = good.clone();
    bad["eventName"] = json!("UPSERT");
    let text = json!({"Records": [good.clone(), bad, good]}).to_string();
    let done = handler::transform(text.as_bytes()).unwrap();
    assert_eq!((done.lines.len(), done.records), (1, 3));
    let bad = done.bad.unwrap();
    assert_eq!(bad.index, 1);
    assert!(matches!(bad.error, RecordError::EventName { .. }));
    // The bad record and the one after it, to report for retry.
    let sequence_number = Some("4421584500000000017450439091".to_owned());
    assert_eq!(
        bad.sequence_numbers,
        [sequence_number.clone(), sequence_number]
    );
}

#[test]
fn the_creation_time_is_rfc3339_utc_with_its_fraction() {
    let mut record = stream_record("INSERT", "NEW_IMAGE", order_keys(), None, None);
    for (epoch, expected) in [
        (Some(1_763_805_600.0), json!("2025-11-22T10:00:00Z")),
        (Some(1_763_805_600.5), json!("2025-11-22T10:00:00.500Z")),
        (
            Some(1_763_805_600.123_456),
            json!("2025-11-22T10:00:00.123456Z"),
        ),
        (Some(951_782_400.0), json!("2000-02-29T00:00:00Z")),
        (None, Value::Null), // missing in some records (aws-lambda-rust-runtime#889)
    ] {
        record.change.approximate_creation_date_time = epoch;
        assert_eq!(
            line(&record)["approximate_creation_time"],
            expected,
            "{epoch:?}"
        );
    }
}

#[test]
fn the_diff_names_added_removed_and_modified_attributes() {
    let new = json!({
        "orderId": {"S": "101"}, "state": {"S": "RETURNED"}, "reason": {"S": "damaged"},
        "total": {"N": "10.50"}, "tags": {"SS": ["b", "a"]}, "lines": {"L": [{"N": "1"}]},
        "meta": {"M": {"by": {"S": "ops"}}},
    });
    let old = json!({
        "orderId": {"S": "101"}, "state": {"S": "DELIVERED"}, "courier": {"S": "dhl"},
        "total": {"N": "10.5"}, "tags": {"SS": ["a", "b"]}, "lines": {"L": [{"N": "2"}]},
        "meta": {"M": {"by": {"S": "ops"}}},
    });
    let v = line(&stream_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(new),
        Some(old),
    ));
    // 10.50 = 10.5 and a set is unordered: neither counts as a change.
    assert_eq!(
        v["changed_attributes"],
        json!({"added": ["reason"], "removed": ["courier"], "modified": ["lines", "state"]})
    );

    // The same names in the same order (the usual shape) take a shorter path to the same answer.
    let same_order = |state: &str, total: &str, tags: [&str; 2]| json!({"orderId": {"S": "101"}, "total": {"N": total}, "tags": {"SS": tags}, "state": {"S": state}});
    let v = line(&stream_record(
        "MODIFY",
        "NEW_AND_OLD_IMAGES",
        order_keys(),
        Some(same_order("RETURNED", "10.50", ["b", "a"])),
        Some(same_order("DELIVERED", "10.5", ["a", "b"])),
    ));
    assert_eq!(
        v["changed_attributes"],
        json!({"added": [], "removed": [], "modified": ["state"]})
    );
}
