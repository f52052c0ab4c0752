//! Paging under concurrent writes, exports read back, maintenance (partitions and archival),
//! and the Lambda entry, against a real PostgreSQL (and moto's S3 for the archive bucket).

mod common;

use audit_api::maintain::Month;
use audit_api::maintain::{self, ArchiveTarget, MaintenanceSettings};
use calamine::{Data, Reader as _, Xlsx};
use chrono::{TimeZone as _, Utc};
use common::{KEY, Service, at, events};
use serde_json::{Value, json};
use std::collections::HashSet;

const BATCH: &str = "/api/audit-events/create-batch";

async fn page(svc: &Service, query: &str) -> (Vec<Value>, Option<String>) {
    let response = svc
        .get(&format!("/api/audit-events/search?{query}"), Some(KEY))
        .await;
    assert_eq!(response.status(), 200);
    let cursor = response
        .headers()
        .get("x-next-cursor")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let list: Vec<Value> = response.json().await.expect("json");
    (list, cursor)
}

#[tokio::test]
async fn cursor_pages_neither_skip_nor_repeat_while_events_arrive() {
    let svc = Service::start(&[]).await;
    let start = Utc::now() - chrono::Duration::minutes(30);
    // 1,200 events one second apart, some sharing a timestamp (the id breaks the tie).
    let mut existing = events(1000, 5001, start);
    existing.extend(events(200, 5002, start - chrono::Duration::seconds(300)));
    for chunk in existing.chunks(400) {
        assert_eq!(
            svc.post(BATCH, Some(KEY), &json!(chunk)).await.status(),
            200
        );
    }
    let before: HashSet<i64> = svc
        .sql("SELECT id FROM auditevents")
        .lines()
        .map(|l| l.parse().expect("id"))
        .collect();
    assert_eq!(before.len(), 1200);

    // New events keep arriving while the pages are read: newer than everything, and also
    // inside the range already paged through.
    let writer = {
        let base = svc.url(BATCH);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for round in 0..20 {
                let mut batch = events(10, 5003, Utc::now());
                batch.extend(events(
                    5,
                    5003,
                    start - chrono::Duration::seconds(round * 7),
                ));
                let status = client
                    .post(&base)
                    .header("CSIQ-APIKEY", KEY)
                    .json(&batch)
                    .send()
                    .await
                    .expect("post")
                    .status();
                assert_eq!(status, 200);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let to = urlencode(&start.to_rfc3339());
    let mut seen: Vec<i64> = Vec::new();
    let mut times: Vec<(String, i64)> = Vec::new();
    let (mut list, mut cursor) = page(&svc, &format!("page_size=97&to_date={to}")).await;
    loop {
        for e in &list {
            let id = e["id"].as_i64().expect("id");
            seen.push(id);
            times.push((e["event_timestamp"].as_str().expect("ts").to_owned(), id));
        }
        let Some(next) = cursor.take() else { break };
        tokio::task::yield_now().await;
        (list, cursor) = page(&svc, &format!("page_size=97&to_date={to}&cursor={next}")).await;
    }
    writer.await.expect("writer");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no event on two pages");
    assert!(
        before.is_subset(&unique),
        "every event that existed is on a page"
    );
    // Newest first by (timestamp, id) throughout.
    assert!(times.windows(2).all(|w| {
        let a: chrono::DateTime<Utc> = w[0].0.parse().expect("ts");
        let b: chrono::DateTime<Utc> = w[1].0.parse().expect("ts");
        (a, w[0].1) > (b, w[1].1)
    }));
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).expect("encode")[2..].to_owned()
}

async fn download(svc: &Service, query: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = svc
        .get(&format!("/api/audit-events/export?{query}"), Some(KEY))
        .await;
    assert_eq!(response.status(), 200, "{query}");
    let headers = response.headers().clone();
    (headers, response.bytes().await.expect("body").to_vec())
}

/// Rows (header included) on an exported workbook's first sheet.
fn first_sheet_height(xlsx: Vec<u8>) -> usize {
    let mut workbook: Xlsx<_> = Xlsx::new(std::io::Cursor::new(xlsx)).expect("xlsx opens");
    workbook
        .worksheet_range("Audit Events")
        .expect("sheet")
        .height()
}

#[tokio::test]
async fn exports_open_with_the_right_rows() {
    let svc = Service::start(&[]).await;
    let now = Utc::now();
    let mut batch = events(600, 5001, now);
    batch[0]["message"] = json!("x".repeat(40_000));
    batch[1]["additional_data"] = json!({"ip": "10.0.0.1", "nested": {"a": [1, 2]}});
    svc.post(BATCH, Some(KEY), &json!(batch)).await;

    let (headers, bytes) = download(&svc, "company_id=5001&store_id=100").await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(headers["content-disposition"].to_str().is_ok_and(|d| {
        d.starts_with("attachment; filename=\"audit_events_") && d.ends_with(".xlsx\"")
    }));
    let mut workbook: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).expect("xlsx opens");
    assert_eq!(workbook.sheet_names(), ["Audit Events"]);
    let range = workbook.worksheet_range("Audit Events").expect("sheet");
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), 1 + 120, "header and every 5th event");
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(
        header,
        [
            "ID",
            "Event Timestamp",
            "Functionality",
            "Event Type",
            "Store ID",
            "Company ID",
            "User",
            "Message",
            "Status",
            "Additional Data"
        ]
    );
    let first = rows[1];
    assert!(
        first[7]
            .to_string()
            .contains("[truncated: 40000 characters"),
        "Excel's cell limit is said, not silent"
    );
    assert_eq!(first[7].to_string().chars().count(), 32_767);
    assert_eq!(first[2].to_string(), "Authenticate");
    assert_eq!(first[5], Data::Float(5001.0));
    let stored: String = svc.sql(&format!(
        "SELECT id FROM auditevents WHERE message = '{}'",
        "x".repeat(40_000)
    ));
    assert_eq!(first[0], Data::Float(stored.parse::<f64>().expect("id")));
    let messages: Vec<String> = rows[2..].iter().map(|r| r[7].to_string()).collect();
    assert_eq!(messages[0], "event number 5");
    assert_eq!(messages[118], "event number 595");

    // Recent: the 500 newest; CSV keeps the long message whole.
    let (_, bytes) = download(&svc, "recent=true").await;
    assert_eq!(first_sheet_height(bytes), 501);
    let (headers, bytes) = download(&svc, "format=csv&store_id=101").await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv row")).collect();
    assert_eq!(records.len(), 120);
    assert_eq!(&records[0][9], r#"{"ip":"10.0.0.1","nested":{"a":[1,2]}}"#);
    let (_, bytes) = download(&svc, "format=csv&message_pattern=xxxxxxxx").await;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let long = reader.records().next().expect("row").expect("csv");
    assert_eq!(long[7].len(), 40_000);

    let (status, body) = Service::json(
        svc.get("/api/audit-events/export?format=pdf", Some(KEY))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "format"]));
}

#[tokio::test]
async fn an_export_larger_than_the_limit_is_refused_not_cut() {
    let svc = Service::start(&[("EXPORT_MAX_ROWS", "50")]).await;
    svc.post(BATCH, Some(KEY), &json!(events(51, 5001, Utc::now())))
        .await;
    let (status, body) = Service::json(svc.get("/api/audit-events/export", Some(KEY)).await).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("More than 50"))
    );
    let (_, bytes) = download(&svc, "user=user1").await;
    assert_eq!(first_sheet_height(bytes), 1 + 8);
}

#[tokio::test]
async fn rows_past_a_sheet_continue_on_the_next() {
    use audit_api::export::EventWriter;
    use audit_api::search::EventRecord;
    use audit_api::search::ExportFormat;
    let dir = tempfile::tempdir().expect("tempdir");
    // Three rows per sheet stands in for Excel's 1,048,575.
    let mut writer = EventWriter::new(ExportFormat::Xlsx, dir.path(), 3).expect("writer");
    for id in 1..=7 {
        writer
            .push(&EventRecord {
                id,
                event_timestamp: Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .expect("t"),
                functionality: "Authenticate".into(),
                event_type: "Login".into(),
                store_id: None,
                company_id: Some(1),
                user: None,
                message: Some(format!("m{id}")),
                status: "Success".into(),
                additional_data: None,
            })
            .expect("push");
    }
    let (file, rows) = writer.finish().expect("finish");
    assert_eq!(rows, 7);
    let mut workbook = Xlsx::new(std::io::BufReader::new(file)).expect("xlsx");
    assert_eq!(
        workbook.sheet_names(),
        ["Audit Events", "Audit Events (2)", "Audit Events (3)"]
    );
    let heights: Vec<usize> = workbook
        .sheet_names()
        .iter()
        .map(|name| workbook.worksheet_range(name).expect("sheet").height())
        .collect();
    assert_eq!(heights, [4, 4, 2], "a header on each sheet");
    let third = workbook.worksheet_range("Audit Events (3)").expect("sheet");
    assert_eq!(third.get((1, 7)), Some(&Data::String("m7".into())));
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no temporary file left"
    );
}

fn settings(premake: i32, retention: i32, archive: ArchiveTarget) -> MaintenanceSettings {
    MaintenanceSettings {
        premake_months: premake,
        retention_months: retention,
        archive,
        anchor: None,
    }
}

fn partitions(svc: &Service) -> Vec<String> {
    svc.sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'auditevents'::regclass ORDER BY 1",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[tokio::test]
async fn partitions_are_made_ahead_across_a_year_boundary_and_old_months_archived() {
    let svc = Service::start(&[]).await;
    let db = &svc.app.db;
    // As if it were 20 December 2027: the window is Dec 2026 .. May 2028.
    let dec = maintain::run(db, &settings(5, 12, ArchiveTarget::Table), at(2027, 12, 20))
        .await
        .expect("maintain");
    assert!(
        dec.partitions_created
            .contains(&"auditevents_202805".to_owned())
    );
    assert!(partitions(&svc).contains(&"auditevents_202612".to_owned()));
    // Events at the edges of a month land in their month's partition.
    svc.sql(
        "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, status, message) VALUES
         ('2027-12-31 23:59:59.999999+00', 1, 1, 'Success', 'last of 2027'),
         ('2028-01-01 00:00:00+00', 1, 1, 'Success', 'first of 2028'),
         ('2026-12-15 00:00:00+00', 1, 1, 'Failed', 'oldest kept'),
         ('2026-12-16 00:00:00+00', 1, 2, 'Success', 'oldest kept too')",
    );
    assert_eq!(
        svc.sql("SELECT tableoid::regclass, message FROM auditevents WHERE message LIKE '%of 202%' ORDER BY 2"),
        "auditevents_202801|first of 2028\nauditevents_202712|last of 2027"
    );
    // A month later, the next month is made and December 2026 leaves the window.
    let jan = maintain::run(db, &settings(5, 12, ArchiveTarget::Table), at(2028, 1, 2))
        .await
        .expect("maintain");
    assert_eq!(jan.partitions_created, ["auditevents_202806"]);
    assert_eq!(jan.partitions_archived.len(), 1);
    assert_eq!(jan.partitions_archived[0].partition, "auditevents_202612");
    assert_eq!(jan.partitions_archived[0].events, 2);
    assert!(!partitions(&svc).contains(&"auditevents_202612".to_owned()));
    assert_eq!(
        svc.sql("SELECT to_regclass('auditevents_202612') IS NULL"),
        "t",
        "dropped"
    );
    assert_eq!(
        svc.sql("SELECT message, archivedat IS NOT NULL FROM auditevents_archival ORDER BY 1"),
        "oldest kept|t\noldest kept too|t"
    );
    assert_eq!(
        svc.sql("SELECT count(*) FROM auditevents WHERE eventtimestamp < '2027-01-01'"),
        "0",
        "moved, not copied"
    );

    // Two runs at once: both succeed, the month is archived once.
    svc.sql("INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, status) VALUES ('2027-01-05', 1, 1, 'Success')");
    let s = settings(5, 12, ArchiveTarget::Table);
    let (a, b) = tokio::join!(
        maintain::run(db, &s, at(2028, 2, 1)),
        maintain::run(db, &s, at(2028, 2, 1))
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    let archived: usize = a.partitions_archived.len() + b.partitions_archived.len();
    assert_eq!(archived, 1);
    assert_eq!(svc.sql("SELECT count(*) FROM auditevents_archival"), "3");
}

#[tokio::test]
async fn an_interrupted_detach_is_finished_by_the_next_run() {
    let svc = Service::start(&[]).await;
    let db = &svc.app.db;
    maintain::run(db, &settings(1, 12, ArchiveTarget::Table), at(2027, 6, 1))
        .await
        .expect("maintain");
    svc.sql("INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, status) VALUES ('2026-07-03', 1, 1, 'Success')");
    // As if a run stopped after detaching: the month is a plain table now.
    svc.sql("ALTER TABLE auditevents DETACH PARTITION auditevents_202607");
    let report = maintain::run(db, &settings(1, 12, ArchiveTarget::Table), at(2027, 8, 1))
        .await
        .expect("maintain");
    let names: Vec<&str> = report
        .partitions_archived
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    // July 2026 (detached by the interrupted run) and June 2026 (due now) both leave.
    assert_eq!(names, ["auditevents_202606", "auditevents_202607"]);
    assert_eq!(svc.sql("SELECT count(*) FROM auditevents_archival"), "1");
}

#[tokio::test]
async fn old_months_go_to_s3_as_gzip_json_lines() {
    let aws = devstack::moto().isolated();
    let s3 = aws.s3_client().await;
    let bucket = devstack::unique_name("archive");
    aws.create_bucket(&s3, &bucket).await.expect("bucket");
    let svc = Service::start(&[]).await;
    let db = &svc.app.db;
    maintain::run(db, &settings(1, 12, ArchiveTarget::Table), at(2027, 3, 1))
        .await
        .expect("maintain");
    svc.sql(
        "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, status, username, additionaldata) VALUES
         ('2026-03-10 08:00+00', 1, 1, 'Success', 'ann', '{\"k\": 1}'),
         ('2026-03-11 08:00+00', 2, 5, 'Failed', 'bob', NULL)",
    );
    let target = ArchiveTarget::S3 {
        client: s3.clone(),
        bucket: bucket.clone(),
        prefix: "archive/".into(),
    };
    let report = maintain::run(db, &settings(1, 12, target), at(2027, 4, 1))
        .await
        .expect("maintain");
    assert_eq!(report.partitions_archived.len(), 1);
    assert_eq!(
        report.partitions_archived[0].destination,
        format!("s3://{bucket}/archive/auditevents_202603.jsonl.gz")
    );
    // Written as a stream (`audit_core::s3_upload`), typed and counted from its creation.
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("archive/auditevents_202603.jsonl.gz")
        .send()
        .await
        .expect("the archive object");
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(head.content_type(), Some("application/x-ndjson"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("event-count"))
            .map(String::as_str),
        Some("2")
    );
    let text = common::archive_text(&s3, &bucket, "archive/auditevents_202603.jsonl.gz").await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["user"], "ann");
    assert_eq!(lines[0]["additional_data"], json!({"k": 1}));
    assert_eq!(lines[1]["status"], "Failed");
    assert_eq!(
        svc.sql("SELECT to_regclass('auditevents_202603') IS NULL"),
        "t"
    );
    assert_eq!(svc.sql("SELECT count(*) FROM auditevents_archival"), "0");
}

#[test]
fn month_arithmetic_crosses_years() {
    let dec = Month {
        year: 2026,
        month: 12,
    };
    assert_eq!(
        dec.plus(1),
        Month {
            year: 2027,
            month: 1
        }
    );
    assert_eq!(
        dec.plus(-12),
        Month {
            year: 2025,
            month: 12
        }
    );
    assert_eq!(
        Month {
            year: 2027,
            month: 1
        }
        .plus(-1),
        dec
    );
}

#[tokio::test]
async fn the_lambda_answers_http_events_and_runs_maintenance_on_schedule() {
    // Both secrets as the stack passes them: the database in the RDS shape, the keys as text.
    let database = common::fresh_database();
    let aws = devstack::moto().isolated();
    let clients = audit_api::Clients::new(aws.sdk_config().await);
    let secret = |name: String, value: String| {
        let secrets = clients.secrets.clone();
        async move {
            secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .expect("secret")
                .arn()
                .expect("arn")
                .to_owned()
        }
    };
    let db_secret = secret(
        devstack::unique_name("db"),
        json!({"username": "postgres", "password": "unused", "host": "127.0.0.1",
               "port": devstack::postgres().port(), "dbname": database})
        .to_string(),
    )
    .await;
    let keys_secret = secret(
        devstack::unique_name("keys"),
        format!("{KEY},other-key-0123456789abcdef"),
    )
    .await;
    let env = audit_core::Env::from_pairs([
        ("DB_SECRET_ARN", db_secret.as_str()),
        ("DB_SSLMODE", "disable"),
        // The test server has no TLS: the explicit override a secret's password needs.
        ("DB_ALLOW_UNVERIFIED_TLS", "true"),
        ("API_KEYS_SECRET_ARN", keys_secret.as_str()),
    ]);
    let config = audit_api::Config::from_env(&env).expect("config");
    let lambda = audit_api::handler::LambdaApp::new(&config, &clients)
        .await
        .expect("start");
    let request = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/pyaudit/api/audit-events/create",
        "rawQueryString": "",
        "headers": {"csiq-apikey": KEY, "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
            "domainPrefix": "example", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/pyaudit/api/audit-events/create",
                     "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": common::example_event().to_string(),
        "isBase64Encoded": false
    });
    let event = lambda_runtime::LambdaEvent::new(request, lambda_runtime::Context::default());
    let response = buffered(lambda.handle(event).await.expect("response"));
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["user"], "jdoe");

    let schedule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let event = lambda_runtime::LambdaEvent::new(schedule, lambda_runtime::Context::default());
    let report = buffered(lambda.handle(event).await.expect("maintenance"));
    assert!(report["partitions_created"].is_array(), "{report}");
    assert!(report["partitions_archived"].is_array());
}

/// The JSON document of a buffered reply (the default: `RESPONSE_STREAMING` unset).
fn buffered(reply: audit_api::handler::Reply) -> Value {
    match reply {
        lambda_runtime::FunctionResponse::BufferedResponse(value) => value,
        lambda_runtime::FunctionResponse::StreamingResponse(_) => panic!("streamed"),
    }
}
