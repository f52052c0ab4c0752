//! The audit-event service: audit-api as a real server on the throwaway PostgreSQL, exercised
//! over HTTP as the original FastAPI service's clients would.

/// Where audit-api publishes its chains' heads (the evidence bucket's prefix the digests cover).
pub const CHAIN_HEADS_PREFIX: &str = "audit-api/chain-heads/";

/// The original service's audit-event service: `audit-api serve` on the local PostgreSQL, driven over
/// HTTP as its clients do; then its hash chains: published into `evidence_bucket`, verified,
/// and verified again on a tampered copy of the database.
pub async fn audit_event_service(
    aws: &devstack::AwsEnv,
    evidence_bucket: &str,
) -> Result<(), String> {
    println!("\n== Audit-event service: audit-api\n");
    const KEY: &str = "demo-api-key-0123456789";
    let mut env: Vec<(String, String)> = aws.vars();
    env.push(("CHAIN_ANCHOR_BUCKET".into(), evidence_bucket.into()));
    env.push(("CHAIN_ANCHOR_PREFIX".into(), CHAIN_HEADS_PREFIX.into()));
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = devstack::audit_api::AuditApiServer::start(KEY, &extra)?;
    let base = server.base_url.clone();
    println!(
        "  $ audit-api serve --bind {}  (database {}, API_KEYS={KEY})",
        &base[7..base.len() - 8],
        server.database
    );
    println!("  docs: {base}/docs   OpenAPI: {base}/openapi.json\n");
    let http = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request
            .header("CSIQ-APIKEY", KEY)
            .send()
            .await
            .map_err(|e| format!("audit-api: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, headers, body))
    };
    // The original service's example event, timestamped now (the original service's 2025 date is past retention).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let example = serde_json::json!({
        "event_timestamp": rfc3339(now),
        "functionality": "Authenticate", "event_type": "Login",
        "store_id": 101, "company_id": 5001, "user": "jdoe",
        "message": "User logged in successfully", "status": "Success",
        "additional_data": {"ip": "192.168.1.10", "browser": "Chrome"}
    });
    let (status, _, body) = send(
        http.post(format!("{base}/api/audit-events/create"))
            .header("content-type", "application/json")
            .body(example.to_string()),
    )
    .await?;
    println!(
        "  POST /api/audit-events/create (the original service's example) -> {status}\n    {}",
        String::from_utf8_lossy(&body)
    );
    let batch: Vec<serde_json::Value> = (0..1000u64)
        .map(|i| {
            let event_type = [
                "Item updated",
                "Item updates picked up by publisher",
                "Item updates pushed to rabbit MQ",
                "Item updates acknowledgement received",
            ][(i % 4) as usize];
            serde_json::json!({
                "event_timestamp": rfc3339(now - 1 - i * 60),
                "functionality": "Price Management",
                "event_type": event_type,
                "store_id": 100 + i % 10, "company_id": 5001, "user": format!("pricer{}", i % 5),
                "message": format!("SKU-{:05} price changed to {}.99 (100% of list)", i, 10 + i % 90),
                "status": if i % 25 == 0 { "Failed" } else { "Success" },
            })
        })
        .collect();
    let (status, _, body) = send(
        http.post(format!("{base}/api/audit-events/create-batch"))
            .header("content-type", "application/json")
            .body(serde_json::Value::from(batch).to_string()),
    )
    .await?;
    let created = serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())?;
    println!(
        "  POST /api/audit-events/create-batch (1,000 events, all or nothing) -> {status}, created {}",
        created["created"]
    );
    let (invalid, _, body) = send(
        http.post(format!("{base}/api/audit-events/create"))
            .header("content-type", "application/json")
            .body(r#"{"functionality": "Authenticate", "event_type": "Login", "status": "Done", "user": "a-name-longer-than-twenty"}"#),
    )
    .await?;
    println!(
        "  POST an invalid event -> {invalid}\n    {}",
        String::from_utf8_lossy(&body)
    );
    let query = "functionality=Price%20Management&store_id=103&message_pattern=100%25&page_size=20";
    let (status, headers, body) =
        send(http.get(format!("{base}/api/audit-events/search?{query}"))).await?;
    let page = serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "  GET /api/audit-events/search?{query} -> {status}: {} events, X-Has-More: {}, X-Next-Cursor: {}",
        page.as_array().map_or(0, Vec::len),
        header("x-has-more"),
        header("x-next-cursor")
    );
    if let Some(first) = page.get(0) {
        println!(
            "    newest: {} {} {}",
            first["event_timestamp"], first["user"], first["message"]
        );
    }
    let cursor = header("x-next-cursor");
    let (status, _, body) = send(http.get(format!(
        "{base}/api/audit-events/search?{query}&cursor={cursor}"
    )))
    .await?;
    let next = serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())?;
    println!(
        "  ... next page by cursor -> {status}: {} events",
        next.as_array().map_or(0, Vec::len)
    );
    let (status, headers, body) = send(http.get(format!(
        "{base}/api/audit-events/export?functionality=Price%20Management"
    )))
    .await?;
    if !status.is_success() {
        return Err(format!(
            "export failed: {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let path = devstack::scratch_dir("audit-api-export")?.join("audit_events.xlsx");
    std::fs::write(&path, &body).map_err(|e| e.to_string())?;
    let rows = headers
        .get("x-export-rows")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    println!("  GET /api/audit-events/export?functionality=Price%20Management -> {status}");
    println!(
        "    {} ({} bytes, {rows} event rows plus a header row)",
        path.display(),
        body.len()
    );
    let (status, _, _) = send(http.get(format!("{base}/api/healthcheck"))).await?;
    println!("  GET /api/healthcheck -> {status}");

    println!("\n  Every event is a link of its company's hash chain:");
    let url = format!(
        "{}?sslmode=disable",
        devstack::postgres().url(&server.database)
    );
    let mut cli_env = env.clone();
    cli_env.push(("API_KEYS".into(), KEY.into()));
    // The CLI's warning about the unencrypted local session is noise here.
    cli_env.push(("LOG_LEVEL".into(), "error".into()));
    let binary = devstack::function_binary("audit-api")?;
    let run = |database_url: &str, args: &[&str], expected: i32| {
        let mut envs = cli_env.clone();
        envs.push(("DATABASE_URL".into(), database_url.into()));
        crate::run_printed("audit-api", &binary, args, &envs, expected)
    };
    // The hourly maintenance run publishes every chain's head into the evidence bucket.
    run(&url, &["maintain"], 0)?;
    let (status, _, body) =
        send(http.get(format!("{base}/api/audit-events/verify?company_id=5001"))).await?;
    println!(
        "\n  GET /api/audit-events/verify?company_id=5001 -> {status}\n    {}",
        String::from_utf8_lossy(&body)
    );
    run(&url, &["verify"], 0)?;

    // A copy of the database, edited as the superuser: one message rewritten.
    let pg = devstack::postgres();
    pg.psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
            server.database
        ),
    )?;
    let copy = format!("{}_tampered", server.database);
    pg.psql(
        "postgres",
        &format!("CREATE DATABASE {copy} TEMPLATE {}", server.database),
    )?;
    let edit = "UPDATE auditevents SET message = 'SKU-00499 price unchanged' \
                WHERE companyid = 5001 AND chain_seq = 500";
    pg.psql(&copy, edit)?;
    println!("\n  A tampered copy ({copy}), as the superuser:\n  $ psql -c \"{edit}\"");
    run(
        &format!("{}?sslmode=disable", pg.url(&copy)),
        &["verify", "--company", "5001"],
        1,
    )?;
    Ok(())
}

/// `secs` seconds since the epoch, RFC 3339 UTC.
fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
