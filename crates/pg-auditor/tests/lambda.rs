//! The Lambda handler end to end: a Secrets Manager secret (moto) in the RDS shape pointing
//! at the real PostgreSQL, reports written to S3 (moto) under the original's key names, the
//! original's response body; and the failure answers.

use devstack::{moto, postgres, unique_name};
use pg_auditor::handler::Auditor;
use pg_auditor::{Clients, Config};
use serde_json::{Value, json};

/// One invocation of the handler a cold start with `config` and `clients` builds.
/// Also returns the run's metric line, checked against the EMF specification.
async fn handle_with_metrics(
    config: &Config,
    clients: &Clients,
    event: Value,
) -> (
    Result<Value, audit_core::FunctionError>,
    Option<audit_core::metrics::EmfRecord>,
) {
    let auditor = Auditor {
        config: config.clone(),
        clients: clients.clone(),
        metrics: audit_core::metrics::MetricsOut::capture(),
    };
    let result = auditor
        .handle(lambda_runtime::LambdaEvent::new(
            event,
            lambda_runtime::Context::default(),
        ))
        .await;
    let lines = auditor.metrics.captured();
    assert!(lines.len() <= 1, "one metric line per run at most");
    let record = lines
        .first()
        .map(|l| audit_core::metrics::check_line(l).expect("valid EMF"));
    (result, record)
}

async fn handle(
    config: &Config,
    clients: &Clients,
    event: Value,
) -> Result<Value, audit_core::FunctionError> {
    handle_with_metrics(config, clients, event).await.0
}

async fn clients(aws: &devstack::AwsEnv) -> Clients {
    let sdk = aws.sdk_config().await;
    Clients {
        s3: aws.s3_client().await,
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        sdk,
    }
}

#[tokio::test]
async fn a_scheduled_run_reads_the_secret_and_writes_the_three_reports_to_s3() {
    let pg = postgres();
    let name = unique_name("lambda").replace('-', "_");
    pg.psql("postgres", &format!("CREATE DATABASE {name}"))
        .expect("db");
    pg.psql(
        &name,
        "CREATE TABLE orders (id int, created_by int); INSERT INTO orders VALUES (1, 1), (2, 2);",
    )
    .expect("fixture");
    let aws = moto().isolated();
    let clients = clients(&aws).await;
    let bucket = unique_name("reports");
    aws.create_bucket(&clients.s3, &bucket)
        .await
        .expect("bucket");
    let secret = clients
        .secrets
        .create_secret()
        .name(unique_name("db"))
        .secret_string(
            json!({"engine": "postgres", "username": "postgres", "password": "unused",
                   "host": "127.0.0.1", "port": pg.port(), "dbname": name})
            .to_string(),
        )
        .send()
        .await
        .expect("secret");
    let env = audit_core::Env::from_pairs([
        ("DB_SECRET_ARN", secret.arn().expect("arn")),
        ("DB_SSLMODE", "disable"),
        // The test server has no TLS: the explicit override a secret's password needs.
        ("DB_ALLOW_UNVERIFIED_TLS", "true"),
        ("S3_BUCKET", bucket.as_str()),
    ]);
    let config = Config::from_env(&env).expect("config");
    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let (response, metrics) = handle_with_metrics(&config, &clients, scheduled).await;
    let response = response.expect("handled");
    assert_eq!(response["statusCode"], 200);
    let metrics = metrics.expect("a run writes its metrics");
    assert_eq!(metrics.dimensions["function"], "pg-auditor");
    assert_eq!(
        (metrics.total("TablesAudited"), metrics.total("ReadErrors")),
        (1.0, 0.0)
    );
    assert_eq!(metrics.total("AuditFailures"), 0.0);
    assert!(metrics.total("AuditDurationSeconds") > 0.0);
    let body = &response["body"];
    for key in [
        "message",
        "timestamp",
        "database",
        "session_user",
        "summary",
        "validation",
        "reports",
    ] {
        assert!(body.get(key).is_some(), "body lacks {key}: {body}");
    }
    assert_eq!(body["database"], name.as_str());
    assert_eq!(body["summary"]["total_tables"], 1);
    assert_eq!(body["summary"]["total_records"], 2);
    let json_url = body["reports"]["detailed_json"].as_str().expect("url");
    let stamp = json_url
        .rsplit("audit_")
        .next()
        .and_then(|s| s.strip_suffix(".json"))
        .expect("stamp");
    assert!(
        stamp.len() == 15 && stamp.as_bytes()[8] == b'_',
        "YYYYMMDD_HHMMSS: {stamp}"
    );
    assert_eq!(
        json_url,
        format!("s3://{bucket}/database_audits/audit_{stamp}.json")
    );
    assert_eq!(
        body["reports"]["tables_csv"],
        format!("s3://{bucket}/database_audits/tables_summary_{stamp}.csv")
    );

    let report = devstack::AwsEnv::object_bytes(
        &clients.s3,
        &bucket,
        &format!("database_audits/audit_{stamp}.json"),
    )
    .await
    .expect("json");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("report");
    assert_eq!(report["tables"][0]["table"], "orders");
    let csv = devstack::AwsEnv::object_bytes(
        &clients.s3,
        &bucket,
        &format!("database_audits/tables_summary_{stamp}.csv"),
    )
    .await
    .expect("csv");
    assert!(String::from_utf8_lossy(&csv).contains("public,orders,2,2,True,"));
    let html = devstack::AwsEnv::object_bytes(
        &clients.s3,
        &bucket,
        &format!("database_audits/audit_{stamp}.html"),
    )
    .await
    .expect("html");
    assert!(String::from_utf8_lossy(&html).starts_with("<!doctype html>"));

    // A report is never replaced: the same stamp cannot be written twice.
    let files = pg_auditor::output::ReportFiles {
        json_name: format!("audit_{stamp}.json"),
        csv_name: "x.csv".into(),
        html_name: "x.html".into(),
        json: pg_auditor::output::ReportFile::from_bytes(b"{}").expect("temporary file"),
        csv: pg_auditor::output::ReportFile::from_bytes(b"").expect("temporary file"),
        html: pg_auditor::output::ReportFile::from_bytes(b"").expect("temporary file"),
    };
    let refused =
        pg_auditor::output::write_s3(&clients.s3, &bucket, "database_audits/", &files).await;
    assert!(
        refused
            .expect_err("overwrite")
            .to_string()
            .contains(&format!("audit_{stamp}.json"))
    );
    let unchanged = devstack::AwsEnv::object_bytes(
        &clients.s3,
        &bucket,
        &format!("database_audits/audit_{stamp}.json"),
    )
    .await
    .expect("json");
    assert_ne!(unchanged, b"{}");
}

#[tokio::test]
async fn failures_answer_as_the_original_when_invoked_and_fail_the_invocation_when_scheduled() {
    let aws = moto().isolated();
    let clients = clients(&aws).await;
    // Nothing listens on port 1.
    let env = audit_core::Env::from_pairs([
        (
            "DATABASE_URL",
            "postgresql://postgres@127.0.0.1:1/none?sslmode=disable",
        ),
        ("S3_BUCKET", "unused"),
    ]);
    let config = Config::from_env(&env).expect("config");
    let response = handle(&config, &clients, json!({}))
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 500);
    assert!(
        response["body"]["error"]
            .as_str()
            .expect("error")
            .contains("cannot connect")
    );
    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    let (error, metrics) = handle_with_metrics(&config, &clients, scheduled).await;
    let error = error.expect_err("scheduled failure");
    assert_eq!(error.error_type(), "Retryable.AuditFailed");
    let metrics = metrics.expect("a failed run writes its metrics too");
    assert_eq!(metrics.total("AuditFailures"), 1.0);

    let error = handle(&config, &clients, json!({"count_mode": "fast"}))
        .await
        .expect_err("bad event");
    assert!(error.message.contains("count_mode"), "{error}");
    let no_bucket = Config::from_env(&audit_core::Env::from_pairs([(
        "DATABASE_URL",
        "postgresql://h/db",
    )]))
    .expect("config");
    let error = handle(&no_bucket, &clients, json!({}))
        .await
        .expect_err("no bucket");
    assert!(error.message.contains("S3_BUCKET"), "{error}");
}
