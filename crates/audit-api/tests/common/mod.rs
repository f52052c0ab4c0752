//! The service in-process against devstack's throwaway PostgreSQL, over real HTTP.
#![allow(dead_code)]

use audit_api::Config;
use audit_core::Env;
use devstack::{postgres, unique_name};
use serde_json::{Value, json};
use std::sync::Arc;

pub const KEY: &str = "test-key-0123456789abcdef";
/// Scoped to companies 7001 and 7002.
pub const SCOPED_KEY: &str = "scoped-key-0123456789abcdef";

/// A running service on its own database.
pub struct Service {
    pub base: String,
    pub database: String,
    pub app: Arc<audit_api::state::App>,
    pub config: Config,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

/// The original service's example event, dated yesterday at 10:30 UTC (the original service's date ages out of the
/// retention window as time passes).
pub fn example_event() -> Value {
    json!({
        "event_timestamp": yesterday_at("10:30:00Z"),
        "functionality": "Authenticate",
        "event_type": "Login",
        "store_id": 101,
        "company_id": 5001,
        "user": "jdoe",
        "message": "User logged in successfully",
        "status": "Success",
        "additional_data": {"ip": "192.168.1.10", "browser": "Chrome"}
    })
}

/// A fresh, empty database on the shared cluster.
pub fn fresh_database() -> String {
    let name = unique_name("api").replace('-', "_");
    postgres()
        .psql("postgres", &format!("CREATE DATABASE {name}"))
        .expect("create database");
    name
}

pub fn config(database: &str, extra: &[(&str, &str)]) -> Config {
    let url = format!("{}?sslmode=disable", postgres().url(database));
    let mut pairs: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url),
        ("API_KEYS".into(), format!("{KEY},{SCOPED_KEY}:7001:7002")),
        ("POOL_SIZE".into(), "8".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push(((*k).into(), (*v).into()));
    }
    Config::from_env(&Env::from_pairs(pairs)).expect("config")
}

impl Service {
    pub async fn start(extra: &[(&str, &str)]) -> Service {
        let database = fresh_database();
        Service::start_on(&database, extra).await
    }

    pub async fn start_on(database: &str, extra: &[(&str, &str)]) -> Service {
        Service::start_with(database, extra, None).await
    }

    /// A service on `database` with AWS clients (the anchor bucket, the S3 archive).
    pub async fn start_with(
        database: &str,
        extra: &[(&str, &str)],
        clients: Option<&audit_api::Clients>,
    ) -> Service {
        let config = config(database, extra);
        let app = Arc::new(audit_api::build_app(&config, clients).await.expect("app"));
        app.ensure_ready().await.expect("migrations");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = audit_api::router(Arc::clone(&app));
        let limits = config.server;
        let server = tokio::spawn(audit_api::server::serve(
            listener,
            router,
            limits,
            std::future::pending(),
        ));
        Service {
            base: format!("http://{addr}{}", config.base_path),
            database: database.to_owned(),
            app,
            config,
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(key) = key {
            request = request.header("CSIQ-APIKEY", key);
        }
        request.send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.header("CSIQ-APIKEY", key);
        }
        request.send().await.expect("POST")
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("CSIQ-APIKEY", KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// Status and JSON body.
    pub async fn json(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub fn sql(&self, sql: &str) -> String {
        postgres().psql(&self.database, sql).expect("psql")
    }

    pub fn count_events(&self) -> i64 {
        self.sql("SELECT count(*) FROM auditevents")
            .trim()
            .parse()
            .expect("count")
    }
}

/// `n` events of company `company`, one second apart, newest at `newest`.
pub fn events(n: usize, company: i64, newest: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let at = newest - chrono::Duration::seconds(i as i64);
            json!({
                "event_timestamp": at.to_rfc3339(),
                "functionality": if i % 2 == 0 { "Authenticate" } else { "Price Management" },
                "event_type": if i % 2 == 0 { "Login" } else { "Item updated" },
                "store_id": 100 + (i % 5) as i64,
                "company_id": company,
                "user": format!("user{}", i % 7),
                "message": format!("event number {i}"),
                "status": if i % 3 == 0 { "Failed" } else { "Success" },
            })
        })
        .collect()
}

/// An S3 archive file (gzip JSON lines), decompressed.
pub async fn archive_text(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let gz = devstack::AwsEnv::object_bytes(s3, bucket, key)
        .await
        .expect("archive object");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut text)
        .expect("gzip");
    text
}

/// Noon UTC on a date: "now" for a maintenance run.
pub fn at(y: i32, m: u32, d: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone as _;
    chrono::Utc
        .with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("date")
}

/// Yesterday's date (UTC) with a time: `2026-11-22T10:30:00Z`.
pub fn yesterday_at(time: &str) -> String {
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    format!("{day}T{time}")
}

/// A function URL's GET event (payload format 2.0) for `path?query`, with the full key.
pub fn function_url_get(path: &str, query: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"csiq-apikey": KEY},
        "requestContext": {
            "accountId": "123456789012", "apiId": "url", "domainName": "x.lambda-url.us-east-1.on.aws",
            "domainPrefix": "x", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "isBase64Encoded": false
    })
}

/// SQL that appends `n` events of company 7 through the chain's append function, one
/// millisecond apart going back from now, each message `message_len` characters long: bulk
/// data for exports without `n` HTTP requests.
pub fn append_events_sql(n: u32, message_len: usize) -> String {
    format!(
        "SELECT count(*) FROM (
           SELECT array_agg((now() - i * interval '1 millisecond')::text ORDER BY i) AS ts,
                  array_agg(1 ORDER BY i) AS f, array_agg(1 ORDER BY i) AS t,
                  array_agg(101::bigint ORDER BY i) AS store, array_agg(7::bigint ORDER BY i) AS company,
                  array_agg('user' || (i % 100) ORDER BY i) AS u,
                  array_agg(rpad('event ' || i || ' ', {message_len}, 'x') ORDER BY i) AS m,
                  array_agg('Success'::text ORDER BY i) AS st,
                  array_agg(jsonb_build_object('n', i)::text ORDER BY i) AS d
           FROM generate_series(1, {n}) AS i) a,
         LATERAL public.audit_api_append_events(a.ts, a.f, a.t, a.store, a.company, a.u, a.m, a.st, a.d)"
    )
}

/// The real `audit-api` binary under devstack's local Runtime API, on `database` with the
/// full key, `envs` added, cold start awaited. `binary` is `env!("CARGO_BIN_EXE_audit-api")`
/// (only test and bench targets know it).
pub async fn local_function(
    binary: &str,
    database: &str,
    envs: &[(&str, &str)],
    timeout: std::time::Duration,
) -> devstack::LocalLambda {
    let lambda = devstack::LocalLambda::builder(binary)
        .env(
            "DATABASE_URL",
            &format!("{}?sslmode=disable", postgres().url(database)),
        )
        .env("API_KEYS", &format!("{KEY},{SCOPED_KEY}:7001:7002"))
        .env("LOG_LEVEL", "warn")
        .envs(envs.iter().copied())
        .timeout(timeout)
        .start()
        .await
        .expect("start audit-api");
    lambda
        .wait_ready(std::time::Duration::from_secs(30))
        .await
        .expect("cold start");
    lambda
}
