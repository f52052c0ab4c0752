//! The request contract: validation, placeholders, numbers, keys, the original updater's bodies.

use super::*;
use crate::{KeyAttribute, KeyKind, KeySchema, UpdateError, request, success_body, updater};
use aws_sdk_dynamodb::types::AttributeValue as Av;

fn users() -> KeySchema {
    KeySchema {
        partition: KeyAttribute {
            name: "id".into(),
            kind: KeyKind::S,
        },
        sort: None,
    }
}

fn orders() -> KeySchema {
    KeySchema {
        partition: KeyAttribute {
            name: "customer".into(),
            kind: KeyKind::S,
        },
        sort: Some(KeyAttribute {
            name: "order_no".into(),
            kind: KeyKind::N,
        }),
    }
}

fn error(body: &str, schema: &KeySchema) -> UpdateError {
    plan(body, schema, false, None).unwrap_err()
}

#[test]
fn the_original_example_becomes_one_placeholder_per_name_and_value() {
    let p = plan(
        r#"{"id":"user-123","attributes":{"name":"John Doe","email":"john@example.com","status":"active"},"enable_logging":true}"#,
        &users(),
        false,
        None,
    )
    .unwrap();
    assert_eq!(p.record_id, "user-123");
    assert_eq!(p.key["id"], Av::S("user-123".into()));
    assert_eq!(p.update_expression, "SET #u0 = :u0, #u1 = :u1, #u2 = :u2");
    assert_eq!(p.condition_expression, "attribute_exists(#k)");
    assert_eq!(
        p.names["#u2"], "status",
        "a reserved word, through a placeholder"
    );
    assert_eq!(p.values[":u1"], Av::S("john@example.com".into()));
    assert_eq!(
        p.updated_names(),
        ["name", "email", "status"],
        "request order"
    );
    assert!(p.audit, "enable_logging: true");
    let body = success_body(&p.record_id, &p.updated_names(), "2026-11-22T10:00:00.000Z");
    assert_eq!(
        body,
        serde_json::json!({"success": true, "message": "Record updated successfully",
            "updated_id": "user-123", "updated_attributes": ["name", "email", "status"],
            "timestamp": "2026-11-22T10:00:00.000Z"})
    );
}

#[test]
fn odd_names_numbers_and_nesting_survive() {
    let p = plan(
        r#"{"id":"u","attributes":{"a.b":1,"with-dash":2,"with space":3,"größe":"XL","1st":true,
            "total":12345678901234567890123456789012345678,
            "address":{"lines":["221B",{"floor":-0.5e-3}],"city":null}}}"#,
        &users(),
        false,
        None,
    )
    .unwrap();
    let names: Vec<&str> = p.updated_names();
    assert_eq!(
        names,
        [
            "a.b",
            "with-dash",
            "with space",
            "größe",
            "1st",
            "total",
            "address"
        ]
    );
    for name in names {
        assert!(
            !p.update_expression.contains(name),
            "{}",
            p.update_expression
        );
    }
    assert_eq!(
        p.values[":u5"],
        Av::N("12345678901234567890123456789012345678".into())
    );
    let Av::M(address) = &p.values[":u6"] else {
        panic!()
    };
    assert_eq!(address["city"], Av::Null(true));
    assert_eq!(
        address["lines"],
        Av::L(vec![
            Av::S("221B".into()),
            Av::M([("floor".to_owned(), Av::N("-0.5e-3".into()))].into())
        ])
    );
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let e = error(r#"{}"#, &users());
    assert_eq!(e.error_type(), "InvalidInputError");
    assert_eq!(e.status(), 400);
    let body = e.body("t");
    assert_eq!(body["message"], "ID and attributes are required");
    assert_eq!(
        body["details"]["missing_fields"],
        serde_json::json!(["id", "attributes"])
    );

    let e = error(r#"{"id":"u"}"#, &users());
    assert_eq!(
        e.body("t")["details"]["missing_fields"],
        serde_json::json!(["attributes"])
    );
    let e = error(r#"{"id":"c","attributes":{"a":1}}"#, &orders());
    assert_eq!(
        e.body("t")["details"]["missing_fields"],
        serde_json::json!(["sort_key"])
    );

    for (body, field) in [
        (r#"{"id":7,"attributes":{"a":1}}"#, "id"),
        (r#"{"id":"u","attributes":[1]}"#, "attributes"),
        (
            r#"{"id":"u","attributes":{"a":1},"enable_logging":"yes"}"#,
            "enable_logging",
        ),
        (
            r#"{"id":"u","attributes":{"a":1},"condition_expression":5}"#,
            "condition_expression",
        ),
        ("[1,2]", "body"),
        ("{not json", "body"),
    ] {
        let e = error(body, &users());
        assert_eq!(e.error_type(), "InvalidInputError", "{body}");
        assert_eq!(e.body("t")["details"]["field"], field, "{body}");
    }
}

#[test]
fn limits_keys_and_conditions_are_validation_errors() {
    for (body, field, says) in [
        (
            r#"{"id":"u","attributes":{}}"#,
            "attributes",
            "at least one",
        ),
        (
            r#"{"id":"u","attributes":{"id":"other"}}"#,
            "attributes.id",
            "key",
        ),
        (r#"{"id":"","attributes":{"a":1}}"#, "id", "empty"),
        (
            r#"{"id":"u","attributes":{"a":1,"a":2}}"#,
            "attributes.a",
            "twice",
        ),
        (
            r#"{"id":"u","attributes":{"n":1e200}}"#,
            "attributes.n",
            "range",
        ),
        (
            r#"{"id":"u","attributes":{"n":123456789012345678901234567890123456789}}"#,
            "attributes.n",
            "38",
        ),
        (
            r#"{"id":"u","attributes":{"a":1},"condition_expression":"a = "}"#,
            "condition_expression",
            "position 4",
        ),
        (
            r#"{"id":"u","attributes":{"a":1},"idempotency_key":"has space"}"#,
            "idempotency_key",
            "36",
        ),
    ] {
        let e = error(body, &users());
        assert_eq!(e.error_type(), "ValidationError", "{body}: {e}");
        assert_eq!(e.body("t")["details"]["field"], field, "{body}");
        assert!(e.to_string().contains(says), "{body}: {e}");
    }
    let long_id = format!(r#"{{"id":"{}","attributes":{{"a":1}}}}"#, "x".repeat(2049));
    assert!(error(&long_id, &users()).to_string().contains("2048"));
    let big = format!(
        r#"{{"id":"u","attributes":{{"a":"{}"}}}}"#,
        "x".repeat(410_000)
    );
    assert!(error(&big, &users()).to_string().contains("at most 409600"));
    let e = error(
        r#"{"id":"c","sort_key":"x","attributes":{"a":1}}"#,
        &orders(),
    );
    assert!(e.to_string().contains("sort_key"), "{e}");
}

#[test]
fn the_sort_key_and_the_callers_condition_join_the_update() {
    let p = plan(
        r#"{"id":"c-1","sort_key":42,"attributes":{"state":"SHIPPED"},
            "condition_expression":"state = 'PACKED' AND attribute_not_exists(cancelled)",
            "idempotency_key":"retry-1"}"#,
        &orders(),
        true,
        Some("header-key"),
    )
    .unwrap();
    assert_eq!(p.key["order_no"], Av::N("42".into()));
    assert_eq!(
        p.condition_expression,
        "attribute_exists(#k) AND (#c0 = :c0 AND attribute_not_exists(#c1))"
    );
    assert_eq!(p.names["#c0"], "state");
    assert_eq!(p.values[":c0"], Av::S("PACKED".into()));
    assert!(
        p.audit,
        "ENABLE_AUDIT_LOG applies when the request does not say"
    );
    assert_eq!(
        p.idempotency_key.as_deref(),
        Some("retry-1"),
        "the body wins over the header"
    );
    let p = plan(
        r#"{"id":"c","sort_key":"7","attributes":{"a":1}}"#,
        &orders(),
        true,
        Some("h-1"),
    )
    .unwrap();
    assert_eq!(p.idempotency_key.as_deref(), Some("h-1"));
    let opt_out = r#"{"id":"c","sort_key":"7","attributes":{"a":1},"enable_logging":false}"#;
    let p = plan(opt_out, &orders(), true, None).unwrap();
    assert!(
        p.audit,
        "with ENABLE_AUDIT_LOG=true a request cannot switch auditing off"
    );
    let allowed = request::AuditPolicy {
        by_default: true,
        requests_may_opt_out: true,
    };
    assert!(!plan(opt_out, &orders(), allowed, None).unwrap().audit);
    let opt_in = r#"{"id":"c","sort_key":"7","attributes":{"a":1},"enable_logging":true}"#;
    assert!(plan(opt_in, &orders(), false, None).unwrap().audit);
    assert!(!plan(opt_out, &orders(), false, None).unwrap().audit);
}

#[test]
fn the_fingerprint_of_a_request_does_not_depend_on_map_order() {
    // Each plan builds its maps afresh, with a new random iteration order.
    let body = r#"{"id":"u","attributes":{"profile":{"a":1,"b":"two","c":[1,{"x":1,"y":2,"z":3}],"d":true,"e":null,"f":{"g":1,"h":2}},"tags":{"k1":"v1","k2":"v2","k3":"v3","k4":"v4"}},"condition_expression":"a = 1 AND b = 2 AND c = 3 AND d = 4"}"#;
    let fingerprints: std::collections::BTreeSet<String> = (0..20)
        .map(|_| updater::fingerprint("users", &plan(body, &users(), true, None).unwrap()))
        .collect();
    assert_eq!(fingerprints.len(), 1, "{fingerprints:?}");
    let other = r#"{"id":"u","attributes":{"profile":{"a":1,"b":"two","c":[1,{"x":1,"y":2,"z":4}],"d":true,"e":null,"f":{"g":1,"h":2}},"tags":{"k1":"v1","k2":"v2","k3":"v3","k4":"v4"}},"condition_expression":"a = 1 AND b = 2 AND c = 3 AND d = 4"}"#;
    assert!(
        !fingerprints.contains(&updater::fingerprint(
            "users",
            &plan(other, &users(), true, None).unwrap()
        )),
        "a different nested value is a different request"
    );
    let exact = |n: &str| {
        updater::fingerprint(
            "users",
            &plan(
                &format!(r#"{{"id":"u","attributes":{{"n":{n}}}}}"#),
                &users(),
                true,
                None,
            )
            .unwrap(),
        )
    };
    assert_ne!(
        exact("123456789012345678901234567890"),
        exact("123456789012345678901234567891"),
        "numbers are compared with every digit"
    );
}

#[test]
fn expressions_dynamodb_would_refuse_are_400s_before_sending() {
    // 19 IN lists of 100 one-digit values: under 4 KB as written, ~14 KB once every value
    // has its placeholder.
    let list = vec!["1"; 100].join(",");
    let condition = vec![format!("a IN ({list})"); 19].join(" OR ");
    assert!(condition.len() < 4096, "{}", condition.len());
    let body =
        serde_json::json!({"id": "u", "attributes": {"a": 1}, "condition_expression": condition});
    let e = error(&body.to_string(), &users());
    assert_eq!(e.status(), 400);
    assert_eq!(e.body("t")["details"]["field"], "condition_expression");
    assert!(e.to_string().contains("at most 4096"), "{e}");
    for (condition, says) in [
        (
            "attribute_type(a, 'NOT_A_TYPE')",
            "attribute_type takes one of",
        ),
        ("attribute_type(a, 5)", "type name in quotes"),
        ("begins_with(a, 5)", "not a number"),
        ("begins_with(a, true)", "not a boolean"),
    ] {
        let body = serde_json::json!({"id": "u", "attributes": {"a": 1}, "condition_expression": condition});
        let e = error(&body.to_string(), &users());
        assert_eq!(e.body("t")["details"]["field"], "condition_expression");
        assert!(e.to_string().contains(says), "{condition}: {e}");
    }
    let deep = format!("attribute_exists(a{})", ".b".repeat(40));
    let body = serde_json::json!({"id": "u", "attributes": {"a": 1}, "condition_expression": deep});
    assert!(
        error(&body.to_string(), &users())
            .to_string()
            .contains("32 levels")
    );
    let ok = format!("attribute_exists(a{})", ".b".repeat(32));
    let body = serde_json::json!({"id": "u", "attributes": {"a": 1}, "condition_expression": ok});
    assert!(plan(&body.to_string(), &users(), false, None).is_ok());
    let body = serde_json::json!({"id": "u", "attributes": {"a": 1}, "condition_expression": "attribute_type(a, 'M') AND begins_with(b, 'x') AND begins_with(b, c)"});
    assert!(plan(&body.to_string(), &users(), false, None).is_ok());
}
