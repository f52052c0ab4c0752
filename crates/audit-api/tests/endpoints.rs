//! Every endpoint's success and error shapes, against a real PostgreSQL over real HTTP.

mod common;

use audit_api::trigram::PatternLookup;
use common::{KEY, SCOPED_KEY, Service, events, example_event, yesterday_at};
use serde_json::{Value, json};

const CREATE: &str = "/api/audit-events/create";
const BATCH: &str = "/api/audit-events/create-batch";

#[tokio::test]
async fn the_original_example_is_stored_and_returned_as_sent() {
    let svc = Service::start(&[]).await;
    let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &example_event()).await).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = example_event();
    expected["id"] = body["id"].clone();
    assert!(body["id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(body, expected);
    assert_eq!(
        svc.sql("SELECT to_char(eventtimestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), username, additionaldata->>'browser' FROM auditevents"),
        format!("{}|jdoe|Chrome", yesterday_at("10:30:00Z"))
    );
}

#[tokio::test]
async fn a_timestamp_without_offset_is_central_time_and_answers_are_utc() {
    let svc = Service::start(&[]).await;
    let mut event = example_event();
    // What Central Time wall clock means in UTC that day, as PostgreSQL's zone data says
    // (daylight saving included).
    let expected = |naive: &str, fraction: &str| {
        svc.sql(&format!(
            "SELECT to_char(('{naive}'::timestamp AT TIME ZONE 'America/Chicago') AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS')"
        )) + fraction + "Z"
    };
    let naive = yesterday_at("10:30:00");
    event["event_timestamp"] = json!(naive);
    let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event_timestamp"], expected(&naive, ""));
    let naive = yesterday_at("23:59:59.250");
    event["event_timestamp"] = json!(naive);
    let (_, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
    assert_eq!(body["event_timestamp"], expected(&naive, ".250"));
    // No timestamp: the time of storing.
    event.as_object_mut().map(|o| o.remove("event_timestamp"));
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
    assert_eq!(status, 200);
    let stored: chrono::DateTime<chrono::Utc> = body["event_timestamp"]
        .as_str()
        .expect("ts")
        .parse()
        .expect("rfc3339");
    assert!(stored > before);
}

fn locs(body: &Value) -> Vec<Value> {
    body["detail"]
        .as_array()
        .expect("detail list")
        .iter()
        .map(|e| {
            assert!(e["msg"].is_string() && e["type"].is_string(), "{e}");
            e["loc"].clone()
        })
        .collect()
}

#[tokio::test]
async fn bad_input_is_a_422_naming_each_field_and_stores_nothing() {
    let svc = Service::start(&[]).await;
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (
            json!({"functionality": "Nope", "event_type": "Login", "status": "Success"}),
            vec![json!(["body", "functionality"])],
        ),
        (
            json!({"functionality": "Authenticate", "event_type": "Item updated", "status": "Success"}),
            vec![json!(["body", "event_type"])],
        ),
        (
            json!({"functionality": "Authenticate", "event_type": "Login", "status": "OK"}),
            vec![json!(["body", "status"])],
        ),
        (
            json!({"functionality": "Authenticate", "event_type": "Login", "status": "Success",
                   "user": "a-user-name-of-21-chr"}),
            vec![json!(["body", "user"])],
        ),
        (
            json!({"functionality": "Authenticate", "event_type": "Login", "status": "Success",
                   "event_timestamp": "25/09/2025 10:30"}),
            vec![json!(["body", "event_timestamp"])],
        ),
        (
            json!({"functionality": "Authenticate", "event_type": "Login", "status": "Success",
                   "store_id": "one", "message": "nul \u{0} here", "additional_data": [1]}),
            vec![
                json!(["body", "store_id"]),
                json!(["body", "message"]),
                json!(["body", "additional_data"]),
            ],
        ),
        (
            json!({}),
            vec![
                json!(["body", "functionality"]),
                json!(["body", "event_type"]),
                json!(["body", "status"]),
            ],
        ),
        (json!([1, 2]), vec![json!(["body"])]),
    ];
    for (event, expected) in cases {
        let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
        assert_eq!(status, 422, "{event} -> {body}");
        assert_eq!(locs(&body), expected, "{event}");
    }
    // Twenty characters is the limit, not over it.
    let mut event = example_event();
    event["user"] = json!("twenty-characters-ok");
    assert_eq!(svc.post(CREATE, Some(KEY), &event).await.status(), 200);
    assert_eq!(svc.count_events(), 1);

    let (status, body) =
        Service::json(svc.post_raw(CREATE, b"{\"functionality\": ".to_vec()).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    // A year no partition holds is the client's error too.
    let mut event = example_event();
    event["event_timestamp"] = json!("2031-01-01T00:00:00Z");
    let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(locs(&body), vec![json!(["body", "event_timestamp"])]);
    assert_eq!(svc.count_events(), 1);
}

/// One create for a month without a partition, among hundreds in flight for the same company,
/// is refused alone: the others share their appends as before and none of those appends fails.
#[tokio::test]
async fn a_create_for_a_month_without_a_partition_never_fails_a_shared_append() {
    let svc = std::sync::Arc::new(Service::start(&[]).await);
    let mut tasks = Vec::new();
    for i in 0..400 {
        let svc = std::sync::Arc::clone(&svc);
        tasks.push(tokio::spawn(async move {
            let mut event = example_event();
            let unpartitioned = i % 40 == 7;
            if unpartitioned {
                event["event_timestamp"] = json!("2031-01-01T00:00:00Z");
            }
            let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
            (unpartitioned, status, body)
        }));
    }
    for task in tasks {
        let (unpartitioned, status, body) = task.await.expect("create");
        if unpartitioned {
            assert_eq!(status, 422, "{body}");
            assert_eq!(locs(&body), vec![json!(["body", "event_timestamp"])]);
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert_eq!(svc.count_events(), 390);
    assert_eq!(svc.app.shared_appends_failed(), 0);
}

#[tokio::test]
async fn an_oversized_body_is_413_with_a_detail() {
    let svc = Service::start(&[("MAX_BODY_BYTES", "2048")]).await;
    let mut event = example_event();
    event["message"] = json!("x".repeat(4096));
    let (status, body) = Service::json(svc.post(CREATE, Some(KEY), &event).await).await;
    assert_eq!(status, 413);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("2048")),
        "{body}"
    );
}

#[tokio::test]
async fn a_batch_is_stored_whole_or_not_at_all() {
    let svc = Service::start(&[]).await;
    let now = chrono::Utc::now();
    let batch = events(250, 5001, now);
    let (status, body) = Service::json(svc.post(BATCH, Some(KEY), &json!(batch)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], 250);
    let ids: Vec<i64> = body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
    // The first id belongs to the first event of the batch.
    assert_eq!(
        svc.sql(&format!(
            "SELECT message FROM auditevents WHERE id = {}",
            ids[0]
        )),
        "event number 0"
    );
    assert_eq!(svc.count_events(), 250);

    let mut bad = events(5, 5001, now);
    bad[3]["status"] = json!("Maybe");
    bad[1]["functionality"] = json!("Nope");
    let (status, body) =
        Service::json(svc.post(BATCH, Some(KEY), &json!({"events": bad})).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        locs(&body),
        vec![
            json!(["body", "events", 1, "functionality"]),
            json!(["body", "events", 3, "status"])
        ]
    );
    let (status, _) = Service::json(
        svc.post(BATCH, Some(KEY), &json!(events(1001, 1, now)))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = Service::json(svc.post(BATCH, Some(KEY), &json!([])).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        svc.count_events(),
        250,
        "nothing of a rejected batch is stored"
    );
    // What the dashboard reads: 250 ingested, three refused batches, as valid EMF.
    let lines = svc.app.metrics.take().lines(1);
    let metrics = audit_core::metrics::check_line(&lines[0]).expect("EMF");
    assert_eq!(metrics.total("EventsIngested"), 250.0);
    assert_eq!(metrics.total("EventsRejected"), 3.0);
}

#[tokio::test]
async fn keys_are_checked_and_scoped_keys_see_only_their_companies() {
    let svc = Service::start(&[]).await;
    let (status, body) = Service::json(svc.get("/api/audit-events/recent", None).await).await;
    assert_eq!(
        (status, body),
        (401, json!({"detail": "API Key is missing"}))
    );
    let (status, body) = Service::json(
        svc.get("/api/audit-events/recent", Some("wrong-key-0123456789"))
            .await,
    )
    .await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid API Key"})));
    let (status, body) = Service::json(svc.post(CREATE, Some("x"), &example_event()).await).await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid API Key"})));
    assert_eq!(svc.get("/api/healthcheck", None).await.status(), 200);

    let now = chrono::Utc::now();
    svc.post(BATCH, Some(KEY), &json!(events(3, 7001, now)))
        .await;
    svc.post(BATCH, Some(KEY), &json!(events(4, 9999, now)))
        .await;
    // The original service's example is company 5001: not this key's.
    let (status, _) =
        Service::json(svc.post(CREATE, Some(SCOPED_KEY), &example_event()).await).await;
    assert_eq!(status, 403);
    // A scoped key must say whose events it writes; the error locates the batch item.
    let mut anonymous = example_event();
    anonymous.as_object_mut().map(|o| o.remove("company_id"));
    let (status, body) = Service::json(
        svc.post(BATCH, Some(SCOPED_KEY), &json!({"events": [anonymous]}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        locs(&body),
        vec![json!(["body", "events", 0, "company_id"])]
    );
    let mut own = example_event();
    own["company_id"] = json!(7002);
    own["event_timestamp"] = json!(now.to_rfc3339());
    assert_eq!(svc.post(CREATE, Some(SCOPED_KEY), &own).await.status(), 200);
    let (_, recent) =
        Service::json(svc.get("/api/audit-events/recent", Some(SCOPED_KEY)).await).await;
    let companies: Vec<i64> = recent
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["company_id"].as_i64().expect("company"))
        .collect();
    assert_eq!(companies.len(), 4);
    assert!(companies.iter().all(|c| *c == 7001 || *c == 7002));
    let (status, _) = Service::json(
        svc.get("/api/audit-events/search?company_id=9999", Some(SCOPED_KEY))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    let (_, all) = Service::json(svc.get("/api/audit-events/recent", Some(KEY)).await).await;
    assert_eq!(all.as_array().map(Vec::len), Some(8));
}

#[tokio::test]
async fn recent_is_the_500_newest_newest_first() {
    let svc = Service::start(&[]).await;
    let now = chrono::Utc::now();
    for chunk in events(620, 5001, now).chunks(310) {
        assert_eq!(
            svc.post(BATCH, Some(KEY), &json!(chunk)).await.status(),
            200
        );
    }
    let (status, body) = Service::json(svc.get("/api/audit-events/recent", Some(KEY)).await).await;
    assert_eq!(status, 200);
    let list = body.as_array().expect("list");
    assert_eq!(list.len(), 500);
    assert_eq!(list[0]["message"], "event number 0");
    assert_eq!(list[499]["message"], "event number 499");
    let times: Vec<&str> = list
        .iter()
        .map(|e| e["event_timestamp"].as_str().expect("ts"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
}

async fn search(svc: &Service, query: &str) -> Vec<Value> {
    let response = svc
        .get(&format!("/api/audit-events/search?{query}"), Some(KEY))
        .await;
    let (status, body) = Service::json(response).await;
    assert_eq!(status, 200, "{query}: {body}");
    body.as_array().expect("list").clone()
}

#[tokio::test]
async fn a_pattern_is_matched_whole_when_the_index_looks_up_only_its_rare_word() {
    // Every message shares "SKU-0..." and "price changed": the search looks up the rare
    // order number in the trigram index and must still hold every row to the whole pattern.
    let svc = Service::start(&[]).await;
    let now = chrono::Utc::now();
    let mut batch = events(300, 5001, now);
    for (i, event) in batch.iter_mut().enumerate() {
        event["message"] = json!(format!("SKU-{:06} price changed to {}.99", i % 100, i % 97));
    }
    batch[10]["message"] = json!("SKU-004217 price changed to 1.99");
    batch[20]["message"] = json!("sku-004217 PRICE CHANGED to 2.99");
    batch[30]["message"] = json!("SKU 004217 price changed to 3.99"); // no hyphen
    batch[40]["message"] = json!("SKU-0042170 price changed to 4.99"); // longer number
    batch[50]["message"] = json!("price changed to 5.99 for 004217");
    svc.post(BATCH, Some(KEY), &json!(batch)).await;
    let found = |list: Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        found(search(&svc, "message_pattern=SKU-004217").await),
        [
            "SKU-004217 price changed to 1.99",
            "sku-004217 PRICE CHANGED to 2.99",
            "SKU-0042170 price changed to 4.99"
        ]
    );
    assert_eq!(
        found(search(&svc, "message_pattern=SKU-004217%20price").await),
        [
            "SKU-004217 price changed to 1.99",
            "sku-004217 PRICE CHANGED to 2.99"
        ]
    );
    assert_eq!(search(&svc, "message_pattern=004217").await.len(), 5);
    // The word looked up, from the sample of these messages pg_trgm split: the order number;
    // a pattern of common words goes by hour.
    assert_eq!(
        svc.app.message_lookup("SKU-004217").await,
        PatternLookup::RareWord("004217".into())
    );
    assert!(matches!(
        svc.app.message_lookup("SKU-000001 price").await,
        PatternLookup::ByHour(_)
    ));
    // A common pattern (no rare word) is unchanged: SKU-000000 to SKU-000009, 3 of each.
    assert_eq!(search(&svc, "message_pattern=SKU-00000").await.len(), 30);
    // The export counts and writes the same rows.
    let export = svc
        .get(
            "/api/audit-events/export?format=csv&message_pattern=SKU-004217",
            Some(KEY),
        )
        .await;
    assert_eq!(export.headers()["x-export-rows"], "3");
}

#[tokio::test]
async fn search_filters_page_and_match_messages_literally() {
    let svc = Service::start(&[]).await;
    let now = chrono::Utc::now();
    svc.post(BATCH, Some(KEY), &json!(events(40, 5001, now)))
        .await;
    let mut odd = events(4, 6001, now - chrono::Duration::hours(1));
    odd[0]["message"] = json!("Discount 100% applied");
    odd[1]["message"] = json!("Discount 1000 applied");
    odd[2]["message"] = json!("file_name changed");
    odd[3]["message"] = json!("FILEXNAME changed, path C:\\temp");
    svc.post(BATCH, Some(KEY), &json!(odd)).await;

    let messages = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        messages(&search(&svc, "message_pattern=100%25").await),
        ["Discount 100% applied"]
    );
    assert_eq!(
        messages(&search(&svc, "message_pattern=FILE_NAME").await),
        ["file_name changed"]
    );
    assert_eq!(
        messages(&search(&svc, "message_pattern=c%3A%5Ctemp").await),
        ["FILEXNAME changed, path C:\\temp"]
    );
    assert_eq!(search(&svc, "company_id=6001").await.len(), 4);
    assert_eq!(search(&svc, "store_id=100&company_id=5001").await.len(), 8);
    assert_eq!(search(&svc, "user=user3").await.len(), 7);
    assert_eq!(
        search(&svc, "functionality=Price%20Management&company_id=5001")
            .await
            .len(),
        20
    );
    let from = (now - chrono::Duration::seconds(9)).to_rfc3339();
    let query = format!("from_date={}", urlencode(&from));
    assert_eq!(search(&svc, &query).await.len(), 10);
    let to = (now - chrono::Duration::minutes(30)).to_rfc3339();
    assert_eq!(
        search(&svc, &format!("to_date={}", urlencode(&to)))
            .await
            .len(),
        4
    );

    // Pages by number: disjoint, newest first, covering everything.
    let mut seen = Vec::new();
    for page in 1..=5 {
        let list = search(&svc, &format!("page_size=10&page_number={page}")).await;
        seen.extend(list.iter().map(|e| e["id"].as_i64().expect("id")));
    }
    assert_eq!(seen.len(), 44);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);

    let response = svc
        .get("/api/audit-events/search?page_size=40", Some(KEY))
        .await;
    assert_eq!(response.headers()["x-has-more"], "true");
    let response = svc
        .get("/api/audit-events/search?page_size=44", Some(KEY))
        .await;
    assert_eq!(response.headers()["x-has-more"], "false");
    assert!(response.headers().get("x-next-cursor").is_none());

    for (query, field) in [
        ("page_size=0", "page_size"),
        ("page_size=5001", "page_size"),
        ("page_number=0", "page_number"),
        ("store_id=abc", "store_id"),
        ("from_date=yesterday", "from_date"),
        ("cursor=not-a-cursor", "cursor"),
        ("functionality=Nope", "functionality"),
    ] {
        let (status, body) = Service::json(
            svc.get(&format!("/api/audit-events/search?{query}"), Some(KEY))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(locs(&body), vec![json!(["query", field])], "{query}");
    }
    // Every search that ran is counted, with its latency (refused queries never ran).
    let lines = svc.app.metrics.take().lines(1);
    let metrics = audit_core::metrics::check_line(&lines[0]).expect("EMF");
    let (_, latencies) = &metrics.metrics["SearchLatency"];
    assert_eq!(metrics.total("Searches"), latencies.len() as f64);
    assert!(latencies.iter().all(|ms| *ms > 0.0), "{latencies:?}");
}

pub fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).expect("encode")[2..].to_owned()
}

#[tokio::test]
async fn event_type_names_by_functionality() {
    let svc = Service::start(&[]).await;
    let path = "/api/audit-events/get-eventtypenames-by-functionalityname";
    let (status, body) = Service::json(
        svc.get(
            &format!("{path}?functionality_name=Authenticate"),
            Some(KEY),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!(["Login", "Logout", "Sign up", "Reset Password"])
    );
    let (_, body) = Service::json(
        svc.get(
            &format!("{path}?functionality_name=Price%20Management"),
            Some(KEY),
        )
        .await,
    )
    .await;
    assert_eq!(body.as_array().map(Vec::len), Some(4));
    let (status, body) = Service::json(
        svc.get(&format!("{path}?functionality_name=Nope"), Some(KEY))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Functionality 'Nope' not found"}))
    );
    let (status, _) = Service::json(svc.get(path, Some(KEY)).await).await;
    assert_eq!(status, 422);
    // Unknown names do not make every request a catalog read: at most one per interval.
    let reads = svc.app.catalog_reads();
    for _ in 0..20 {
        let (status, _) = Service::json(
            svc.get(&format!("{path}?functionality_name=Nope"), Some(KEY))
                .await,
        )
        .await;
        assert_eq!(status, 404);
    }
    assert!(
        svc.app.catalog_reads() <= reads + 1,
        "{} catalog reads for 20 requests naming an unknown functionality",
        svc.app.catalog_reads() - reads
    );
    // A type added in the database is known without a restart, once the interval passed.
    tokio::time::sleep(audit_api::state::CATALOG_REREAD_INTERVAL).await;
    svc.sql("INSERT INTO auditfunctionalities (name) VALUES ('Inventory')");
    svc.sql("INSERT INTO auditeventtypes (functionalityid, name) SELECT id, 'Counted' FROM auditfunctionalities WHERE name = 'Inventory'");
    let (status, body) = Service::json(
        svc.get(&format!("{path}?functionality_name=Inventory"), Some(KEY))
            .await,
    )
    .await;
    assert_eq!((status, body), (200, json!(["Counted"])));
}

#[tokio::test]
async fn healthcheck_answers_while_every_pooled_connection_is_busy() {
    // One pooled connection, held here as a long search would hold it: the healthcheck
    // probes on its own connection, so a load balancer still sees a healthy instance.
    let svc = Service::start(&[("POOL_SIZE", "1")]).await;
    let busy = svc
        .app
        .db
        .client()
        .await
        .expect("the pool's only connection");
    let response = reqwest::Client::new()
        .get(svc.url("/api/healthcheck"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .expect("answered while the pool is exhausted");
    assert_eq!(response.status(), 200);
    // The pool really was exhausted: a search waits for it.
    let search = reqwest::Client::new()
        .get(svc.url("/api/audit-events/search?page_size=1"))
        .header("CSIQ-APIKEY", KEY)
        .timeout(std::time::Duration::from_millis(1500))
        .send()
        .await;
    assert!(
        search.is_err_and(|e| e.is_timeout()),
        "the search had to wait"
    );
    drop(busy);
}

#[tokio::test]
async fn healthcheck_is_503_when_the_database_is_unreachable() {
    let svc = Service::start(&[]).await;
    let (status, body) = Service::json(svc.get("/api/healthcheck", None).await).await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "healthy", "database": "connected"}))
    );

    // A service whose database does not listen: starts, answers 503, never 500.
    let config = common::config(
        "nowhere",
        &[(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:9/x?sslmode=disable",
        )],
    );
    let app = std::sync::Arc::new(audit_api::build_app(&config, None).await.expect("app"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, audit_api::router(app)).await;
    });
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/pyaudit/api/healthcheck"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"status": "unhealthy", "database": "unreachable"})
    );
    let response = client
        .get(format!("http://{addr}/pyaudit/api/audit-events/recent"))
        .header("CSIQ-APIKEY", KEY)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn unknown_paths_methods_and_the_docs() {
    let svc = Service::start(&[("BASE_PATH", "/audit")]).await;
    let (status, body) = Service::json(svc.get("/api/nope", Some(KEY)).await).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    let (status, body) = Service::json(svc.get("/api/audit-events/create", Some(KEY)).await).await;
    assert_eq!(
        (status, body),
        (405, json!({"detail": "Method Not Allowed"}))
    );
    let (status, doc) = Service::json(svc.get("/openapi.json", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(doc["servers"][0]["url"], "/audit");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/audit-events/create",
        "/api/audit-events/search",
        "/api/audit-events/export",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let page = svc.get("/docs/", None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page loads nothing from the internet"
    );
    let script = svc
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .expect("js");
    assert!(script.contains("/audit/openapi.json"), "{script}");
    // Swagger UI's default validator sends the document's address to validator.swagger.io
    // from any host but localhost: switched off.
    assert!(
        script.contains(r#""validatorUrl": "none""#) || script.contains(r#""validatorUrl":"none""#),
        "{script}"
    );
    assert!(!script.contains("swagger.io"), "{script}");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let svc = Service::start(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                svc.url("/api/audit-events/recent"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "csiq-apikey")
            .send()
    };
    let allowed = preflight("https://app.example.com")
        .await
        .expect("preflight");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example.net")
        .await
        .expect("preflight");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn a_common_pattern_is_found_past_rows_that_do_not_match_as_the_plain_statement_finds_it() {
    use audit_api::search::{Cursor, Page, SearchFilters, split_page};
    use audit_api::sql::{self, Selection};
    let svc = Service::start(&[]).await;
    let now = chrono::Utc::now() - chrono::Duration::minutes(1);
    let hours = chrono::Duration::hours;
    // Eight hours of catalogue updates, 40 an hour; in the third hour back, a burst of 120
    // that all match (the reverse case); on top, the newest 300 events match none of the
    // patterns below (a burst of shipments).
    let mut batch = Vec::new();
    for hour in 1..=8 {
        let mut rows = events(40, 5001, now - hours(hour));
        for (i, event) in rows.iter_mut().enumerate() {
            event["message"] = json!(format!(
                "SKU-{:06} price changed to {}.99",
                (i * 7 + hour as usize) % 30,
                i % 13
            ));
        }
        batch.extend(rows);
    }
    let mut matching_burst = events(120, 5002, now - hours(3) + chrono::Duration::minutes(30));
    for event in &mut matching_burst {
        event["message"] = json!("SKU-000001 price changed to 1.99");
    }
    batch.extend(matching_burst);
    let mut shipments = events(300, 5003, now);
    for (i, event) in shipments.iter_mut().enumerate() {
        event["message"] = json!(format!("order {i} shipped to the customer"));
    }
    batch.extend(shipments);
    for chunk in batch.chunks(500) {
        svc.post(BATCH, Some(KEY), &json!(chunk)).await;
    }

    let from = (now - hours(6)).to_rfc3339();
    let to = (now - hours(2)).to_rfc3339();
    let cases: [(&str, Option<&str>, Option<&str>); 7] = [
        ("SKU-00", None, None),
        ("SKU-0000", None, None),
        ("price changed", None, None),
        ("changed to 1.99", None, None),
        ("to 1", None, None),
        ("SKU-00", Some(&from), None),
        ("price", Some(&from), Some(&to)),
    ];
    let ids =
        |rows: &[audit_api::search::EventRecord]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    for (pattern, from_date, to_date) in cases {
        let filters = SearchFilters {
            message_pattern: Some(pattern.into()),
            from_date: from_date.and_then(audit_api::event::parse_timestamp),
            to_date: to_date.and_then(audit_api::event::parse_timestamp),
            ..SearchFilters::default()
        };
        let plain = Selection {
            filters: filters.clone(),
            ..Selection::default()
        };
        // Every trigram, and the sampled rarest two the service would ask for.
        let mut key_sets = vec![audit_api::trigram::like_trigrams(pattern).expect("trigrams")];
        if let PatternLookup::ByHour(keys) = svc.app.message_lookup(pattern).await {
            key_sets.push(keys);
        }
        // All pages of 7, by cursor: the plain statement's, then the walk and hours'.
        let mut expected = Vec::new();
        let mut page = Page::Number(1);
        loop {
            let statement = sql::select_events(&plain, Some(&page), Some(8));
            let rows = audit_api::db::query_events(&svc.app.db, &statement)
                .await
                .expect("plain");
            let (rows, next) = split_page(rows, 7);
            expected.extend(ids(&rows));
            match next {
                Some(cursor) => page = Page::After(cursor),
                None => break,
            }
        }
        assert!(!expected.is_empty(), "{pattern}: the data holds matches");
        for keys in key_sets {
            let hourly = Selection {
                filters: filters.clone(),
                message_lookup: PatternLookup::ByHour(keys.clone()),
                ..Selection::default()
            };
            let trigrams = hourly.hourly_trigrams().expect("by hour").to_vec();
            // A walk of 5 rows stops inside the shipments; of 1,000, it reads everything.
            for budget in [5, 1000] {
                let mut found = Vec::new();
                let mut page = Page::Number(1);
                loop {
                    let rows = audit_api::db::search_common_pattern(
                        &svc.app.db,
                        &hourly,
                        &trigrams,
                        &page,
                        8,
                        budget,
                    )
                    .await
                    .expect("walk and hours");
                    let (rows, next): (_, Option<Cursor>) = split_page(rows, 7);
                    found.extend(ids(&rows));
                    match next {
                        Some(cursor) => page = Page::After(cursor),
                        None => break,
                    }
                }
                assert_eq!(
                    found, expected,
                    "{pattern} from {from_date:?} to {to_date:?}, keys {keys:?}, walk of {budget}"
                );
            }
        }
    }
    // Through the API, the shipments on top: the same first page as the plain statement.
    let first = search(&svc, "message_pattern=SKU-00&page_size=50").await;
    assert_eq!(first.len(), 50);
    assert!(
        first
            .iter()
            .all(|e| e["message"].as_str().unwrap_or("").contains("SKU-00"))
    );
}
