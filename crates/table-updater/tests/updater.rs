//! The real binary under the local Lambda Runtime API, against DynamoDB in moto: updates with and
//! without an audit record, 404 against 412, atomicity, idempotent retries, exact values, and
//! each front end's shape.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_dynamodb::types::AttributeValue as Av;
use devstack::{AwsEnv, LocalLambda};
use serde_json::{Value, json};

struct Stack {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    audit_table: String,
    aws: AwsEnv,
}

async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    AwsEnv::create_table(dynamodb, name, key, None)
        .await
        .unwrap();
}

impl Stack {
    async fn new() -> Stack {
        let aws = devstack::moto().isolated();
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
        let table = devstack::unique_name("users");
        let audit_table = devstack::unique_name("audit_logs");
        create_table(&dynamodb, &table, "id").await;
        create_table(&dynamodb, &audit_table, "log_id").await;
        dynamodb
            .put_item()
            .table_name(&table)
            .item("id", Av::S("user-123".into()))
            .item("name", Av::S("Jane Roe".into()))
            .item("status", Av::S("active".into()))
            .send()
            .await
            .unwrap();
        Stack {
            dynamodb,
            table,
            audit_table,
            aws,
        }
    }

    async fn function(&self, audit_by_default: bool) -> LocalLambda {
        LocalLambda::builder(devstack::function_binary("table-updater").unwrap())
            .envs(self.aws.vars())
            .env("TABLE_NAME", &self.table)
            .env("AUDIT_LOG_TABLE", &self.audit_table)
            .env(
                "ENABLE_AUDIT_LOG",
                if audit_by_default { "true" } else { "false" },
            )
            .start()
            .await
            .unwrap()
    }

    async fn item(&self, id: &str) -> Option<std::collections::HashMap<String, Av>> {
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key("id", Av::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    async fn audit_records(&self) -> Vec<std::collections::HashMap<String, Av>> {
        self.dynamodb
            .scan()
            .table_name(&self.audit_table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }
}

fn s(item: &std::collections::HashMap<String, Av>, name: &str) -> String {
    item[name].as_s().unwrap().clone()
}

#[tokio::test]
async fn updates_with_and_without_the_audit_record() {
    let stack = Stack::new().await;
    let function = stack.function(false).await;

    // The original updater's example, audit off: updated, no audit record.
    let body = function
        .invoke(&json!({"id": "user-123", "attributes": {"name": "John Doe", "email": "john@example.com", "status": "active"}}))
        .await
        .unwrap();
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["updated_id"], "user-123");
    assert_eq!(
        body["updated_attributes"],
        json!(["name", "email", "status"])
    );
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let item = stack.item("user-123").await.unwrap();
    assert_eq!(s(&item, "name"), "John Doe");
    assert!(stack.audit_records().await.is_empty(), "audit is off");

    // enable_logging: the audit record is written with the update.
    let body = function
        .invoke(&json!({"id": "user-123", "attributes": {"status": "suspended"}, "enable_logging": true}))
        .await
        .unwrap();
    assert_eq!(body["success"], true, "{body}");
    let records = stack.audit_records().await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(s(record, "status"), "success");
    assert_eq!(s(record, "record_id"), "user-123");
    assert_eq!(s(record, "table_name"), stack.table);
    assert_eq!(s(record, "user_agent"), "lambda-function");
    assert_eq!(s(record, "timestamp"), body["timestamp"].as_str().unwrap());
    assert_eq!(
        record["updated_attributes"].as_m().unwrap()["status"],
        Av::S("suspended".into())
    );
}

#[tokio::test]
async fn a_missing_record_is_404_a_failed_condition_412_and_neither_changes_anything() {
    let stack = Stack::new().await;
    let function = stack.function(true).await;

    let body = function
        .invoke(&json!({"id": "nobody", "attributes": {"status": "active"}}))
        .await
        .unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "RecordNotFoundError");
    assert!(
        stack.item("nobody").await.is_none(),
        "an update never creates an item"
    );

    let body = function
        .invoke(
            &json!({"id": "user-123", "attributes": {"status": "closed", "name": "X"},
            "condition_expression": "status = 'suspended'"}),
        )
        .await
        .unwrap();
    assert_eq!(body["error"], "ConditionalCheckFailed", "{body}");
    let item = stack.item("user-123").await.unwrap();
    assert_eq!(
        (s(&item, "status"), s(&item, "name")),
        ("active".into(), "Jane Roe".into())
    );

    // Both failures left a failed audit record; no success record exists (atomicity).
    let records = stack.audit_records().await;
    let mut errors: Vec<String> = records.iter().map(|r| s(r, "error")).collect();
    errors.sort();
    assert_eq!(errors, ["ConditionalCheckFailed", "RecordNotFoundError"]);
    assert!(records.iter().all(|r| s(r, "status") == "failed"));
    let failed_condition = records
        .iter()
        .find(|r| s(r, "error") == "ConditionalCheckFailed")
        .unwrap();
    assert_eq!(
        failed_condition["previous_values"].as_m().unwrap()["status"],
        Av::S("active".into()),
        "the values the caller would have replaced"
    );
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_not_applied_twice() {
    let stack = Stack::new().await;
    let function = stack.function(true).await;
    let request =
        json!({"id": "user-123", "attributes": {"status": "vip"}, "idempotency_key": "order-7f3a"});
    assert_eq!(function.invoke(&request).await.unwrap()["success"], true);

    // Someone else changes the record; then the client retries its request.
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.table)
        .key("id", Av::S("user-123".into()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", Av::S("banned".into()))
        .send()
        .await
        .unwrap();
    let retry = function.invoke(&request).await.unwrap();
    assert_eq!(
        retry["success"], true,
        "a retry answers as the first attempt did: {retry}"
    );
    assert_eq!(
        s(&stack.item("user-123").await.unwrap(), "status"),
        "banned",
        "not applied again"
    );
    let records = stack.audit_records().await;
    assert_eq!(records.len(), 1, "one audit record for one update");

    // The same key for a different request is refused, and changes nothing.
    let other = json!({"id": "user-123", "attributes": {"status": "gold"}, "idempotency_key": "order-7f3a"});
    let body = function.invoke(&other).await.unwrap();
    assert_eq!(body["error"], "ValidationError", "{body}");
    assert_eq!(
        s(&stack.item("user-123").await.unwrap(), "status"),
        "banned"
    );
}

/// A retry that comes after DynamoDB's 10-minute token window, of a conditional update that
/// was applied, finds the caller's condition false now (the update made it so). The stored
/// audit record of the key decides first: a replay, not a 412 with a false failure record.
#[tokio::test]
async fn a_late_retry_of_an_applied_conditional_update_is_a_replay() {
    let stack = Stack::new().await;
    let function = stack.function(true).await;
    let request = json!({"id": "user-123", "attributes": {"status": "vip"},
        "condition_expression": "status = 'active'", "idempotency_key": "upgrade-91"});
    let first = function.invoke(&request).await.unwrap();
    assert_eq!(first["success"], true, "{first}");
    let retry = function.invoke(&request).await.unwrap();
    assert_eq!(retry["success"], true, "{retry}");
    let records = stack.audit_records().await;
    assert_eq!(records.len(), 1, "no failure record: {records:?}");
    assert_eq!(s(&records[0], "status"), "success");
    // A request whose condition really fails still gets its 412.
    let other = json!({"id": "user-123", "attributes": {"status": "gold"},
        "condition_expression": "status = 'active'", "idempotency_key": "upgrade-92"});
    let body = function.invoke(&other).await.unwrap();
    assert_eq!(body["error"], "ConditionalCheckFailed", "{body}");
}

#[tokio::test]
async fn odd_names_38_digit_numbers_and_nesting_are_stored_exactly() {
    let stack = Stack::new().await;
    let function = stack.function(false).await;
    // Sent as text so the 38-digit number reaches the function as written.
    let payload = r#"{"id":"user-123","attributes":{"size":"XL","a.b":1,"with-dash":true,"with space":null,"größe":"M",
        "balance":12345678901234567890123456789012345678,"profile":{"tags":["a",2,{"deep":[1.5]}]}}}"#;
    let response = function
        .invoke_raw(payload.as_bytes().to_vec())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(body["success"], true, "{body}");
    let item = stack.item("user-123").await.unwrap();
    assert_eq!(
        item["balance"],
        Av::N("12345678901234567890123456789012345678".into())
    );
    assert_eq!(item["size"], Av::S("XL".into()), "a reserved word");
    assert_eq!(item["a.b"], Av::N("1".into()));
    assert_eq!(item["with-dash"], Av::Bool(true));
    assert_eq!(item["with space"], Av::Null(true));
    assert_eq!(item["größe"], Av::S("M".into()));
    let tags = item["profile"].as_m().unwrap()["tags"].as_l().unwrap();
    assert_eq!(tags[1], Av::N("2".into()));
    assert_eq!(
        tags[2].as_m().unwrap()["deep"],
        Av::L(vec![Av::N("1.5".into())])
    );
}

#[tokio::test]
async fn each_front_end_gets_its_own_shape() {
    let stack = Stack::new().await;
    let function = stack.function(false).await;
    let update = json!({"id": "user-123", "attributes": {"status": "away"}}).to_string();

    let rest = function
        .invoke(&json!({"httpMethod": "POST", "path": "/users", "requestContext": {"stage": "prod"},
            "headers": {"Content-Type": "application/json"}, "body": update, "isBase64Encoded": false}))
        .await
        .unwrap();
    assert_eq!(rest["statusCode"], 200);
    let body: Value = serde_json::from_str(rest["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["success"], true);

    let url = function
        .invoke(&json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}},
            "headers": {"content-type": "application/json"},
            "body": json!({"id": "ghost", "attributes": {"a": 1}}).to_string(), "isBase64Encoded": false}))
        .await
        .unwrap();
    assert_eq!(url["statusCode"], 404);
    let body: Value = serde_json::from_str(url["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "RecordNotFoundError");

    let bad = function
        .invoke(&json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": "{\"id\": 5}"}))
        .await
        .unwrap();
    assert_eq!(bad["statusCode"], 400);
    let body: Value = serde_json::from_str(bad["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "InvalidInputError");
    assert_eq!(body["details"]["missing_fields"], json!(["attributes"]));

    // Direct invocation: the original updater's body itself.
    let direct = function
        .invoke(&json!({"attributes": {"a": 1}}))
        .await
        .unwrap();
    assert_eq!(direct["error"], "InvalidInputError");
    assert_eq!(direct["message"], "id is required");
}

#[tokio::test]
async fn a_table_that_cannot_be_described_stops_the_cold_start_naming_table_name() {
    let aws = devstack::moto().isolated();
    let started = LocalLambda::builder(devstack::function_binary("table-updater").unwrap())
        .envs(aws.vars())
        .env("TABLE_NAME", "no-such-table")
        .start()
        .await
        .unwrap();
    let error = started.invoke(&json!({})).await.unwrap_err().to_string();
    assert!(error.contains("TABLE_NAME"), "{error}");
}
