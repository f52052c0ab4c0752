//! Safe record updates: table-updater updates the original updater's user record, refuses a
//! failed condition (412), a missing record (404) and an invalid payload (400), answers a
//! retried request once; then the audit log those requests left.

use devstack::{LocalLambda, function_binary};
use serde_json::json;

/// The original updater's example, and the answers a caller can get.
pub async fn safe_record_updates(aws: &devstack::AwsEnv) -> Result<(), String> {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    println!("\n== Safe record updates: table-updater\n");
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let db = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    for (table, key) in [("users", "id"), ("audit_logs", "log_id")] {
        devstack::AwsEnv::create_table(&db, table, key, None).await?;
    }
    db.put_item()
        .table_name("users")
        .item("id", Av::S("user-123".into()))
        .item("name", Av::S("Jane Roe".into()))
        .item("status", Av::S("pending".into()))
        .send()
        .await
        .map_err(|x| e(&x))?;
    println!(
        "  tables users (user-123: Jane Roe, pending) and audit_logs; ENABLE_AUDIT_LOG=false as in the original updater\n"
    );
    let updater = LocalLambda::builder(function_binary("table-updater")?)
        .envs(aws.vars())
        .env("TABLE_NAME", "users")
        .env("ENABLE_AUDIT_LOG", "false")
        .start()
        .await?;
    let requests = [
        (
            "the original updater's update, with enable_logging",
            json!({"id": "user-123", "attributes": {"name": "John Doe", "email": "john@example.com", "status": "active"}, "enable_logging": true}),
        ),
        (
            "a condition that does not hold",
            json!({"id": "user-123", "attributes": {"status": "closed"}, "condition_expression": "status = 'suspended'", "enable_logging": true}),
        ),
        (
            "a record that does not exist",
            json!({"id": "user-999", "attributes": {"status": "active"}, "enable_logging": true}),
        ),
        ("an invalid payload", json!({"id": "user-123"})),
        (
            "an update with an idempotency key",
            json!({"id": "user-123", "attributes": {"plan": "pro"}, "enable_logging": true, "idempotency_key": "req-42"}),
        ),
        (
            "the same request again (a client retry)",
            json!({"id": "user-123", "attributes": {"plan": "pro"}, "enable_logging": true, "idempotency_key": "req-42"}),
        ),
    ];
    for (what, request) in requests {
        let answer = updater.invoke(&request).await.map_err(|x| x.to_string())?;
        let outcome = if answer["success"] == true {
            format!("success, updated {}", answer["updated_attributes"])
        } else {
            format!(
                "{}: {}",
                answer["error"].as_str().unwrap_or("?"),
                answer["message"].as_str().unwrap_or("")
            )
        };
        println!("  {what:<42} -> {outcome}");
    }
    let item = db
        .get_item()
        .table_name("users")
        .key("id", Av::S("user-123".into()))
        .send()
        .await
        .map_err(|x| e(&x))?
        .item
        .unwrap_or_default();
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    println!(
        "\n  user-123 now: name {}, email {}, status {}, plan {}",
        text("name"),
        text("email"),
        text("status"),
        text("plan")
    );

    let mut records = db
        .scan()
        .table_name("audit_logs")
        .send()
        .await
        .map_err(|x| e(&x))?
        .items
        .unwrap_or_default();
    let field = |r: &std::collections::HashMap<String, Av>, name: &str| {
        r.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| "-".into())
    };
    records.sort_by_key(|r| field(r, "timestamp"));
    let for_key = records
        .iter()
        .filter(|r| field(r, "idempotency_key") == "req-42")
        .count();
    println!(
        "\nThe audit log ({} records; {for_key} for idempotency key req-42, sent twice):",
        records.len()
    );
    println!(
        "  {:<25} {:<8} {:<23} {:<9} attributes",
        "timestamp", "status", "error", "record"
    );
    for r in &records {
        let mut names: Vec<String> = r
            .get("updated_attributes")
            .and_then(|v| v.as_m().ok())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        println!(
            "  {:<25} {:<8} {:<23} {:<9} {}",
            field(r, "timestamp"),
            field(r, "status"),
            field(r, "error"),
            field(r, "record_id"),
            names.join(", ")
        );
    }
    if for_key != 1 {
        return Err(format!(
            "the retried request left {for_key} audit records, not one"
        ));
    }
    Ok(())
}
