//! What an attacker or a careless client found: slow clients holding connections, formulas in
//! CSV exports, forged cursors, numbers altered on the way to the database, partitions running
//! out under a long-lived server, exports that wrote before refusing. Each test drives the
//! real router and server loop over real HTTP against devstack's PostgreSQL.

mod common;

use chrono::Utc;
use common::{KEY, Service, events};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CREATE: &str = "/api/audit-events/create";
const BATCH: &str = "/api/audit-events/create-batch";

/// Connects to the service's socket.
async fn socket(svc: &Service) -> TcpStream {
    let address = svc
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("address")
        .to_owned();
    TcpStream::connect(address).await.expect("connect")
}

/// Reads until the peer closes (or `limit` passes): what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    let svc = Service::start(&[
        ("HEADER_READ_TIMEOUT_MS", "2000"),
        ("BODY_TIMEOUT_MS", "300"),
        ("MAX_CONNECTIONS", "2"),
    ])
    .await;

    // Headers that never finish: the server closes the connection without an answer.
    let mut partial = socket(&svc).await;
    partial
        .write_all(b"GET /audit HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .expect("write");
    let closed = read_until_closed(&mut partial, Duration::from_secs(20)).await;
    assert!(
        closed.is_some(),
        "a connection with partial headers stayed open"
    );

    // A body announced and never sent: 408, and the connection is released.
    let mut slow_body = socket(&svc).await;
    let path = format!("{}{CREATE}", svc.config.base_path);
    slow_body
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nCSIQ-APIKEY: {KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"fun"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut slow_body, Duration::from_secs(20))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("Request body not received within 300 ms"),
        "{answer}"
    );
    assert_eq!(svc.count_events(), 0);

    // Two connections held open fill the cap: a third client waits until one ends.
    let mut first = socket(&svc).await;
    let mut second = socket(&svc).await;
    for held in [&mut first, &mut second] {
        held.write_all(
            format!(
                "GET {}/api/healthcheck HTTP/1.1\r\nHost: x\r\n\r\n",
                svc.config.base_path
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        let mut head = [0u8; 12];
        held.read_exact(&mut head).await.expect("answered");
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let waiting = tokio::spawn({
        let url = svc.url("/api/healthcheck");
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past MAX_CONNECTIONS=2"
    );
    // The held connections idle past the header timeout and are closed: the third is served.
    let status = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("served once a slot freed")
        .expect("task")
        .expect("request");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_keep_text_that_looks_like_a_number() {
    let svc = Service::start(&[]).await;
    let mut hostile = events(4, 5001, Utc::now());
    hostile[0]["message"] = json!("=HYPERLINK(\"http://evil.example\",\"open\")");
    hostile[1]["message"] = json!("@SUM(1+1)");
    hostile[2]["user"] = json!("+cmd|' /C calc'!A0");
    // A user named +1: a spreadsheet must show "+1", not the number 1.
    hostile[3]["user"] = json!("+1");
    let (status, body) = Service::json(svc.post(BATCH, Some(KEY), &json!(hostile)).await).await;
    assert_eq!(status, 200, "{body}");
    let response = svc
        .get("/api/audit-events/export?format=csv", Some(KEY))
        .await;
    assert_eq!(response.status(), 200);
    let csv = response.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let cells: Vec<String> = reader
        .records()
        .flat_map(|r| {
            r.expect("row")
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    for formula in [
        "=HYPERLINK(\"http://evil.example\",\"open\")",
        "@SUM(1+1)",
        "+cmd|' /C calc'!A0",
        "+1",
    ] {
        assert!(
            cells.contains(&format!("'{formula}")),
            "{formula} is not neutralised: {cells:?}"
        );
        assert!(
            !cells.contains(&formula.to_owned()),
            "{formula} written as is"
        );
    }
    // Numeric columns stay numbers.
    assert!(cells.contains(&"5001".to_owned()), "{cells:?}");
    // Stored as sent: only the export cell is prefixed.
    let (_, found) = Service::json(
        svc.get("/api/audit-events/search?message_pattern=%40SUM", Some(KEY))
            .await,
    )
    .await;
    assert_eq!(found[0]["message"], "@SUM(1+1)");
}

#[tokio::test]
async fn a_cursor_the_server_did_not_issue_is_a_422() {
    use base64::Engine as _;
    let svc = Service::start(&[]).await;
    svc.post(BATCH, Some(KEY), &json!(events(3, 5001, Utc::now())))
        .await;
    for forged in [
        "v1:-210000000000000000:1", // before 4713 BC: SQLSTATE 22008 was a 500
        "v1:300000000000000000:1",
        "v1:1764000000000000:0",
    ] {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        let (status, body) = Service::json(
            svc.get(
                &format!("/api/audit-events/search?cursor={cursor}"),
                Some(KEY),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{forged}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", "cursor"]));
    }
}

#[tokio::test]
async fn additional_data_is_stored_and_answered_with_every_digit() {
    let svc = Service::start(&[]).await;
    let mut event = common::example_event();
    let data = r#"{"order": 123456789012345678901234567890, "ratio": 0.1000000000000000055511151231257827, "n": [1e2, -0]}"#;
    event["additional_data"] = json!("PLACEHOLDER");
    let body = event
        .to_string()
        .replace("\"PLACEHOLDER\"", data)
        .into_bytes();
    let response = svc.post_raw(CREATE, body.clone()).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(
        text.contains("123456789012345678901234567890")
            && text.contains("0.1000000000000000055511151231257827"),
        "{text}"
    );
    assert!(!text.contains("e+29"), "{text}");
    // In the database, exactly (jsonb keeps numbers as numeric).
    let stored = svc.sql("SELECT additionaldata->>'order' FROM auditevents");
    assert_eq!(stored.trim(), "123456789012345678901234567890");
    // And in a batch, and read back by a search.
    let batch = format!("[{}]", String::from_utf8(body).expect("utf-8"));
    let response = svc.post_raw(BATCH, batch.into_bytes()).await;
    assert_eq!(response.status(), 200);
    let found = svc
        .get("/api/audit-events/recent", Some(KEY))
        .await
        .text()
        .await
        .expect("recent");
    assert_eq!(
        found.matches("123456789012345678901234567890").count(),
        2,
        "{found}"
    );
    let parsed: Value = serde_json::from_str(&found).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_long_lived_server_keeps_making_partitions() {
    let svc = Service::start(&[]).await;
    let furthest = svc
        .sql(
            "SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'auditevents'::regclass",
        )
        .trim()
        .to_owned();
    assert!(furthest.starts_with("auditevents_"), "{furthest}");
    // As if the months ahead had run out: the furthest is gone.
    svc.sql(&format!("DROP TABLE {furthest}"));
    let _keeper = audit_api::server::keep_partitions(
        std::sync::Arc::clone(&svc.app),
        Duration::from_millis(100),
    );
    let mut made = false;
    for _ in 0..100 {
        let exists = svc.sql(&format!("SELECT to_regclass('{furthest}') IS NOT NULL"));
        if exists.trim() == "t" {
            made = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(made, "{furthest} was not made again by the running server");
}

#[tokio::test]
async fn an_export_over_the_limit_is_refused_before_anything_is_written() {
    // A directory that does not exist: an export that wrote anything would fail with a 500.
    let svc = Service::start(&[
        ("EXPORT_MAX_ROWS", "5"),
        ("EXPORT_TMPDIR", "/nonexistent/auditkit-exports"),
    ])
    .await;
    svc.post(BATCH, Some(KEY), &json!(events(6, 5001, Utc::now())))
        .await;
    for format in ["xlsx", "csv"] {
        let (status, body) = Service::json(
            svc.get(
                &format!("/api/audit-events/export?format={format}"),
                Some(KEY),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{format}: {body}");
        assert!(
            body["detail"][0]["msg"]
                .as_str()
                .is_some_and(|m| m.contains("More than 5"))
        );
    }
}
