//! pg-auditor against a real PostgreSQL (devstack's throwaway cluster): the report contract,
//! the versioning checks, the three count modes, awkward names, a table that times out, the
//! read-only guarantee, redaction; and the Lambda handler writing to S3 on moto.

use devstack::{postgres, unique_name};
use pg_auditor::audit::{self, open_session};
use pg_auditor::connect::{Target, parse_target, tls_config};
use pg_auditor::report::{AuditReport, Method, TableEntry};
use pg_auditor::{CountMode, Settings, settings::TableName};
use std::time::Duration;

/// A fresh database on the shared cluster, set up with `sql`.
fn database(sql: &str) -> (String, Target) {
    let pg = postgres();
    let name = unique_name("audit").replace('-', "_");
    pg.psql("postgres", &format!("CREATE DATABASE {name}"))
        .expect("create database");
    pg.psql(&name, sql).expect("fixture");
    let url = format!("{}?sslmode=disable", pg.url(&name));
    let target = parse_target(&url).expect("url");
    (name, target)
}

/// The database `name` as the login role `role` (a fixture made it).
fn login_as(role: &str, name: &str) -> Target {
    let url = format!(
        "postgresql://{role}@127.0.0.1:{}/{name}?sslmode=disable",
        postgres().port()
    );
    parse_target(&url).expect("url")
}

async fn run(target: &Target, settings: &Settings) -> AuditReport {
    let tls = tls_config(target).expect("tls");
    audit::run(
        target,
        &tls,
        settings,
        "2026-01-01T00:00:00+00:00".to_owned(),
    )
    .await
    .expect("audit")
}

fn entry<'a>(report: &'a AuditReport, schema: &str, table: &str) -> &'a TableEntry {
    report
        .tables
        .iter()
        .find(|t| t.schema == schema && t.table == table)
        .unwrap_or_else(|| panic!("{schema}.{table} not in the report"))
}

const VERSIONED_SCHEMA: &str = r#"
CREATE FUNCTION set_audit_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TABLE developer (id serial PRIMARY KEY, email text, display_name text,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE version_family (id serial PRIMARY KEY, short_code text UNIQUE, label text,
  description text, is_active boolean DEFAULT true, created_at timestamptz DEFAULT now(),
  updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE version (id serial PRIMARY KEY, version_family_id int REFERENCES version_family(id)
  ON DELETE CASCADE, version_number text, is_active boolean, created_at timestamptz DEFAULT now(),
  updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE domain_family_map (schema_name text DEFAULT 'public', table_name text,
  version_family_id int, created_at timestamptz DEFAULT now(), updated_at timestamptz,
  created_by int, updated_by int, PRIMARY KEY (schema_name, table_name));
INSERT INTO developer (email, display_name, created_by) VALUES ('system@example.org', 'System', 1);
INSERT INTO version_family (short_code, label) VALUES ('theme', 'Themes'), ('scenario', 'Scenarios'), ('geo', 'Geography');
INSERT INTO version (version_family_id, version_number, is_active) VALUES
  (1, '1.0', true), (2, '1.0', true), (2, '2.0', true), (3, '0.9', false);
INSERT INTO domain_family_map (table_name, version_family_id) VALUES ('theme', 1), ('stray', 2);
CREATE TABLE theme (id serial PRIMARY KEY, name text NOT NULL CHECK (name <> ''), amount numeric(12,2),
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int,
  UNIQUE (name, amount));
CREATE TRIGGER theme_audit BEFORE INSERT OR UPDATE ON theme FOR EACH ROW EXECUTE FUNCTION set_audit_fields();
INSERT INTO theme (name, amount, created_by) SELECT 'n' || g, g, 1 + g % 2 FROM generate_series(1, 50) g;
CREATE TABLE system_rows (id int, created_by int);
INSERT INTO system_rows SELECT g, 1 FROM generate_series(1, 5) g;
CREATE SCHEMA geo;
CREATE TABLE geo.region (id int PRIMARY KEY, created_by int);
CREATE INDEX region_created_by ON geo.region (created_by);
CREATE FUNCTION geo.area(r int) RETURNS numeric LANGUAGE sql AS 'SELECT 1.0';
"#;

#[tokio::test]
async fn the_report_keeps_the_contract_of_keys_and_columns() {
    let (_, target) = database(VERSIONED_SCHEMA);
    let settings = Settings {
        expected_seed_tables: vec![
            TableName::parse("theme", "public"),
            TableName::parse("absent", "public"),
        ],
        ..Settings::default()
    };
    let report = run(&target, &settings).await;
    assert_eq!(
        report.audit_settings.connections, 3,
        "the snapshot was exported and shared by the parallel connections"
    );
    let files = pg_auditor::output::render(&report, "20260101_000000").expect("render");
    assert_eq!(files.json_name, "audit_20260101_000000.json");
    assert_eq!(files.csv_name, "tables_summary_20260101_000000.csv");
    let json: serde_json::Value =
        serde_json::from_slice(&files.json.to_vec().expect("read")).expect("json");
    let keys = |value: &serde_json::Value| -> Vec<String> {
        value.as_object().expect("object").keys().cloned().collect()
    };
    let has_all = |value: &serde_json::Value, expected: &[&str]| {
        let present = keys(value);
        for key in expected {
            assert!(
                present.iter().any(|k| k == key),
                "missing {key} in {present:?}"
            );
        }
    };
    has_all(
        &json,
        &[
            "audit_timestamp",
            "database_info",
            "versioning_system",
            "indexes",
            "foreign_keys",
            "check_constraints",
            "unique_constraints",
            "triggers",
            "functions",
            "tables",
            "validation",
        ],
    );
    has_all(
        &json["database_info"],
        &[
            "database_name",
            "current_user",
            "session_user",
            "postgresql_version",
        ],
    );
    let versioning = &json["versioning_system"];
    has_all(
        versioning,
        &[
            "versioning_tables_exist",
            "version_families",
            "versions",
            "domain_mappings",
            "developers",
            "active_versions",
            "validation",
        ],
    );
    has_all(
        &versioning["versioning_tables_exist"],
        &[
            "version_family",
            "version",
            "domain_family_map",
            "developer",
        ],
    );
    has_all(
        &versioning["versioning_tables_exist"]["version"],
        &["exists", "count"],
    );
    has_all(
        &versioning["validation"],
        &[
            "families_without_active_version",
            "families_with_multiple_active_versions",
            "domain_map_missing_tables",
            "domain_map_unexpected_tables",
        ],
    );
    has_all(
        &versioning["version_families"][0],
        &[
            "id",
            "short_code",
            "label",
            "description",
            "is_active",
            "created_at",
        ],
    );
    has_all(
        &versioning["active_versions"][0],
        &["version_family_id", "active_version_ids"],
    );
    let table = json["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "theme")
        .expect("theme");
    has_all(
        table,
        &[
            "schema",
            "table",
            "owner",
            "has_indexes",
            "has_rules",
            "has_triggers",
            "has_audit_trigger",
            "record_count",
            "column_count",
            "columns",
            "audit_fields",
        ],
    );
    has_all(
        &table["columns"][0],
        &[
            "column_name",
            "data_type",
            "is_nullable",
            "column_default",
            "character_maximum_length",
            "numeric_precision",
            "numeric_scale",
        ],
    );
    has_all(
        &table["audit_fields"],
        &[
            "has_created_by",
            "has_created_at",
            "has_updated_by",
            "has_updated_at",
            "created_by_values",
            "created_at_range",
            "sample_records",
        ],
    );
    has_all(&table["audit_fields"]["created_at_range"], &["min", "max"]);
    assert_eq!(table["record_count"], 50);
    assert_eq!(
        table["audit_fields"]["created_by_values"],
        serde_json::json!([1, 2])
    );
    assert_eq!(
        table["audit_fields"]["sample_records"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(table["columns"][2]["data_type"], "numeric");
    assert_eq!(table["columns"][2]["numeric_precision"], 12);
    assert_eq!(table["columns"][2]["numeric_scale"], 2);
    assert_eq!(table["columns"][1]["is_nullable"], "NO");
    has_all(
        &json["indexes"][0],
        &["table_name", "index_name", "definition"],
    );
    has_all(
        &json["foreign_keys"][0],
        &[
            "table_name",
            "constraint_name",
            "column_name",
            "ref_table",
            "ref_column",
            "delete_rule",
            "update_rule",
        ],
    );
    assert_eq!(json["foreign_keys"][0]["delete_rule"], "CASCADE");
    has_all(
        &json["check_constraints"][0],
        &["table_name", "constraint_name", "check_clause"],
    );
    assert!(
        json["check_constraints"][0]["check_clause"]
            .as_str()
            .expect("clause")
            .starts_with("((name <>")
    );
    let unique = json["unique_constraints"]
        .as_array()
        .expect("unique")
        .iter()
        .find(|u| u["table_name"] == "theme")
        .expect("theme unique");
    assert_eq!(unique["columns"], serde_json::json!(["name", "amount"]));
    has_all(
        &json["triggers"][0],
        &[
            "table_name",
            "trigger_name",
            "timing",
            "events",
            "function_name",
            "is_enabled",
        ],
    );
    assert_eq!(
        json["triggers"][0]["events"],
        serde_json::json!(["INSERT", "UPDATE"])
    );
    has_all(
        &json["functions"][0],
        &[
            "function_name",
            "argument_types",
            "return_type",
            "language",
            "security_definer",
            "owner",
        ],
    );
    has_all(
        &json["validation"],
        &[
            "tables_missing_audit_trigger",
            "tables_attributed_to_system_only",
        ],
    );

    // Every schema, not only public.
    assert!(
        json["indexes"]
            .as_array()
            .expect("indexes")
            .iter()
            .any(|i| i["index_name"] == "region_created_by")
    );
    assert!(
        json["functions"]
            .as_array()
            .expect("functions")
            .iter()
            .any(|f| f["function_name"] == "area")
    );
    assert!(report.tables.iter().any(|t| t.schema == "geo"));

    // The cross-table validations.
    assert!(
        report
            .validation
            .tables_missing_audit_trigger
            .contains("system_rows")
    );
    assert!(
        !report
            .validation
            .tables_missing_audit_trigger
            .contains("theme")
    );
    assert!(
        report
            .validation
            .tables_missing_audit_trigger
            .contains("geo.region")
    );
    assert_eq!(
        report.validation.tables_attributed_to_system_only,
        ["system_rows"],
        "developer is exempt"
    );

    // Seed tables.
    let statuses: Vec<_> = report
        .seed_tables
        .iter()
        .map(|s| (s.table.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("theme", pg_auditor::report::SeedStatus::Loaded),
            ("absent", pg_auditor::report::SeedStatus::Missing)
        ]
    );

    let csv = String::from_utf8(files.csv.to_vec().expect("read")).expect("utf-8");
    let mut lines = csv.lines();
    assert!(lines.next().expect("header").starts_with(
        "schema,table,records,columns,has_created_by,has_created_at,has_updated_by,has_updated_at,created_by_values,owner,"
    ));
    // The original's ten columns by position, creators comma-joined in one quoted field.
    assert!(
        csv.lines()
            .any(|l| l
                .starts_with("public,theme,50,7,True,True,True,True,\"1,2\",postgres,True,exact")),
        "{csv}"
    );
    let html = String::from_utf8(files.html.to_vec().expect("read")).expect("utf-8");
    assert!(
        html.contains("<table class=sortable>") && !html.contains("http"),
        "self-contained HTML"
    );
}

#[tokio::test]
async fn versioning_checks_run_on_crafted_data_and_a_database_without_them_is_still_audited() {
    let (_, target) = database(VERSIONED_SCHEMA);
    let settings = Settings {
        expected_versioned_tables: Some(vec![
            TableName::parse("theme", "public"),
            TableName::parse("scenario_data", "public"),
        ]),
        ..Settings::default()
    };
    let report = run(&target, &settings).await;
    let v = &report.versioning_system.validation;
    assert_eq!(
        v.families_without_active_version,
        [serde_json::json!({"id": 3, "short_code": "geo"})]
    );
    assert_eq!(v.families_with_multiple_active_versions.len(), 1);
    assert_eq!(
        v.families_with_multiple_active_versions[0].version_family_id,
        2
    );
    assert_eq!(v.domain_map_missing_tables, ["scenario_data"]);
    assert_eq!(v.domain_map_unexpected_tables, ["stray"]);

    // The original aborted here: its failed query poisoned the transaction.
    let (_, plain) = database("CREATE TABLE things (id int); INSERT INTO things VALUES (1), (2);");
    let report = run(&plain, &settings).await;
    let exist =
        serde_json::to_value(&report.versioning_system.versioning_tables_exist).expect("json");
    assert_eq!(exist["version"]["exists"], false);
    assert!(
        exist["version"]["error"]
            .as_str()
            .expect("error")
            .contains("does not exist")
    );
    assert_eq!(entry(&report, "public", "things").record_count, Some(2));
    assert_eq!(report.versioning_system.validation.unavailable.len(), 3);
    // Checks that did not run say so: never a green "None." or "0 missing".
    let html = pg_auditor::html::render(&report);
    for check in [
        "Version families without an active version",
        "Expected versioned tables missing from domain_family_map",
    ] {
        assert!(
            html.contains(&format!(
                "<td>{check}</td><td><span class=muted>not run</span>"
            )),
            "{check}: {html}"
        );
    }
    // ... and the Problems block lists them in grey, never as passing.
    let problems = pg_auditor::html::problems(&report);
    let not_run = problems
        .iter()
        .find(|p| p.severity == pg_auditor::html::Severity::NotRun && p.title.contains("not run"))
        .expect("a not-run problem");
    assert!(not_run.items.len() >= 3, "{not_run:?}");
    assert_eq!(
        pg_auditor::cli::versioning_line(&report.versioning_system.validation),
        "versioning: active versions: not run; domain map: not run"
    );
}

const COUNTING: &str = r#"
CREATE TABLE big (id int, created_by int, created_at timestamptz);
INSERT INTO big SELECT g, g % 4, timestamptz '2025-01-01' + g * interval '1 minute' FROM generate_series(1, 5000) g;
CREATE TABLE small (id int);
INSERT INTO small SELECT generate_series(1, 7);
CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT g, date '2025-06-01' + (g % 400) FROM generate_series(1, 3000) g;
CREATE TABLE empty_seed (id int);
ANALYZE;
CREATE TABLE loaded_since_analyze (id int);
"#;

#[tokio::test]
async fn counts_in_auto_exact_and_estimate_modes_including_a_partitioned_table() {
    let (name, target) = database(COUNTING);
    // Filled after ANALYZE: statistics still say 0 rows.
    postgres().psql(&name, "ANALYZE loaded_since_analyze; INSERT INTO loaded_since_analyze SELECT generate_series(1, 20);").expect("fill");
    let expected = [
        ("big", 5000),
        ("small", 7),
        ("events", 3000),
        ("empty_seed", 0),
        ("loaded_since_analyze", 20),
    ];
    let seeds = vec![
        TableName::parse("empty_seed", "public"),
        TableName::parse("loaded_since_analyze", "public"),
    ];

    let exact = run(
        &target,
        &Settings {
            count_mode: CountMode::Exact,
            ..Settings::default()
        },
    )
    .await;
    for (table, rows) in expected {
        let e = entry(&exact, "public", table);
        assert_eq!(
            (e.record_count, e.record_count_method),
            (Some(rows), Method::Exact),
            "{table}"
        );
    }
    let partitions: u64 = ["events_2025", "events_2026"]
        .iter()
        .map(|p| entry(&exact, "public", p).record_count.expect("count"))
        .sum();
    assert_eq!(
        partitions, 3000,
        "the partitioned table counts its partitions"
    );
    assert_eq!(
        entry(&exact, "public", "events_2025")
            .partition_of
            .as_deref(),
        Some("public.events")
    );
    assert_eq!(
        exact.summary.total_records,
        5000 + 7 + 3000 + 20,
        "partitions are not counted twice"
    );

    let auto = run(
        &target,
        &Settings {
            exact_count_threshold: 1000,
            expected_seed_tables: seeds.clone(),
            ..Settings::default()
        },
    )
    .await;
    let big = entry(&auto, "public", "big");
    assert_eq!(big.record_count_method, Method::Estimate);
    assert_eq!(
        big.record_count,
        Some(5000),
        "ANALYZE read every row of a small table"
    );
    assert_eq!(big.audit_fields.method, Method::Estimate);
    assert_eq!(
        big.audit_fields
            .created_by_values
            .iter()
            .map(|v| v.get())
            .collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    let events = entry(&auto, "public", "events");
    assert_eq!(
        (events.record_count, events.record_count_method),
        (Some(3000), Method::Estimate)
    );
    assert_eq!(
        entry(&auto, "public", "small").record_count_method,
        Method::Exact
    );
    let seed = |report: &AuditReport, table: &str| {
        report
            .seed_tables
            .iter()
            .find(|s| s.table == table)
            .map(|s| s.status)
            .expect("seed")
    };
    assert_eq!(
        seed(&auto, "empty_seed"),
        pg_auditor::report::SeedStatus::Empty
    );
    assert_eq!(
        seed(&auto, "loaded_since_analyze"),
        pg_auditor::report::SeedStatus::Loaded
    );

    let estimate = run(
        &target,
        &Settings {
            count_mode: CountMode::Estimate,
            expected_seed_tables: seeds,
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(
        entry(&estimate, "public", "small").record_count_method,
        Method::Estimate
    );
    assert_eq!(entry(&estimate, "public", "small").record_count, Some(7));
    // The estimate says empty; the emptiness check knows better.
    assert_eq!(
        seed(&estimate, "loaded_since_analyze"),
        pg_auditor::report::SeedStatus::Loaded
    );
    assert_eq!(
        seed(&estimate, "empty_seed"),
        pg_auditor::report::SeedStatus::Empty
    );
    assert_eq!(
        entry(&estimate, "public", "empty_seed").record_count_method,
        Method::Exact
    );
}

#[tokio::test]
async fn tables_named_with_quotes_semicolons_capitals_and_reserved_words_are_audited() {
    let (name, target) = database(
        r#"CREATE TABLE "we""ird; DROP TABLE victim; --" (id int, "Created_By" int, created_by int);
           INSERT INTO "we""ird; DROP TABLE victim; --" VALUES (1, 1, 7), (2, 2, 7);
           CREATE TABLE "Select" ("from" int); INSERT INTO "Select" VALUES (1);
           CREATE SCHEMA "My Schema"; CREATE TABLE "My Schema"."Table Name" (x int); INSERT INTO "My Schema"."Table Name" VALUES (1), (2), (3);
           CREATE TABLE victim (id int);"#,
    );
    let report = run(&target, &Settings::default()).await;
    let weird = entry(&report, "public", "we\"ird; DROP TABLE victim; --");
    assert_eq!(weird.record_count, Some(2));
    assert!(weird.errors.is_empty(), "{:?}", weird.errors);
    assert_eq!(
        weird
            .audit_fields
            .created_by_values
            .iter()
            .map(|v| v.get())
            .collect::<Vec<_>>(),
        ["7"]
    );
    assert_eq!(entry(&report, "public", "Select").record_count, Some(1));
    assert_eq!(
        entry(&report, "My Schema", "Table Name").record_count,
        Some(3)
    );
    assert_eq!(report.summary.tables_with_errors, 0);
    assert_eq!(
        postgres()
            .psql(&name, "SELECT count(*) FROM victim")
            .expect("victim"),
        "0"
    );
}

/// A migration or `VACUUM FULL` holds ACCESS EXCLUSIVE on one table: deparsing its defaults
/// and indexes would wait, and used to fail the whole catalog statement (no report at all).
/// The locked table is reported from its catalog rows with the lock as its error, naming the
/// holder; every other table is complete.
#[tokio::test]
async fn a_table_locked_by_a_migration_is_reported_as_locked_and_the_rest_is_complete() {
    let (name, target) = database(
        "CREATE TABLE locked (id serial PRIMARY KEY, created_by int DEFAULT 1);
         INSERT INTO locked (created_by) VALUES (1);
         CREATE TABLE fine_a (id int); INSERT INTO fine_a VALUES (1);
         CREATE TABLE fine_b (id serial PRIMARY KEY); INSERT INTO fine_b VALUES (1), (2);",
    );
    let (holder, connection) =
        tokio_postgres::connect(&postgres().url(&name), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    holder
        .batch_execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let settings = Settings {
        lock_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let report = run(&target, &settings).await;
    let locked = entry(&report, "public", "locked");
    assert_eq!(locked.record_count, None);
    assert_eq!(locked.record_count_method, Method::Unavailable);
    let error = &locked.errors[0];
    assert_eq!(error.step, "describe", "{error:?}");
    assert_eq!(error.sqlstate.as_deref(), Some("55P03"), "{error:?}");
    assert!(
        error
            .message
            .contains(&format!("locked by pid {holder_pid}")),
        "{error:?}"
    );
    assert_eq!(locked.column_count, 2, "catalog facts are complete");
    assert_eq!(entry(&report, "public", "fine_a").record_count, Some(1));
    assert_eq!(entry(&report, "public", "fine_b").record_count, Some(2));
    assert!(
        report
            .objects
            .indexes
            .iter()
            .any(|i| i.table_name == "fine_b" && i.definition.is_some()),
        "the other tables' indexes are deparsed"
    );
    assert_eq!(report.summary.tables_with_errors, 1);
    let csv = String::from_utf8(pg_auditor::csv_summary::tables_csv(&report).expect("csv"))
        .expect("utf-8");
    assert!(
        csv.contains("public,locked,,2,"),
        "an unavailable count is blank, not 0: {csv}"
    );
    holder.batch_execute("ROLLBACK").await.expect("unlock");
}

/// The same with the shapes that reach a locked table from other catalog statements: a
/// trigger, a check constraint, an index, and a foreign key to the versioning schema's
/// `developer` (whose own checks read its referencing tables). Locked like that, the audit once
/// again exited with `cannot read the catalog: canceling statement due to lock timeout`.
#[tokio::test]
async fn a_locked_table_with_a_trigger_check_index_and_foreign_key_still_leaves_a_report() {
    let (name, target) = database(&format!(
        "{VERSIONED_SCHEMA}
         CREATE TABLE orders (id serial PRIMARY KEY, total numeric CHECK (total >= 0),
           note text, created_at timestamptz DEFAULT now(), updated_at timestamptz,
           created_by int REFERENCES developer(id), updated_by int REFERENCES developer(id));
         CREATE INDEX orders_total ON orders (total);
         CREATE TRIGGER orders_audit BEFORE INSERT OR UPDATE ON orders
           FOR EACH ROW EXECUTE FUNCTION set_audit_fields();
         INSERT INTO orders (total, created_by) VALUES (10, 1), (20, 1);"
    ));
    let (holder, connection) =
        tokio_postgres::connect(&postgres().url(&name), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let settings = Settings {
        lock_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let tls = tls_config(&target).expect("tls");
    let report = audit::run(
        &target,
        &tls,
        &settings,
        "2026-01-01T00:00:00+00:00".to_owned(),
    )
    .await
    .unwrap_or_else(|e| panic!("one locked table must not cost the report: {e}"));
    let orders = entry(&report, "public", "orders");
    assert_eq!(orders.record_count_method, Method::Unavailable);
    assert!(
        orders
            .errors
            .iter()
            .any(|e| e.sqlstate.as_deref() == Some("55P03")),
        "{:?}",
        orders.errors
    );
    assert_eq!(entry(&report, "public", "theme").record_count, Some(50));
    assert_eq!(entry(&report, "public", "developer").record_count, Some(1));
    let check_of = |table: &str| {
        report
            .objects
            .check_constraints
            .iter()
            .find(|c| c.table_name == table)
            .unwrap_or_else(|| panic!("no check of {table}"))
            .check_clause
            .clone()
    };
    assert_eq!(
        check_of("orders"),
        None,
        "the locked table's check is not deparsed"
    );
    assert_eq!(check_of("theme").as_deref(), Some("((name <> ''::text))"));
    holder.batch_execute("ROLLBACK").await.expect("unlock");
}

/// A login role that can create in `public` (the default before PostgreSQL 15) plants
/// functions that shadow `format` and `quote_ident` for `name` arguments, and names tables to
/// smuggle statements. Run as the superuser, the audit must use only `pg_catalog`'s functions,
/// send each statement alone, and write spreadsheet cells that do not run as formulas.
#[tokio::test]
async fn a_hostile_role_cannot_run_statements_through_the_auditor() {
    let role = unique_name("mallory").replace('-', "_");
    let (name, target) = database(&format!(
        r#"CREATE ROLE {role} LOGIN;
        GRANT CREATE ON SCHEMA public TO {role};
        SET ROLE {role};
        CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE sql
          AS $$ SELECT 'public.t; COMMIT; CREATE TABLE public.pwned_format AS SELECT current_user; --' $$;
        CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE sql
          AS $$ SELECT '1; COMMIT; CREATE TABLE public.pwned_quote AS SELECT current_user; --' $$;
        CREATE TABLE public.t (id int, created_by text);
        INSERT INTO public.t VALUES (1, '+cmd|'' /C calc''!A0');
        CREATE TABLE public."x; COMMIT; CREATE TABLE public.pwned_name AS SELECT 1; BEGIN" (id int);
        CREATE TABLE public."=HYPERLINK(""http://evil.example"",""open"")" (id int);
        RESET ROLE;"#
    ));
    let report = run(&target, &Settings::default()).await;
    let (client, connection) =
        tokio_postgres::connect(&postgres().url(&name), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    for planted in ["pwned_format", "pwned_quote", "pwned_name"] {
        let exists: bool = client
            .query_one(
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                &[&format!("public.{planted}")],
            )
            .await
            .expect("look")
            .get(0);
        assert!(!exists, "public.{planted} was created through the auditor");
    }
    assert_eq!(entry(&report, "public", "t").record_count, Some(1));
    let smuggler = entry(
        &report,
        "public",
        "x; COMMIT; CREATE TABLE public.pwned_name AS SELECT 1; BEGIN",
    );
    assert_eq!(smuggler.record_count, Some(0));
    assert!(smuggler.errors.is_empty(), "{:?}", smuggler.errors);
    let csv = String::from_utf8(pg_auditor::csv_summary::tables_csv(&report).expect("csv"))
        .expect("utf-8");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let hyperlink = rows
        .iter()
        .find(|r| r[1].contains("HYPERLINK"))
        .expect("the HYPERLINK table");
    assert_eq!(
        &hyperlink[1], "'=HYPERLINK(\"http://evil.example\",\"open\")",
        "a formula-like name is text"
    );
    let creators = rows.iter().find(|r| &r[1] == "t").expect("t");
    assert_eq!(&creators[8], "'+cmd|' /C calc'!A0", "{creators:?}");
}

#[tokio::test]
async fn nothing_can_be_written_through_the_auditors_sessions() {
    let (name, target) =
        database("CREATE TABLE t (id serial, v int); INSERT INTO t (v) VALUES (1);");
    let settings = Settings::default();
    let tls = tls_config(&target).expect("tls");
    let main = open_session(&target, &tls, &settings, None)
        .await
        .expect("session");
    let snapshot: String = main
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .expect("export")
        .get(0);
    let worker = open_session(&target, &tls, &settings, Some(&snapshot))
        .await
        .expect("worker");
    for session in [&main, &worker] {
        for write in [
            // The sessions' search_path holds only pg_catalog: names are qualified.
            "INSERT INTO public.t (v) VALUES (2)",
            "UPDATE public.t SET v = 3",
            "DELETE FROM public.t",
            "CREATE TABLE public.sneaky (id int)",
            "SELECT nextval('public.t_id_seq')",
            "TRUNCATE public.t",
        ] {
            session
                .batch_execute("SAVEPOINT w")
                .await
                .expect("savepoint");
            let error = session.batch_execute(write).await.expect_err(write);
            assert_eq!(
                error.code().map(|c| c.code()),
                Some("25006"),
                "{write}: {error}"
            );
            session
                .batch_execute("ROLLBACK TO SAVEPOINT w")
                .await
                .expect("rollback to");
        }
        let error = session
            .batch_execute("SET TRANSACTION READ WRITE")
            .await
            .expect_err("read write");
        assert!(
            error.to_string().contains("read-write") || error.code().is_some(),
            "{error}"
        );
    }
    drop((main, worker));
    assert_eq!(
        postgres()
            .psql(&name, "SELECT count(*) || ':' || max(v) FROM t")
            .expect("t"),
        "1:1"
    );
}

#[tokio::test]
async fn sensitive_columns_are_redacted_in_samples_and_versioning_contents() {
    let (_, target) = database(
        "CREATE TABLE users (id int, user_email text, password_hash text, api_token text, nickname text);
         INSERT INTO users VALUES (1, 'ada@example.org', 'x1', 't1', 'ada'), (2, 'bob@example.org', 'x2', 't2', 'bob');
         CREATE TABLE developer (id int, email text, created_by int); INSERT INTO developer VALUES (1, 'dev@example.org', 1);",
    );
    let report = run(&target, &Settings::default()).await;
    let json = serde_json::to_string(&report).expect("json");
    for secret in ["ada@example.org", "x1", "t1", "dev@example.org"] {
        assert!(!json.contains(secret), "{secret} leaked into the report");
    }
    let users = entry(&report, "public", "users");
    let rows: serde_json::Value =
        serde_json::from_str(users.audit_fields.sample_records.get()).expect("rows");
    assert_eq!(rows[0]["user_email"], "[redacted]");
    assert_eq!(rows[0]["nickname"], "ada");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    assert!(
        report
            .versioning_system
            .developers
            .get()
            .contains("[redacted]")
    );

    let off = run(
        &target,
        &Settings {
            sample_rows: 0,
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(
        entry(&off, "public", "users")
            .audit_fields
            .sample_records
            .get(),
        "[]"
    );
    let unredacted = run(
        &target,
        &Settings {
            sensitive_column_patterns: Vec::new(),
            ..Settings::default()
        },
    )
    .await;
    assert!(
        serde_json::to_string(&unredacted)
            .expect("json")
            .contains("ada@example.org")
    );
}

/// `prefer` against a server without TLS falls back to plaintext, as libpq does; the session
/// knows it is unencrypted (and logs a warning saying so).
#[tokio::test]
async fn a_session_that_fell_back_to_plaintext_knows_it() {
    let (name, _) = database("SELECT 1;");
    let url = format!("{}?sslmode=prefer", postgres().url(&name));
    let target = parse_target(&url).expect("url");
    let tls = tls_config(&target).expect("tls");
    let connected = pg_auditor::connect::connect_with_task(&target, &tls)
        .await
        .expect("connects without TLS");
    assert!(!connected.encrypted);
    let one: i32 = connected
        .client
        .query_one("SELECT 1", &[])
        .await
        .expect("usable")
        .get(0);
    assert_eq!(one, 1);
}

/// A statement that fails on one table (here: the auditor's role may not read it) is recorded
/// in that table's entry; the transaction goes on and every other table is complete. Each
/// per-table statement runs alone between its savepoint commands.
#[tokio::test]
async fn a_table_the_auditor_may_not_read_is_recorded_and_the_rest_is_complete() {
    let role = unique_name("auditor").replace('-', "_");
    let (name, _) = database(&format!(
        "CREATE TABLE readable (id int, created_by int); INSERT INTO readable VALUES (1, 1), (2, 2);
         CREATE TABLE private_notes (id int, body text); INSERT INTO private_notes VALUES (1, 'x');
         CREATE TABLE also_readable (id int); INSERT INTO also_readable VALUES (1);
         CREATE ROLE {role} LOGIN;
         GRANT SELECT ON readable, also_readable TO {role};"
    ));
    let target = login_as(&role, &name);
    let report = run(&target, &Settings::default()).await;
    let denied = entry(&report, "public", "private_notes");
    assert_eq!(denied.record_count, None);
    let error = &denied.errors[0];
    assert_eq!(error.sqlstate.as_deref(), Some("42501"), "{error:?}");
    assert_eq!(entry(&report, "public", "readable").record_count, Some(2));
    assert_eq!(
        entry(&report, "public", "also_readable").record_count,
        Some(1)
    );
    assert_eq!(report.summary.tables_with_errors, 1);
}

#[tokio::test]
async fn many_small_tables_read_together_each_get_their_own_figures() {
    // 150 small tables (more than two statements' worth: plan::TABLES_PER_BATCH is 64), each
    // with its own row count, creators and sample, and one the auditor may not read in the
    // middle of a batch: every figure lands on its own table, the failure on its own.
    let role = unique_name("auditor").replace('-', "_");
    let (name, _) = database(&format!(
        "DO $$ BEGIN FOR i IN 1..150 LOOP
           EXECUTE pg_catalog.format('CREATE TABLE t_%s (id int, created_by int, note text)', i);
           EXECUTE pg_catalog.format('INSERT INTO t_%s SELECT g, %s, %L FROM generate_series(1, %s) g',
                                     i, i, 'table ' || i, i % 7);
         END LOOP; END $$;
         CREATE ROLE {role} LOGIN;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
         REVOKE SELECT ON t_100 FROM {role};"
    ));
    let target = login_as(&role, &name);
    let report = run(&target, &Settings::default()).await;
    for i in 1..=150u64 {
        let table = entry(&report, "public", &format!("t_{i}"));
        if i == 100 {
            assert_eq!(table.record_count, None);
            assert_eq!(table.errors[0].sqlstate.as_deref(), Some("42501"));
            continue;
        }
        assert!(table.errors.is_empty(), "t_{i}: {:?}", table.errors);
        assert_eq!(table.record_count, Some(i % 7), "t_{i}");
        assert_eq!(table.record_count_method, Method::Exact, "t_{i}");
        let creators: Vec<String> = table
            .audit_fields
            .created_by_values
            .iter()
            .map(|v| v.get().to_owned())
            .collect();
        let expected: Vec<String> = if i % 7 == 0 {
            vec![]
        } else {
            vec![i.to_string()]
        };
        assert_eq!(creators, expected, "t_{i}");
        let sample: serde_json::Value =
            serde_json::from_str(table.audit_fields.sample_records.get()).expect("sample");
        let notes: Vec<&str> = sample
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|row| row["note"].as_str())
            .collect();
        let sample_rows = u64::from(Settings::default().sample_rows);
        assert_eq!(
            notes.len() as u64,
            (i % 7).min(sample_rows),
            "t_{i}: {sample}"
        );
        let own = format!("table {i}");
        assert!(notes.iter().all(|n| *n == own), "t_{i}: {sample}");
    }
    assert_eq!(report.summary.tables_with_errors, 1);
    // Two statements per batch of 64 (which tables are empty, then one read of the others),
    // and the non-empty tables of t_100's batch read again one by one (a count and a sample
    // each). One statement per read would be 300.
    let statements = report.audit_settings.table_statements;
    assert!(statements <= 2 * 3 + 2 * 64, "{statements} statements");
}

#[tokio::test]
async fn empty_tables_are_counted_without_a_read_but_never_wrongly() {
    // Tables with no pages are reported empty without a read (plan::EMPTY_TABLES_SQL); a
    // parent whose rows live in its inheritance children, an empty table the auditor may not
    // read, and a table emptied by DELETE (its pages remain) still get what a read gives.
    let role = unique_name("auditor").replace('-', "_");
    let (name, _) = database(&format!(
        "CREATE TABLE never_used (id int, created_by int);
         CREATE TABLE parent (id int, created_by int);
         CREATE TABLE child () INHERITS (parent);
         INSERT INTO child VALUES (1, 7), (2, 7);
         CREATE TABLE emptied (id int); INSERT INTO emptied VALUES (1); DELETE FROM emptied;
         CREATE TABLE empty_private (id int);
         CREATE ROLE {role} LOGIN;
         GRANT SELECT ON never_used, parent, child, emptied TO {role};"
    ));
    let target = login_as(&role, &name);
    let report = run(&target, &Settings::default()).await;
    let never_used = entry(&report, "public", "never_used");
    assert_eq!(never_used.record_count, Some(0));
    assert_eq!(never_used.record_count_method, Method::Exact);
    assert!(never_used.audit_fields.created_by_values.is_empty());
    assert_eq!(never_used.audit_fields.sample_records.get(), "[]");
    let parent = entry(&report, "public", "parent");
    assert_eq!(parent.record_count, Some(2));
    assert_eq!(parent.audit_fields.created_by_values.len(), 1);
    assert_eq!(entry(&report, "public", "emptied").record_count, Some(0));
    let private = entry(&report, "public", "empty_private");
    assert_eq!(private.record_count, None);
    assert_eq!(private.errors[0].sqlstate.as_deref(), Some("42501"));
    assert_eq!(report.summary.tables_with_errors, 1);
}

/// Keeps every part twice: streamed to files, and collected in memory.
struct BothWays {
    streamed: pg_auditor::output::StreamedReport,
    collected: pg_auditor::output::Collected,
}

impl pg_auditor::output::PartSink for BothWays {
    fn part(
        &mut self,
        index: usize,
        part: pg_auditor::report::PartReport,
        names: &std::collections::HashMap<String, String>,
    ) -> Result<(), pg_auditor::output::OutputError> {
        self.streamed.part(index, part.clone(), names)?;
        self.collected.part(index, part, names)
    }
}

#[tokio::test]
async fn the_report_written_part_by_part_is_the_report_held_in_memory() {
    // One table per catalog statement: small schemas alone, the others read in ranges of
    // table names, in any order on three connections: the files joined from the parts are byte
    // for byte what the whole report in memory renders to.
    let (_, target) = database(&format!(
        "{VERSIONED_SCHEMA}
         CREATE SCHEMA alpha; CREATE SCHEMA zeta; CREATE SCHEMA \"Mixed Case\";
         CREATE TABLE alpha.orders (id int PRIMARY KEY, theme_id int REFERENCES theme(id),
           created_by int, created_at timestamptz, CHECK (id > 0));
         INSERT INTO alpha.orders SELECT g, 1 + g % 50, 2, now() FROM generate_series(1, 30) g;
         CREATE TABLE alpha.empty (id int, created_by int);
         CREATE TABLE zeta.log (id bigint, payload jsonb, api_key text, created_by int)
           PARTITION BY RANGE (id);
         CREATE TABLE zeta.log_1 PARTITION OF zeta.log FOR VALUES FROM (0) TO (100);
         INSERT INTO zeta.log SELECT g, '{{\"a\": 1}}', 'hunter2-value', 1 FROM generate_series(1, 20) g;
         CREATE TABLE \"Mixed Case\".\"Odd \"\"Name\" (id int UNIQUE, created_by int);
         INSERT INTO \"Mixed Case\".\"Odd \"\"Name\" VALUES (1, 1);"
    ));
    let settings = Settings {
        tables_per_catalog_statement: 1,
        expected_seed_tables: vec![TableName::parse("theme", "public")],
        ..Settings::default()
    };
    let tls = tls_config(&target).expect("tls");
    let mut both = BothWays {
        streamed: pg_auditor::output::StreamedReport::new().expect("temporary files"),
        collected: pg_auditor::output::Collected::default(),
    };
    let head = audit::run_into(
        &target,
        &tls,
        &settings,
        "2026-01-01T00:00:00+00:00".to_owned(),
        &mut both,
    )
    .await
    .expect("audit");
    let streamed = both
        .streamed
        .finish(&head, "20260101_000000")
        .expect("streamed files");
    let report = head.with_parts(both.collected.into_parts());
    let in_memory = pg_auditor::output::render(&report, "20260101_000000").expect("render");
    let json = streamed.json.to_vec().expect("read");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&in_memory.json.to_vec().expect("read"))
    );
    assert_eq!(
        String::from_utf8_lossy(&streamed.csv.to_vec().expect("read")),
        String::from_utf8_lossy(&in_memory.csv.to_vec().expect("read"))
    );
    let html = String::from_utf8(streamed.html.to_vec().expect("read")).expect("utf-8");
    assert_eq!(html, pg_auditor::html::render(&report));

    // And that report is whole: the same as one catalog statement for the whole database
    // gives (every table in exactly one range, each function once), every list filled.
    let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let whole = run(
        &target,
        &Settings {
            expected_seed_tables: vec![TableName::parse("theme", "public")],
            ..Settings::default()
        },
    )
    .await;
    let mut whole = serde_json::to_value(&whole).expect("json");
    let mut parted = value.clone();
    for report in [&mut whole, &mut parted] {
        report["audit_settings"]["duration_ms"] = 0.into();
        report["audit_settings"]["table_statements"] = 0.into();
    }
    assert_eq!(parted, whole);
    assert_eq!(value["functions"].as_array().map(Vec::len), Some(2));
    let names: Vec<(String, String)> = value["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["schema"].as_str().unwrap_or_default().to_owned(),
                t["table"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 12, "{names:?}");
    assert_eq!(
        report.audit_settings.schemas_audited,
        ["Mixed Case", "alpha", "geo", "public", "zeta"]
    );
    for list in [
        "indexes",
        "foreign_keys",
        "check_constraints",
        "unique_constraints",
        "triggers",
        "functions",
    ] {
        assert!(!value[list].as_array().expect(list).is_empty(), "{list}");
    }
    assert_eq!(value["summary"]["total_tables"], 12);
    assert_eq!(
        value["versioning_system"]["versioning_tables_exist"]["developer"]["exists"],
        true
    );
    assert_eq!(
        report.seed_tables[0].status,
        pg_auditor::report::SeedStatus::Loaded
    );
    // The developer names reached the rows of parts read before the default schema's.
    assert!(html.contains("1 (System)"), "names in the rows");
    assert!(!html.contains("hunter2") && !String::from_utf8_lossy(&json).contains("hunter2"));
}

/// Runs Debian's chromium headless on `page`: the DOM after its scripts ran, and what the
/// browser logged (console messages included).
fn chromium(args: &[&str], page: &std::path::Path, fragment: &str) -> (String, String) {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("chromium (Debian package chromium; make test's setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_html_page_shows_problems_first_and_its_filter_works_in_a_real_browser() {
    let role = unique_name("dba").replace('-', "_");
    let mut sql = VERSIONED_SCHEMA.to_owned();
    // Twenty-five tables with creators but no audit trigger: more than a list shows at once.
    for i in 0..25 {
        sql.push_str(&format!(
            "CREATE TABLE orders_{i:02} (id int, created_by int); INSERT INTO orders_{i:02} VALUES (1, 1), (2, 2);\n"
        ));
    }
    sql.push_str(&format!(
        "CREATE TABLE private_notes (id int, body text); INSERT INTO private_notes VALUES (1, 'x');
         CREATE TABLE big_table (id int); INSERT INTO big_table SELECT g FROM generate_series(1, 12345) g;
         CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA geo TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA public, geo TO {role};
         REVOKE SELECT ON private_notes FROM {role};"
    ));
    let (name, _) = database(&sql);
    let url = format!(
        "postgresql://{role}@127.0.0.1:{}/{name}?sslmode=disable",
        postgres().port()
    );
    let report = run(&parse_target(&url).expect("url"), &Settings::default()).await;
    let html = pg_auditor::html::render(&report);
    assert!(!html.contains("http"), "self-contained");

    // What a DBA sees first: the problems, worst first, lists folded past ten.
    let problems = html.find("id=problems").expect("problems block");
    assert!(problems < html.find(">Summary<").expect("summary"));
    let found = pg_auditor::html::problems(&report);
    assert_eq!(found[0].severity, pg_auditor::html::Severity::Red);
    assert_eq!(found[0].items.len(), 1);
    assert!(found[0].items[0].starts_with("public.private_notes ("));
    let missing = report.validation.missing_audit_trigger_qualified.len();
    assert!(missing >= 25, "{missing}");
    assert!(
        html.contains(&format!("+{} more", missing - 10)),
        "{missing} tables missing the trigger, 10 shown"
    );
    assert!(
        html.contains("1 (System)"),
        "creators named from the developer table"
    );
    assert!(html.contains(">12,345<"), "thousands separators");
    // Largest table first.
    let first_row = html.find("<tr data-name=").expect("rows");
    assert!(html[first_row..].starts_with("<tr data-name=\"public.big_table\""));

    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).expect("write");
    let (dom, log) = chromium(&["--dump-dom"], &page, "#filter=orders_1");
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script ran to the end:\n{log}"
    );
    assert!(
        !log.contains("Uncaught") && !log.contains(":ERROR:CONSOLE"),
        "{log}"
    );
    let rows: Vec<&str> = dom.split("<tr data-name=\"").skip(1).collect();
    assert_eq!(rows.len(), report.tables.len());
    let visible: Vec<&str> = rows
        .iter()
        .filter(|r| !r[..r.find('>').expect("tag end")].contains("hidden"))
        .map(|r| &r[..r.find('"').expect("name end")])
        .collect();
    let expected: Vec<String> = (10..20).map(|i| format!("public.orders_{i}")).collect();
    let mut visible_sorted = visible.clone();
    visible_sorted.sort_unstable();
    assert_eq!(
        visible_sorted, expected,
        "the filter keeps exactly the matching tables"
    );
    assert!(
        dom.contains("<span id=\"shown\">10</span>"),
        "the heading counts them"
    );

    if let Ok(path) = std::env::var("AUDITKIT_SCREENSHOT") {
        chromium(
            &[
                &format!("--screenshot={path}"),
                "--window-size=1400,1800",
                "--hide-scrollbars",
            ],
            &page,
            "",
        );
    }
}
