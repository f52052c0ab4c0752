//! Reading the stream event: the same fields `aws_lambda_events` reads, JSON's rules kept, and
//! errors that name the field.

use super::*;
use serde_json::{Value, json};

/// An event as Lambda delivers it, with what a reader must pass over: fields it does not use,
/// nested values of every JSON kind, null images, a TTL deletion, escapes.
fn lambda_event() -> Value {
    json!({"Records": [
        {
            "eventID": "f07f8ca4b0b26cb9c4e5e77e69f274ee",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "dynamodb": {
                "ApproximateCreationDateTime": 1_480_642_020.25,
                "Keys": {"pk": {"S": "order#1"}},
                "OldImage": {"pk": {"S": "order#1"}, "blobs": {"BS": ["AAEqQQ==", "QSoBAA=="]},
                    "qty": {"N": "12"}, "note": {"S": "say \"hi\"\n\u{e9}"}},
                "NewImage": null,
                "SequenceNumber": "1405400000000002063282832",
                "SizeBytes": 54,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "Future": {"a": [1, -2.5e3, true, false, null, {"b": []}], "c": "\\u0041"}
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Example-Table/stream/2016-12-01T00:00:00.000"
        },
        {
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Example-Table/stream/2016-12-01T00:00:00.000",
            "dynamodb": {
                "Keys": {"pk": {"S": "order#2"}},
                "NewImage": {"pk": {"S": "order#2"}, "m": {"M": {"l": {"L": [{"NULL": true}, {"BOOL": false}]}}}},
                "SequenceNumber": "1405400000000002063282833",
                "SizeBytes": 40,
                "StreamViewType": "NEW_IMAGE"
            },
            "eventName": "INSERT",
            "eventID": "event-\u{0}-2",
            "awsRegion": "us-east-1"
        }
    ], "Extra": {"x": 1}})
}

/// Plain JSON of one image as `aws_lambda_events` and `serde_dynamo` read it (binary as
/// base64, as the audit line writes it).
fn oracle_image(item: &serde_dynamo::Item) -> Value {
    use base64::Engine as _;
    use serde_dynamo::AttributeValue as V;
    fn plain(value: &V) -> Value {
        let base64 = |b: &Vec<u8>| Value::from(base64::engine::general_purpose::STANDARD.encode(b));
        let number = |n: &String| serde_json::from_str::<Value>(n).unwrap();
        match value {
            V::S(s) => Value::from(s.as_str()),
            V::N(n) => number(n),
            V::Bool(b) => Value::from(*b),
            V::Null(_) => Value::Null,
            V::B(b) => base64(b),
            V::Ss(v) => v.iter().map(|s| Value::from(s.as_str())).collect(),
            V::Ns(v) => v.iter().map(number).collect(),
            V::Bs(v) => v.iter().map(base64).collect(),
            V::L(v) => v.iter().map(plain).collect(),
            V::M(m) => m.iter().map(|(k, v)| (k.clone(), plain(v))).collect(),
        }
    }
    item.iter().map(|(k, v)| (k.clone(), plain(v))).collect()
}

fn plain(batch: &StreamBatch<'_>, image: Option<&Image<'_>>) -> Option<Value> {
    image.map(|image| {
        let range = image.rewritten.as_ref().unwrap().plain.clone();
        serde_json::from_slice(&batch.rewritten.plain[range]).unwrap()
    })
}

#[test]
fn reads_what_aws_lambda_events_reads_compact_or_pretty() {
    let event = lambda_event();
    let oracle: aws_lambda_events::dynamodb::Event = serde_json::from_value(event.clone()).unwrap();
    for text in [
        event.to_string(),
        serde_json::to_string_pretty(&event).unwrap(),
    ] {
        let batch = read_batch(text.as_bytes()).unwrap();
        assert_eq!(batch.records.len(), oracle.records.len());
        for (read, expected) in batch.records.iter().zip(&oracle.records) {
            assert_eq!(read.event_id, expected.event_id);
            assert_eq!(read.event_name, expected.event_name);
            assert_eq!(read.aws_region, expected.aws_region);
            assert_eq!(
                read.event_source_arn.as_deref(),
                expected.event_source_arn.as_deref()
            );
            let change = &read.change;
            assert_eq!(
                change.sequence_number.as_deref(),
                expected.change.sequence_number.as_deref()
            );
            let image = |item: &serde_dynamo::Item| (!item.is_empty()).then(|| oracle_image(item));
            assert_eq!(
                plain(&batch, change.keys.as_ref()),
                image(&expected.change.keys)
            );
            assert_eq!(
                plain(&batch, change.new_image.as_ref()),
                image(&expected.change.new_image)
            );
            assert_eq!(
                plain(&batch, change.old_image.as_ref()),
                image(&expected.change.old_image)
            );
            assert_eq!(
                read.user_identity.as_ref().map(|u| u.principal_id.as_ref()),
                expected
                    .user_identity
                    .as_ref()
                    .map(|u| u.principal_id.as_str())
            );
        }
        let first = &batch.records[0];
        assert_eq!(
            first.change.approximate_creation_date_time,
            Some(1_480_642_020.25)
        );
        assert!(is_ttl_deletion(first));
        assert_eq!(
            first.change.stream_view_type.as_deref(),
            Some("NEW_AND_OLD_IMAGES")
        );
        // The image's own text is kept for the diff.
        let old = first.change.old_image.as_ref().unwrap();
        assert!(old.raw.starts_with('{') && old.raw.ends_with('}'));
        assert_eq!(
            serde_json::from_str::<Value>(old.raw).unwrap(),
            event["Records"][0]["dynamodb"]["OldImage"]
        );
        assert_eq!(
            batch.records[1].event_id, "event-\u{0}-2",
            "escapes decoded"
        );
    }
}

#[test]
fn escaped_field_names_are_the_fields_they_spell() {
    let text = r#"{"Records":[{"event\u0049D":"a","eventName":"INSERT","dynamodb":{"Sequence\u004eumber":"7"}}]}"#;
    let batch = read_batch(text.as_bytes()).unwrap();
    assert_eq!(batch.records[0].event_id, "a");
    assert_eq!(
        batch.records[0].change.sequence_number.as_deref(),
        Some("7")
    );
}

fn error(text: &str) -> EventError {
    read_batch(text.as_bytes()).unwrap_err()
}

const GOOD: &str = r#"{"eventID":"a","eventName":"INSERT","dynamodb":{"Keys":{"k":{"S":"1"}},"SequenceNumber":"7"}}"#;

#[test]
fn text_that_is_not_json_is_refused() {
    let refused = [
        format!(r#"{{"Records":[{GOOD},]}}"#),        // trailing comma
        format!(r#"{{"Records":[{GOOD}]"#),           // unterminated
        format!(r#"{{"Records":[{GOOD}]}} x"#),       // text after
        r#"{"Records":[],"x":"\q"}"#.to_owned(),      // bad escape
        r#"{"Records":[],"x":"\u12"}"#.to_owned(),    // short \u escape
        "{\"Records\":[],\"x\":\"a\nb\"}".to_owned(), // raw newline in a string
        r#"{"Records":[],"x":01}"#.to_owned(),        // leading zero
        r#"{"Records":[],"x":1.}"#.to_owned(),        // no fraction digits
        r#"{"Records":[],"x":tru}"#.to_owned(),       // broken literal
        r#"{"Records":[],"x":{"a":1,}}"#.to_owned(),  // trailing comma, skipped part
        format!(
            r#"{{"Records":[{}]}}"#,
            GOOD.replace(r#"{"S":"1"}"#, r#"{"S":"1\x"}"#)
        ), // bad escape in an image
        format!(
            r#"{{"Records":[{}]}}"#,
            GOOD.replace(r#""1"}}"#, r#""1"},}"#)
        ), // comma in an image
    ];
    for text in &refused {
        let result = read_batch(text.as_bytes());
        assert!(result.is_err(), "accepted: {text}");
        // serde_json agrees that none of these is JSON.
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_err(),
            "{text}"
        );
    }
    let not_utf8 = read_batch(b"{\"Records\":[],\"x\":\"\xff\"}").unwrap_err();
    assert!(not_utf8.message.contains("UTF-8"), "{not_utf8}");
}

#[test]
fn hostile_nesting_is_refused_without_exhausting_the_stack() {
    let deep = |depth: usize| {
        format!(
            r#"{{"Records":[],"x":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    assert!(read_batch(deep(100).as_bytes()).is_ok());
    assert!(error(&deep(100_000)).message.contains("nested deeper"));
    // Inside an image, where the rewrite recurses: the record fails, the event is read.
    let list = |depth: usize| {
        format!(
            r#"{{"Records":[{{"eventID":"a","eventName":"INSERT","dynamodb":{{"NewImage":{{"l":{}{{"NULL":true}}{}}},"SequenceNumber":"7"}}}}]}}"#,
            r#"{"L":["#.repeat(depth),
            "]}".repeat(depth)
        )
    };
    let text = list(20);
    let batch = read_batch(text.as_bytes()).unwrap();
    assert!(
        batch.records[0]
            .change
            .new_image
            .as_ref()
            .unwrap()
            .rewritten
            .is_ok()
    );
    assert!(read_batch(list(100_000).as_bytes()).is_err());
}

#[test]
fn fields_of_the_wrong_shape_are_named() {
    let cases = [
        (
            r#"{"Records":[{"eventName":"INSERT","dynamodb":{}}]}"#,
            "Records[0].eventID",
            "missing",
        ),
        (r#"{"Records":{}}"#, "Records", "expected an array"),
        (r#"{"records":[]}"#, "Records", "missing"),
        (
            r#"{"Records":[{"eventID":1,"eventName":"INSERT","dynamodb":{}}]}"#,
            "Records[0].eventID",
            "expected a string",
        ),
        (
            r#"{"Records":[{"eventID":"a","eventName":"INSERT","dynamodb":{"SequenceNumber":7}}]}"#,
            "Records[0].dynamodb.SequenceNumber",
            "expected a string",
        ),
        (
            r#"{"Records":[{"eventID":"a","eventID":"b","eventName":"INSERT","dynamodb":{}}]}"#,
            "Records[0].eventID",
            "duplicate",
        ),
        (
            r#"{"Records":[{"eventID":"a","eventName":"INSERT","dynamodb":{"NewImage":[]}}]}"#,
            "Records[0].dynamodb.NewImage",
            "expected an object",
        ),
        (
            r#"{"Records":[{"eventID":"a","eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":"x"}}]}"#,
            "Records[0].dynamodb.ApproximateCreationDateTime",
            "expected a number",
        ),
    ];
    for (text, path, message) in cases {
        let e = error(text);
        assert_eq!(e.path, path, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
        assert!(e.to_string().contains(path), "{e}");
    }
    // Optional parts may be null or absent.
    let batch = read_batch(
        br#"{"Records":[{"eventID":"a","eventName":"INSERT","eventSourceARN":null,"userIdentity":null,"dynamodb":{"Keys":null,"ApproximateCreationDateTime":null}}]}"#,
    )
    .unwrap();
    let change = &batch.records[0].change;
    assert!(change.keys.is_none() && change.approximate_creation_date_time.is_none());
}

#[test]
fn an_image_that_is_json_but_not_dynamodb_json_fails_only_its_record() {
    let records = json!([
        {"eventID": "a", "eventName": "INSERT", "dynamodb": {"NewImage": {"qty": {"N": "lots"}}, "SequenceNumber": "1"}},
        {"eventID": "b", "eventName": "INSERT", "dynamodb": {"NewImage": {"qty": {"X": [1, {"y": 2}]}}, "SequenceNumber": "2"}},
        {"eventID": "c", "eventName": "INSERT", "dynamodb": {"NewImage": {"qty": {"N": "3"}}, "SequenceNumber": "3"}},
    ]);
    let text = json!({"Records": records}).to_string();
    let batch = read_batch(text.as_bytes()).unwrap();
    let rewritten: Vec<_> = batch
        .records
        .iter()
        .map(|r| r.change.new_image.as_ref().unwrap().rewritten.clone())
        .collect();
    let first = rewritten[0].clone().unwrap_err();
    assert_eq!(
        (first.path.as_str(), first.message.contains("lots")),
        ("qty", true)
    );
    assert_eq!(rewritten[1].clone().unwrap_err().path, "qty");
    assert_eq!(
        plain(&batch, batch.records[2].change.new_image.as_ref()),
        Some(json!({"qty": 3}))
    );
    // A failed image leaves nothing of itself in the batch's buffer.
    assert_eq!(batch.rewritten.plain, br#"{"qty":3}"#);
}

#[test]
fn damaged_events_never_panic_and_nothing_that_is_not_json_is_accepted() {
    // Every single-byte damage (deleted, replaced, inserted) of a real event, at every
    // position: the reader may refuse what serde_json accepts (a field of the wrong type), but
    // never the other way round, and never panics.
    let event = lambda_event();
    let text = event.to_string();
    let bytes = text.as_bytes();
    let replacements: &[u8] = b"{}[]\",:\\ 0-+.eEtfnu\x01\n\xc3\xff";
    let mut rng = fastrand::Rng::with_seed(20);
    let mut checked = 0;
    for at in 0..bytes.len() {
        let replacement = replacements[rng.usize(..replacements.len())];
        let deleted = [&bytes[..at], &bytes[at + 1..]].concat();
        let replaced = [&bytes[..at], &[replacement], &bytes[at + 1..]].concat();
        let inserted = [&bytes[..at], &[replacement], &bytes[at..]].concat();
        for damaged in [deleted, replaced, inserted] {
            if read_batch(&damaged).is_ok() {
                assert!(
                    serde_json::from_slice::<serde::de::IgnoredAny>(&damaged).is_ok(),
                    "accepted text that is not JSON: {}",
                    String::from_utf8_lossy(&damaged)
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, bytes.len() * 3);
}
