//! `make demo`: the Aurora audit-log backup and the DynamoDB change audit trail, run locally end
//! to end with the real binaries.
//!
//! A fake Aurora cluster (two instances writing striped audit logs, plus an excluded instance
//! and a PostgreSQL instance) lives in moto and the RDS log-file double. Each poll sends a
//! scheduled event to db-scanner; the dev stack then delivers the scan queue to log-detector
//! and the tracking table's stream to log-downloader the way Lambda's event source mappings do
//! (honouring partial batch responses). Files rotate between polls; the second poll copies only
//! what changed. The demo ends with what is in S3 and whether each copy matches its source.
//!
//! Then the seed's Orders example: an `Orders` table with a stream; order 101 goes OPEN,
//! PICKEDUP, DELIVERED, RETURNED, order 102 is created and deleted. stream-to-firehose delivers
//! the stream to a Firehose delivery stream (moto writes each call to S3), and the demo reads
//! the audit lines back and prints order 101's history.
//!
//! Last, safe record updates: table-updater updates the seed's user record, refuses a failed
//! condition (412), a missing record (404) and an invalid payload (400), answers a retried
//! request once, and the demo prints the audit log those requests left.
//!
//! Finally, the database structure audit: a PostgreSQL database on the throwaway cluster with
//! the versioning tables, audit columns and triggers, awkward table names, a partitioned table
//! and a 1M-row table; pg-auditor (its CLI) reports on it to a folder and to S3 on moto.

use devstack::audit_logs::AuroraAuditLogs;
use devstack::backup::BackupStack;
use devstack::event_sources::{SqsSource, StreamSource};
use devstack::{LocalLambda, function_binary, moto};
use serde_json::json;
use sha2::Digest;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

const QUIET: Duration = Duration::from_millis(1500);

struct Demo {
    stack: BackupStack,
    scanner: LocalLambda,
    detector: LocalLambda,
    downloader: LocalLambda,
    queue: SqsSource,
    stream: StreamSource,
}

impl Demo {
    async fn poll(&mut self, round: u32) -> Result<(), String> {
        let event = json!({
            "version": "0", "id": format!("demo-{round}"), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": "2026-11-22T10:00:00Z",
            "region": self.stack.aws.region, "resources": ["arn:aws:events:::rule/auditkit-scan"], "detail": {}
        });
        let summary = self
            .scanner
            .invoke(&event)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "  db-scanner: found {}, queued {} {}, skipped: {} by engine, {} excluded, {} not available",
            summary["found"],
            summary["queued"],
            summary["queued_instances"],
            summary["skipped_by_engine"],
            summary["skipped_excluded"],
            summary["skipped_not_available"]
        );
        while let Some(d) = self.queue.poll_once(&self.detector).await? {
            println!(
                "  log-detector: {} message(s), {} reported for redelivery",
                d.records, d.failed
            );
        }
        while let Some(d) = self.stream.poll_once(&self.downloader).await? {
            println!(
                "  log-downloader: {} stream record(s), {} reported for retry",
                d.records, d.failed
            );
        }
        Ok(())
    }
}

async fn run() -> Result<(), String> {
    println!("== auditkit demo: Aurora audit-log backup, end to end on the local stack\n");
    println!(
        "Starting the local stack (moto, installed into .venv on first run; the RDS log-file double) ..."
    );
    let stack = BackupStack::start().await?;
    println!(
        "  moto {} (region {}), RDS endpoint {}",
        moto().endpoint(),
        stack.aws.region,
        stack.rds_logs.endpoint()
    );
    println!(
        "  tracking table {}, backup bucket {}, scan queue {}",
        stack.table, stack.bucket, stack.queue_url
    );

    let sdk = stack.aws.sdk_config().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    rds.create_db_cluster()
        .db_cluster_identifier("orders-aurora")
        .engine("aurora-mysql")
        .master_username("admin")
        .master_user_password("demo-password-1")
        .send()
        .await
        .map_err(|x| e(&x))?;
    for (id, cluster, engine) in [
        ("orders-writer", Some("orders-aurora"), "aurora-mysql"),
        ("orders-reader", Some("orders-aurora"), "aurora-mysql"),
        ("orders-sandbox", Some("orders-aurora"), "aurora-mysql"),
        ("reports-pg", None, "postgres"),
    ] {
        let mut request = rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.r6g.large");
        request = match cluster {
            Some(c) => request.db_cluster_identifier(c),
            None => request
                .allocated_storage(20)
                .master_username("admin")
                .master_user_password("demo-password-1"),
        };
        request.send().await.map_err(|x| e(&x))?;
    }
    println!(
        "  fake cluster orders-aurora: orders-writer, orders-reader, orders-sandbox (excluded); reports-pg (postgres)\n"
    );

    let mut writer = AuroraAuditLogs::new(
        &stack.rds_logs.instance_dir("orders-writer"),
        "orders-writer",
        40_000,
    )
    .map_err(|x| e(&x))?;
    let mut reader = AuroraAuditLogs::new(
        &stack.rds_logs.instance_dir("orders-reader"),
        "orders-reader",
        40_000,
    )
    .map_err(|x| e(&x))?;

    let scanner = LocalLambda::builder(function_binary("db-scanner")?)
        .envs(stack.function_env())
        .env("QUEUE_URL", &stack.queue_url)
        .env("EXCLUDE_INSTANCES", "orders-sandbox")
        .start()
        .await?;
    // Demo timing: a file counts as no longer written after 1 s (default 5 min).
    let detector = stack.start_detector(&[("QUIET_PERIOD", "1s")]).await?;
    let downloader = stack
        .start_downloader(&[("BACKUP_PREFIX", "audit-logs")])
        .await?;
    println!(
        "Functions running under the local Lambda Runtime API: db-scanner, log-detector, log-downloader\n"
    );
    let queue = stack.scan_queue_source();
    let stream = stack.tracking_stream_source().await?;
    let mut demo = Demo {
        stack,
        scanner,
        detector,
        downloader,
        queue,
        stream,
    };

    println!(
        "Poll 1: the instances have written 1,200 audit records each (files rotated on the way)"
    );
    writer.append(1200).map_err(|x| e(&x))?;
    reader.append(1200).map_err(|x| e(&x))?;
    tokio::time::sleep(QUIET).await;
    demo.poll(1).await?;
    let after_first: BTreeSet<String> = demo
        .stack
        .objects()
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();

    println!(
        "\nPoll 2: orders-writer writes 1,000 more records (its files fill and rotate again); orders-reader is idle"
    );
    writer.append(1000).map_err(|x| e(&x))?;
    tokio::time::sleep(QUIET).await;
    demo.poll(2).await?;

    let objects = demo.stack.objects().await?;
    println!("\nCopied by poll 2 (only what changed):");
    for o in objects.iter().filter(|o| !after_first.contains(&o.key)) {
        println!(
            "  {} ({} bytes)",
            o.metadata["source-file"], o.metadata["source-size"]
        );
    }

    println!("\nWhat is in S3 (uncompressed content checked against the file on the instance):");
    println!(
        "  {:<14} {:<38} {:>8}  {:<10} S3 key",
        "instance", "file", "size", "checksum"
    );
    let mut all_match = true;
    for o in &objects {
        let instance = &o.metadata["source-instance"];
        let file = &o.metadata["source-file"];
        let source = std::fs::read(demo.stack.rds_logs.instance_dir(instance).join(file))
            .unwrap_or_default();
        let content_sha = hex::encode(sha2::Sha256::digest(&o.content));
        // A file that grew after its copy matches as a prefix: the copy is the file as it was.
        let verdict =
            if content_sha == o.metadata["source-sha256"] && source.starts_with(&o.content) {
                if source.len() == o.content.len() {
                    "match"
                } else {
                    "prefix"
                }
            } else {
                all_match = false;
                "MISMATCH"
            };
        println!(
            "  {instance:<14} {file:<38} {:>8}  {verdict:<10} {}",
            o.content.len(),
            o.key
        );
    }
    println!(
        "\n{} objects; {}",
        objects.len(),
        if all_match {
            "every copy is byte-exact"
        } else {
            "SOME COPIES DIFFER"
        }
    );
    if !all_match {
        return Err("a copy differs from its source".into());
    }
    orders_audit_trail(&demo.stack.aws).await?;
    safe_record_updates(&demo.stack.aws).await?;
    database_structure_audit(&demo.stack.aws).await?;
    audit_event_service().await?;
    println!("\nDone. Everything the demo started stops now.");
    Ok(())
}

/// The seed's Orders example through stream-to-firehose.
async fn orders_audit_trail(aws: &devstack::AwsEnv) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{AttributeValue as Av, StreamViewType};
    use devstack::change_audit::ChangeAuditStack;

    println!("\n== DynamoDB change audit trail: the Orders table\n");
    let stack = ChangeAuditStack::create(aws, "demo").await?;
    let stream_arn = stack
        .create_audited_table("Orders", "orderId", StreamViewType::NewAndOldImages)
        .await?;
    println!(
        "  table Orders (stream NEW_AND_OLD_IMAGES) -> stream-to-firehose -> Firehose {} -> s3://{}/dynamodb-changes/",
        stack.delivery_stream, stack.bucket
    );
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let s = |v: &str| Av::S(v.to_owned());
    let db = &stack.dynamodb;
    // The seed's item, then the state changes it walks through.
    db.put_item()
        .table_name("Orders")
        .item("orderId", s("101"))
        .item("state", s("OPEN"))
        .item("lastUpdatedDate", Av::N("1705337067".into()))
        .send()
        .await
        .map_err(|x| e(&x))?;
    println!("  put order 101: state OPEN");
    for (state, at) in [
        ("PICKEDUP", 1705340667),
        ("DELIVERED", 1705351467),
        ("RETURNED", 1705430667),
    ] {
        db.update_item()
            .table_name("Orders")
            .key("orderId", s("101"))
            .update_expression("SET #s = :s, lastUpdatedDate = :t")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":s", s(state))
            .expression_attribute_values(":t", Av::N(at.to_string()))
            .send()
            .await
            .map_err(|x| e(&x))?;
        println!("  update order 101: state {state}");
    }
    db.put_item()
        .table_name("Orders")
        .item("orderId", s("102"))
        .item("state", s("OPEN"))
        .item("lastUpdatedDate", Av::N("1705337100".into()))
        .send()
        .await
        .map_err(|x| e(&x))?;
    db.delete_item()
        .table_name("Orders")
        .key("orderId", s("102"))
        .send()
        .await
        .map_err(|x| e(&x))?;
    println!("  put order 102, then delete it\n");

    let forwarder = stack.start_forwarder(&[]).await?;
    let mut source = stack.stream_source(&stream_arn).await?;
    let mut records = 0;
    while let Some(d) = source.poll_once(&forwarder).await? {
        println!(
            "  stream-to-firehose: {} stream record(s), {} reported for retry",
            d.records, d.failed
        );
        records += d.records;
    }

    let objects = stack.delivered().await?;
    let mut lines: Vec<serde_json::Value> = objects.iter().flat_map(|o| o.lines.clone()).collect();
    // Stream order: sequence numbers compare by length, then as text.
    lines.sort_by_key(|l| {
        let n = l["sequence_number"].as_str().unwrap_or_default().to_owned();
        (n.len(), n)
    });
    let mut ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["event_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    println!(
        "\nIn S3: {} object(s), {} audit line(s) for {records} stream record(s), {} distinct event id(s)",
        objects.len(),
        lines.len(),
        ids.len()
    );
    if let Some(first) = objects.first() {
        println!("  {}", first.key);
    }

    println!("\nOrder 101's history (what an Athena item-history query returns):");
    println!(
        "  {:<25} {:<7} {:<10} {:<10} changed",
        "time (UTC)", "event", "from", "to"
    );
    for line in lines.iter().filter(|l| l["keys"]["orderId"] == "101") {
        let state = |image: &str| line[image]["state"].as_str().unwrap_or("-").to_owned();
        let changed = &line["changed_attributes"];
        let changed = if changed.is_null() {
            "(new item)".to_owned()
        } else {
            let names = |kind: &str| {
                changed[kind]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            format!("modified: {}", names("modified"))
        };
        println!(
            "  {:<25} {:<7} {:<10} {:<10} {changed}",
            line["approximate_creation_time"].as_str().unwrap_or("-"),
            line["event_name"].as_str().unwrap_or("-"),
            state("old_image"),
            state("new_image"),
        );
    }
    if let Some(removal) = lines.iter().find(|l| l["event_name"] == "REMOVE") {
        println!(
            "\nOrder 102's deletion: REMOVE, ttl_expired {}, last state {}",
            removal["ttl_expired"], removal["old_image"]["state"]
        );
    }
    if let Some(example) = objects
        .first()
        .and_then(|o| o.raw.split(|b| *b == b'\n').next())
    {
        println!(
            "\nOne audit line as stored:\n  {}",
            String::from_utf8_lossy(example)
        );
    }
    if lines.len() != records || ids.len() != records {
        return Err(format!(
            "{records} stream records but {} lines with {} distinct event ids",
            lines.len(),
            ids.len()
        ));
    }
    Ok(())
}

/// The seed's table-updater example, and the answers a caller can get.
async fn safe_record_updates(aws: &devstack::AwsEnv) -> Result<(), String> {
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
        "  tables users (user-123: Jane Roe, pending) and audit_logs; ENABLE_AUDIT_LOG=false as in the seed\n"
    );
    let updater = LocalLambda::builder(function_binary("table-updater")?)
        .envs(aws.vars())
        .env("TABLE_NAME", "users")
        .env("ENABLE_AUDIT_LOG", "false")
        .start()
        .await?;
    let requests = [
        (
            "the seed's update, with enable_logging",
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

/// The database the structure audit reads: the seed's versioning system (one family without
/// an active version, one with two), audited tables with and without the trigger, names that
/// broke the original, a partitioned table and a table of 1M rows.
const AUDITED_DATABASE: &str = r#"
CREATE FUNCTION set_audit_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TABLE developer (id serial PRIMARY KEY, email text, display_name text,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
INSERT INTO developer (email, display_name, created_by) VALUES ('system@example.org', 'System', 1), ('ada@example.org', 'Ada', 1);
CREATE TABLE version_family (id serial PRIMARY KEY, short_code text UNIQUE, label text, is_active boolean DEFAULT true,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE version (id serial PRIMARY KEY, version_family_id int REFERENCES version_family(id), version_number text,
  is_active boolean, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE domain_family_map (schema_name text DEFAULT 'public', table_name text, version_family_id int,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int, PRIMARY KEY (schema_name, table_name));
INSERT INTO version_family (short_code, label) VALUES ('theme', 'Themes'), ('scenario', 'Scenarios'), ('geo', 'Geography');
INSERT INTO version (version_family_id, version_number, is_active) VALUES (1, '1.0', true), (2, '1.0', true), (2, '2.0', true), (3, '0.1', false);
INSERT INTO domain_family_map (table_name, version_family_id) VALUES ('theme', 1), ('scenario', 2), ('retired_table', 2);
CREATE TABLE theme (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TRIGGER theme_audit BEFORE INSERT OR UPDATE ON theme FOR EACH ROW EXECUTE FUNCTION set_audit_fields();
INSERT INTO theme (name, created_by) SELECT 'theme ' || g, 1 + g % 2 FROM generate_series(1, 40) g;
CREATE TABLE scenario (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
INSERT INTO scenario (name, created_by) SELECT 'scenario ' || g, 1 FROM generate_series(1, 12) g;
CREATE TABLE "Order Lines" (id int, "Qty" int, api_token text);
INSERT INTO "Order Lines" SELECT g, g, md5(g::text) FROM generate_series(1, 25) g;
CREATE TABLE "we""ird; name" (id int);
INSERT INTO "we""ird; name" VALUES (1), (2);
CREATE TABLE measurements (id bigint, taken date NOT NULL, value numeric) PARTITION BY RANGE (taken);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT g, date '2025-03-01' + (g % 500), g / 7.0 FROM generate_series(1, 60000) g;
CREATE TABLE readings (id bigint PRIMARY KEY, sensor int, created_at timestamptz DEFAULT now(), created_by int);
INSERT INTO readings SELECT g, g % 100, now() - g * interval '1 second', 1 + g % 4 FROM generate_series(1, 1000000) g;
CREATE TABLE seed_regions (id int, name text);
ANALYZE;
"#;

/// The seed's database audit: pg-auditor's CLI on a local database, to a folder and to S3.
async fn database_structure_audit(aws: &devstack::AwsEnv) -> Result<(), String> {
    println!("\n== Database structure audit: pg-auditor\n");
    let pg = devstack::postgres();
    let database = devstack::unique_name("demo_audit").replace('-', "_");
    println!("  creating database {database} on the local PostgreSQL (1M-row table included) ...");
    pg.psql("postgres", &format!("CREATE DATABASE {database}"))?;
    pg.psql(&database, AUDITED_DATABASE)?;
    let s3 = aws.s3_client().await;
    let bucket = devstack::unique_name("db-audit-reports");
    aws.create_bucket(&s3, &bucket).await?;
    let out = devstack::scratch_dir("pg-auditor-reports")?;
    let url = format!("{}?sslmode=disable", pg.url(&database));
    println!(
        "  $ pg-auditor --database-url {url} --out {} --s3-bucket {bucket} \\\n      --expected-versioned-tables theme,scenario,geo_area --expected-seed-tables seed_regions,theme,regions\n",
        out.display()
    );
    let status = std::process::Command::new(function_binary("pg-auditor")?)
        .envs(aws.vars())
        .args(["--database-url", &url, "--out"])
        .arg(&out)
        .args([
            "--s3-bucket",
            &bucket,
            "--expected-versioned-tables",
            "theme,scenario,geo_area",
            "--expected-seed-tables",
            "seed_regions,theme,regions",
        ])
        .status()
        .map_err(|e| format!("pg-auditor: {e}"))?;
    if !status.success() {
        return Err(format!("pg-auditor failed: {status}"));
    }
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("database_audits/")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    println!("\n  in S3:");
    for object in listed.contents() {
        println!(
            "    s3://{bucket}/{} ({} bytes)",
            object.key().unwrap_or_default(),
            object.size().unwrap_or_default()
        );
    }
    println!(
        "  open the HTML report in a browser: {}/audit_*.html",
        out.display()
    );
    Ok(())
}

/// The seed's audit-event service: `audit-api serve` on the local PostgreSQL, driven over
/// HTTP as its clients do.
async fn audit_event_service() -> Result<(), String> {
    println!("\n== Audit-event service: audit-api\n");
    const KEY: &str = "demo-api-key-0123456789";
    let server = devstack::audit_api::AuditApiServer::start(KEY, &[])?;
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
    // The seed's example event, timestamped now (the seed's 2025 date is past retention).
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
        "  POST /api/audit-events/create (the seed's example) -> {status}\n    {}",
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
    Ok(())
}

/// `secs` seconds since the epoch, RFC 3339 UTC.
fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
