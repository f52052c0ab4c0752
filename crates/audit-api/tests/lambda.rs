//! The real `audit-api` binary under devstack's local Lambda Runtime API: exports streamed
//! past Lambda's 6 MB buffered limit when `RESPONSE_STREAMING` is on, a clear 422 instead of
//! Lambda's failure when it is off, and the maintenance schedule answered as buffered JSON
//! either way.

mod common;

use common::{Service, append_events_sql, function_url_get};
use devstack::LocalLambda;
use serde_json::{Value, json};
use std::time::Duration;

/// Events whose CSV export is about 9 MB: past the 6 MB a buffered response may carry.
const EVENTS: u32 = 40_000;
const MESSAGE_LEN: usize = 150;

async fn function(database: &str, streaming: bool) -> LocalLambda {
    let mode = if streaming { "true" } else { "false" };
    common::local_function(
        env!("CARGO_BIN_EXE_audit-api"),
        database,
        &[("RESPONSE_STREAMING", mode)],
        Duration::from_secs(120),
    )
    .await
}

#[tokio::test]
async fn exports_stream_past_the_buffered_limit_and_buffered_mode_says_why_it_cannot() {
    let svc = Service::start(&[]).await;
    svc.sql(&append_events_sql(EVENTS, MESSAGE_LEN));
    let newest_id =
        svc.sql("SELECT id FROM auditevents ORDER BY eventtimestamp DESC, id DESC LIMIT 1");
    let export = function_url_get("/pyaudit/api/audit-events/export", "format=csv");

    // Streaming: the status and headers first, then the body in many chunks, all of it.
    let streaming = function(&svc.database, true).await;
    let mut response = streaming
        .invoke_with_response_stream(&export)
        .await
        .expect("export");
    assert_eq!(response.status(), 200, "{:?}", response.prelude);
    assert_eq!(
        response.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        response.header("x-export-rows"),
        Some(EVENTS.to_string().as_str())
    );
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.next_chunk().await {
        body.extend_from_slice(&chunk.expect("no error mid-stream"));
        chunks += 1;
    }
    assert!(
        body.len() > devstack::runtime_api::MAX_BUFFERED_RESPONSE,
        "{} bytes: the export must be larger than a buffered response can be",
        body.len()
    );
    assert!(chunks > 1, "one chunk: the body was not streamed");
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv row")).collect();
    assert_eq!(rows.len(), EVENTS as usize);
    assert_eq!(&rows[0][0], newest_id.trim(), "newest first");
    assert!(
        rows.iter().all(|r| r[7].len() == MESSAGE_LEN),
        "whole messages"
    );

    // A small response streams too, and the schedule is still buffered JSON.
    let search = streaming
        .invoke_with_response_stream(&function_url_get(
            "/pyaudit/api/audit-events/search",
            "page_size=2",
        ))
        .await
        .expect("search");
    assert_eq!(search.status(), 200);
    assert!(search.header("x-next-cursor").is_some());
    let page: Value = serde_json::from_slice(&search.collect().await.expect("body")).expect("json");
    assert_eq!(page.as_array().map(Vec::len), Some(2), "{page}");
    let schedule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = streaming.invoke(&schedule).await.expect("maintenance");
    assert!(report["partitions_created"].is_array(), "{report}");

    // Buffered: the same export would fail the invocation (Function.ResponseSizeTooLarge);
    // the service answers 422 naming the way out, and small responses are unchanged.
    let buffered = function(&svc.database, false).await;
    let answer = buffered
        .invoke(&export)
        .await
        .expect("an answer, not a failure");
    assert_eq!(answer["statusCode"], 422, "{answer}");
    let detail: Value = serde_json::from_str(answer["body"].as_str().expect("body")).expect("json");
    let message = detail["detail"][0]["msg"].as_str().expect("msg");
    assert!(message.contains("RESPONSE_STREAMING=true"), "{message}");
    assert_eq!(detail["detail"][0]["loc"], json!(["query"]));
    let answer = buffered
        .invoke(&function_url_get(
            "/pyaudit/api/audit-events/export",
            "format=csv&from_date=2000-01-01T00:00:00Z&to_date=2000-01-02T00:00:00Z",
        ))
        .await
        .expect("empty export");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["headers"]["x-export-rows"], "0");
}
