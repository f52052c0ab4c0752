//! Unit tests of the pure parts: counting decisions, statements, parsing, validations, the
//! report's contract shapes, configuration.

use crate::catalog::{CatalogColumn, CatalogTable, ColumnStatistics, LeafStatistics};
use crate::connect::{SslMode, parse_target, target_from_secret};
use crate::plan::*;
use crate::report::{self, CSV_COLUMNS, validate_versioning};
use crate::settings::{CountMode, Overrides, Settings, TableName};
use audit_core::Env;

fn table(reltuples: f64, relpages: i64) -> CatalogTable {
    CatalogTable {
        oid: 42,
        schema: "public".into(),
        table: "t".into(),
        qualified: "public.t".into(),
        owner: "o".into(),
        has_indexes: false,
        has_rules: false,
        has_triggers: false,
        is_partitioned: false,
        partition_of: None,
        reltuples,
        relpages,
        live_tuples_hint: None,
        leaves: None,
    }
}

fn column(name: &str, quoted: &str) -> CatalogColumn {
    CatalogColumn {
        table_oid: 42,
        column_name: name.into(),
        quoted: quoted.into(),
        data_type: "integer".into(),
        is_nullable: "YES".into(),
        column_default: None,
        character_maximum_length: None,
        numeric_precision: None,
        numeric_scale: None,
    }
}

#[test]
fn auto_counts_exactly_up_to_the_threshold_and_when_nothing_is_known() {
    assert_eq!(
        count_plan(&table(10.0, 1), CountMode::Auto, 100),
        CountPlan::Exact
    );
    assert_eq!(
        count_plan(&table(100.0, 1), CountMode::Auto, 100),
        CountPlan::Exact
    );
    assert_eq!(
        count_plan(&table(101.0, 1), CountMode::Auto, 100),
        CountPlan::Estimate {
            rows: 101.0,
            source: EstimateSource::Planner
        }
    );
    // Never analyzed: -1 means unknown, not empty.
    assert_eq!(
        count_plan(&table(-1.0, 0), CountMode::Auto, 100),
        CountPlan::Exact
    );
    assert_eq!(
        count_plan(&table(1e9, 1), CountMode::Exact, 100),
        CountPlan::Exact
    );
    assert_eq!(
        count_plan(&table(-1.0, 0), CountMode::Estimate, 100),
        CountPlan::Unknown
    );
    let mut hinted = table(-1.0, 0);
    hinted.live_tuples_hint = Some(500);
    assert_eq!(
        count_plan(&hinted, CountMode::Estimate, 100),
        CountPlan::Estimate {
            rows: 500.0,
            source: EstimateSource::Statistics
        }
    );
}

#[test]
fn a_partitioned_table_is_estimated_from_its_leaves() {
    let mut parent = table(0.0, 0);
    parent.is_partitioned = true;
    parent.leaves = Some(vec![
        LeafStatistics {
            oid: 1,
            reltuples: 70.0,
            relpages: 1,
        },
        LeafStatistics {
            oid: 2,
            reltuples: 50.0,
            relpages: 1,
        },
    ]);
    assert_eq!(
        catalog_estimate(&parent),
        Some((120.0, EstimateSource::Planner))
    );
    assert_eq!(
        count_plan(&parent, CountMode::Auto, 100),
        CountPlan::Estimate {
            rows: 120.0,
            source: EstimateSource::Planner
        }
    );
    if let Some(leaves) = parent.leaves.as_mut() {
        leaves[1].reltuples = -1.0;
    }
    assert_eq!(
        catalog_estimate(&parent),
        None,
        "one unanalyzed leaf makes the sum unknown"
    );
}

#[test]
fn estimates_scale_with_the_current_size_like_the_planner() {
    // 1,000 rows in 10 pages at ANALYZE; the table has grown to 20 pages.
    assert_eq!(scaled_estimate(1000.0, 10, Some(20 * 8192), 8192), 2000.0);
    assert_eq!(scaled_estimate(1000.0, 10, None, 8192), 1000.0);
    assert_eq!(scaled_estimate(0.0, 0, Some(8192), 8192), 0.0);
}

#[test]
fn sensitive_columns_are_replaced_in_the_select_list() {
    let patterns = Settings::default().sensitive_column_patterns;
    let columns = [
        column("id", "id"),
        column("User_Email", "\"User_Email\""),
        column("password_hash", "password_hash"),
        column("note", "note"),
    ];
    let refs: Vec<&CatalogColumn> = columns.iter().collect();
    assert_eq!(
        redacted_select_list(&refs, &patterns),
        "id, '[redacted]'::text AS \"User_Email\", '[redacted]'::text AS password_hash, note"
    );
    assert!(!is_sensitive("note", &patterns));
    assert!(is_sensitive("API_TOKEN", &patterns));
    for name in [
        "pwd_hash",
        "passwd",
        "credit_card",
        "api_key",
        "Salt",
        "cvv2",
        "iban",
        "auth_secret",
        "ssn",
    ] {
        assert!(is_sensitive(name, &patterns), "{name}");
    }
}

#[test]
fn sensitive_keys_inside_json_values_are_redacted_and_the_rest_kept_exactly() {
    let patterns = Settings::default().sensitive_column_patterns;
    let rows = r#"[{"id":1,"profile":{"name":"Ann","password":"hunter2","nested":[{"API_Key":"k-1","n":123456789012345678901234567890}]},"note":"a \"password\": b"}, {"id":2,"profile":null}]"#;
    assert_eq!(
        crate::plan::redact_json_keys(rows, &patterns),
        r#"[{"id":1,"profile":{"name":"Ann","password":"[redacted]","nested":[{"API_Key":"[redacted]","n":123456789012345678901234567890}]},"note":"a \"password\": b"},{"id":2,"profile":null}]"#
    );
    assert_eq!(
        crate::plan::redact_json_keys(r#"{"pass\u0077d": {"deep": [1, 2]}}"#, &patterns),
        r#"{"pass\u0077d":"[redacted]"}"#,
        "an escaped key is matched by what it says"
    );
    assert_eq!(
        crate::plan::redact_json_keys("not json", &patterns),
        "\"[redacted]\"",
        "what cannot be read is not copied"
    );
    assert_eq!(crate::plan::redact_json_keys(rows, &[]), rows);
}

#[test]
fn probes_use_the_names_postgresql_quoted() {
    let mut weird = table(10.0, 1);
    weird.qualified = "public.\"we\"\"ird; DROP TABLE x\"".into();
    let columns = [
        column("created_by", "created_by"),
        column("created_at", "created_at"),
    ];
    let refs: Vec<&CatalogColumn> = columns.iter().collect();
    let settings = Settings::default();
    let probe = probe(&weird, &refs, CountPlan::Exact, true, &settings);
    let exact = probe.exact.expect("exact count planned");
    assert!(exact.starts_with(
        "SELECT pg_catalog.count(*)::text, CASE WHEN pg_catalog.count(created_at) = 0"
    ));
    assert!(exact.ends_with("FROM public.\"we\"\"ird; DROP TABLE x\""));
    assert!(
        exact.contains("[1:101]"),
        "one more creator than the cap shows a cut list"
    );
    assert!(probe.sample.contains("LIMIT 3"));
    assert!(
        probe.emptiness.is_none(),
        "an exact count already tells empty from loaded"
    );

    let estimated = crate::plan::probe(
        &weird,
        &refs,
        CountPlan::Estimate {
            rows: 1e6,
            source: EstimateSource::Planner,
        },
        true,
        &settings,
    );
    assert!(estimated.exact.is_none());
    assert_eq!(
        estimated.emptiness.as_deref(),
        Some("SELECT (EXISTS (SELECT 1 FROM public.\"we\"\"ird; DROP TABLE x\"))::text")
    );
    let no_samples = Settings {
        sample_rows: 0,
        ..Settings::default()
    };
    assert_eq!(
        crate::plan::probe(&weird, &refs, CountPlan::Exact, false, &no_samples).sample,
        "SELECT pg_catalog.pg_relation_size(42::oid)::text, '[]'::text"
    );
}

#[test]
fn array_literals_parse_with_quotes_escapes_and_nulls() {
    assert_eq!(parse_array_literal("{1,2,3}"), ["1", "2", "3"]);
    assert_eq!(
        parse_array_literal(r#"{"a b","c\"d",NULL,"NULL",e}"#),
        ["a b", "c\"d", "NULL", "e"]
    );
    assert!(parse_array_literal("{}").is_empty());
    assert_eq!(
        parse_array_literal(r#"{"2025-01-01 00:00:00+00","2025-02-01 00:00:00+00"}"#),
        ["2025-01-01 00:00:00+00", "2025-02-01 00:00:00+00"]
    );
}

#[test]
fn creators_and_range_are_estimated_from_pg_stats() {
    let by = ColumnStatistics {
        table_oid: 1,
        column_name: "created_by".into(),
        null_frac: 0.0,
        n_distinct: 3.0,
        most_common_vals: Some("{10,2,1}".into()),
        histogram_bounds: None,
    };
    let at = ColumnStatistics {
        table_oid: 1,
        column_name: "created_at".into(),
        null_frac: 0.0,
        n_distinct: -1.0,
        most_common_vals: None,
        histogram_bounds: Some(
            r#"{"2025-01-01 00:00:00+00","2025-06-01 00:00:00+00","2025-09-01 00:00:00+00"}"#
                .into(),
        ),
    };
    let fields = estimated_audit_fields(&[&by, &at]);
    assert_eq!(
        fields.created_by_values,
        ["1", "2", "10"],
        "numbers sort numerically"
    );
    assert!(fields.created_by_complete);
    assert_eq!(
        fields.created_at_range,
        Some((
            "2025-01-01 00:00:00+00".into(),
            "2025-09-01 00:00:00+00".into()
        ))
    );
    assert_eq!(
        iso_timestamp("2025-09-01 00:00:00.5+00"),
        "2025-09-01T00:00:00.5+00:00"
    );
    assert_eq!(
        iso_timestamp("2025-09-01 00:00:00+05:30"),
        "2025-09-01T00:00:00+05:30"
    );
    assert_eq!(iso_timestamp("not a time"), "not a time");
}

#[test]
fn largest_tables_are_read_first() {
    assert_eq!(read_order(&[5.0, 1e6, 0.0, 300.0]), [1, 3, 0, 2]);
}

fn rows(json: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(json).expect("rows")
}

#[test]
fn versioning_validations_find_each_kind_of_problem() {
    let families =
        rows(r#"[{"id":1,"short_code":"a"},{"id":2,"short_code":"b"},{"id":3,"short_code":"c"}]"#);
    let versions = rows(
        r#"[{"id":10,"version_family_id":1,"is_active":true},
            {"id":20,"version_family_id":2,"is_active":true},
            {"id":21,"version_family_id":2,"is_active":true},
            {"id":30,"version_family_id":3,"is_active":false}]"#,
    );
    let map = rows(
        r#"[{"schema_name":"public","table_name":"theme"},
            {"schema_name":"public","table_name":"stray"},
            {"schema_name":"geo","table_name":"region"}]"#,
    );
    let settings = Settings {
        expected_versioned_tables: Some(vec![
            TableName::parse("theme", "public"),
            TableName::parse("scenario", "public"),
            TableName::parse("geo.region", "public"),
        ]),
        ..Settings::default()
    };
    let (active, v) = validate_versioning(Some(&families), Some(&versions), Some(&map), &settings);
    assert_eq!(active.len(), 2);
    assert_eq!(
        active[1].active_version_ids,
        [serde_json::json!(20), serde_json::json!(21)]
    );
    assert_eq!(
        v.families_without_active_version,
        [serde_json::json!({"id": 3, "short_code": "c"})]
    );
    assert_eq!(v.families_with_multiple_active_versions.len(), 1);
    assert_eq!(
        v.families_with_multiple_active_versions[0].version_family_id,
        2
    );
    assert_eq!(v.domain_map_missing_tables, ["scenario"]);
    assert_eq!(v.domain_map_unexpected_tables, ["stray"]);
    assert!(v.unavailable.is_empty());

    // Without the expected list nothing is claimed about the map.
    let (_, v) = validate_versioning(
        Some(&families),
        Some(&versions),
        Some(&map),
        &Settings::default(),
    );
    assert!(v.domain_map_missing_tables.is_empty() && v.domain_map_unexpected_tables.is_empty());
    assert!(!v.expected_versioned_tables_configured);
    assert_eq!(v.unavailable.len(), 1);
    // Without the tables the checks say they could not run.
    let (active, v) = validate_versioning(None, None, None, &settings);
    assert!(active.is_empty());
    assert_eq!(v.unavailable.len(), 3);
}

#[test]
fn the_csv_header_keeps_the_original_columns_in_order() {
    assert_eq!(
        CSV_COLUMNS[..10].join(","),
        "schema,table,records,columns,has_created_by,has_created_at,has_updated_by,has_updated_at,created_by_values,owner"
    );
    assert_eq!(
        CSV_COLUMNS[10], "has_audit_trigger",
        "additions come after owner"
    );
}

#[test]
fn connection_strings_keep_tls_settings_and_never_echo_passwords() {
    let target = parse_target(
        "postgresql://auditor:s3cret@db.example.com:6432/app?sslmode=verify-full&sslrootcert=/tmp/ca.pem&connect_timeout=5",
    )
    .expect("valid");
    assert_eq!(target.ssl_mode, SslMode::VerifyFull);
    assert_eq!(
        target.root_cert.as_deref(),
        Some(std::path::Path::new("/tmp/ca.pem"))
    );
    assert_eq!(target.config.get_user(), Some("auditor"));
    assert_eq!(target.config.get_ports(), [6432]);
    let kv = parse_target("host=db user=a password=p dbname=x sslmode=verify-ca").expect("valid");
    assert_eq!(kv.ssl_mode, SslMode::VerifyCa);
    assert_eq!(
        parse_target("postgresql://h/db").expect("valid").ssl_mode,
        SslMode::Prefer
    );

    let bad = parse_target("postgresql://a:hunter2@h/db?sslmode=sometimes").expect_err("bad mode");
    assert!(
        bad.0.contains("sslmode") && !bad.0.contains("hunter2"),
        "{bad}"
    );
    let env = Env::from_pairs([("DATABASE_URL", "postgresql://a:hunter2@h:notaport/db")]);
    let error = crate::Config::from_env(&env)
        .expect_err("bad port")
        .to_string();
    assert!(
        error.contains("DATABASE_URL") && !error.contains("hunter2"),
        "{error}"
    );
}

/// AWS credentials never go to an unverified server unless the deployment says so; a bare URL
/// keeps libpq's semantics.
#[test]
fn aws_credentials_need_verified_tls_unless_explicitly_allowed() {
    let load = |pairs: &[(&str, &str)]| {
        audit_core::postgres::DatabaseConfig::from_env(
            &Env::from_pairs(pairs.to_vec()),
            "pg-auditor",
        )
    };
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db";
    for mode in ["require", "verify-ca", "prefer", "disable"] {
        let error = load(&[("DB_SECRET_ARN", secret), ("DB_SSLMODE", mode)])
            .expect_err("weaker than verify-full");
        assert_eq!(error.variable(), "DB_SSLMODE", "{mode}: {error}");
        assert!(
            error.to_string().contains("DB_ALLOW_UNVERIFIED_TLS"),
            "{error}"
        );
        assert!(
            load(&[
                ("DB_SECRET_ARN", secret),
                ("DB_SSLMODE", mode),
                ("DB_ALLOW_UNVERIFIED_TLS", "true")
            ])
            .is_ok(),
            "{mode} allowed explicitly"
        );
    }
    assert!(
        load(&[("DB_SECRET_ARN", secret)]).is_ok(),
        "verify-full by default"
    );

    // IAM tokens: verify-full unless the URL or DB_SSLMODE names a weaker mode, which is
    // refused (and never accepted without TLS).
    let iam = load(&[
        ("DATABASE_URL", "postgresql://u@db.example.com/app"),
        ("DB_IAM_AUTH", "true"),
    ])
    .expect("valid");
    match iam.source {
        audit_core::postgres::ConnectionSource::Url(target) => {
            assert_eq!(target.ssl_mode, SslMode::VerifyFull)
        }
        other => panic!("{other:?}"),
    }
    let error = load(&[
        (
            "DATABASE_URL",
            "postgresql://u:hunter2@db.example.com/app?sslmode=require",
        ),
        ("DB_IAM_AUTH", "true"),
    ])
    .expect_err("require does not verify the server");
    assert_eq!(error.variable(), "DATABASE_URL");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(
        load(&[
            (
                "DATABASE_URL",
                "postgresql://u@db.example.com/app?sslmode=require"
            ),
            ("DB_IAM_AUTH", "true"),
            ("DB_ALLOW_UNVERIFIED_TLS", "true"),
        ])
        .is_ok()
    );
    let error = load(&[
        ("DATABASE_URL", "postgresql://u@db.example.com/app"),
        ("DB_IAM_AUTH", "true"),
        ("DB_SSLMODE", "disable"),
        ("DB_ALLOW_UNVERIFIED_TLS", "true"),
    ])
    .expect_err("a token never travels in clear");
    assert_eq!(error.variable(), "DB_SSLMODE");

    // A bare URL: libpq's default, prefer.
    let bare = load(&[("DATABASE_URL", "postgresql://u@h/app")]).expect("valid");
    assert!(matches!(
        bare.source,
        audit_core::postgres::ConnectionSource::Url(ref t) if t.ssl_mode == SslMode::Prefer
    ));
}

/// `application_name` is the function's, unless the URL names one.
#[tokio::test]
async fn sessions_are_named_after_the_function_unless_the_url_names_them() {
    let load = |url: &str, name: &'static str| {
        audit_core::postgres::DatabaseConfig::from_env(
            &Env::from_pairs([("DATABASE_URL", url)]),
            name,
        )
        .expect("valid")
    };
    let target = load("postgresql://u@h/app", "audit-api")
        .resolve(None)
        .await
        .expect("resolved");
    assert_eq!(target.config.get_application_name(), Some("audit-api"));
    let target = load("postgresql://u@h/app?application_name=etl", "pg-auditor")
        .resolve(None)
        .await
        .expect("resolved");
    assert_eq!(target.config.get_application_name(), Some("etl"));
}

#[test]
fn secrets_in_the_rds_shape_default_to_verified_tls() {
    let target = target_from_secret(
        r#"{"username":"u","password":"p","host":"db.x.rds.amazonaws.com","port":"5433","dbname":"app","engine":"postgres"}"#,
        None,
    )
    .expect("valid");
    assert_eq!(target.ssl_mode, SslMode::VerifyFull);
    assert_eq!(target.config.get_ports(), [5433]);
    assert_eq!(target.config.get_dbname(), Some("app"));
    let error = target_from_secret(r#"{"password":"p","host":"h"}"#, None).expect_err("no user");
    assert!(error.0.contains("username"), "{error}");
}

#[test]
fn the_rds_bundle_and_every_mode_build_a_tls_configuration() {
    for mode in [
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ] {
        let mut target = parse_target("postgresql://h/db").expect("valid");
        target.ssl_mode = mode;
        crate::connect::tls_config(&target).expect("tls config");
    }
    let mut target =
        parse_target("postgresql://h/db?sslrootcert=/nonexistent/ca.pem").expect("valid");
    target.ssl_mode = SslMode::VerifyFull;
    let error = crate::connect::tls_config(&target).expect_err("missing file");
    assert!(error.0.contains("sslrootcert"), "{error}");
}

#[test]
fn configuration_errors_name_the_variable() {
    let error = |pairs: &[(&str, &str)]| {
        crate::Config::from_env(&Env::from_pairs(pairs.iter().copied()))
            .expect_err("invalid")
            .variable()
            .to_owned()
    };
    assert_eq!(error(&[]), "DATABASE_URL");
    assert_eq!(
        error(&[
            ("DATABASE_URL", "postgresql://h/db"),
            ("DB_SECRET_ARN", "arn:x")
        ]),
        "DB_SECRET_ARN"
    );
    assert_eq!(
        error(&[
            ("DATABASE_URL", "postgresql://h/db"),
            ("COUNT_MODE", "fast")
        ]),
        "COUNT_MODE"
    );
    assert_eq!(
        error(&[
            ("DATABASE_URL", "postgresql://h/db"),
            ("SAMPLE_ROWS", "1000")
        ]),
        "SAMPLE_ROWS"
    );
    assert_eq!(
        error(&[
            ("DATABASE_URL", "postgresql://h/db"),
            ("LOCK_TIMEOUT_MS", "0")
        ]),
        "LOCK_TIMEOUT_MS"
    );
    assert_eq!(
        error(&[("DATABASE_URL", "postgresql://h/db"), ("PARALLELISM", "0")]),
        "PARALLELISM"
    );
    assert_eq!(
        error(&[
            ("DATABASE_URL", "postgresql://h/db"),
            ("DB_IAM_AUTH", "true"),
            ("DB_SSLMODE", "disable")
        ]),
        "DB_SSLMODE"
    );
    let config = crate::Config::from_env(&Env::from_pairs([
        ("DATABASE_URL", "postgresql://h/db"),
        ("EXPECTED_SEED_TABLES", "a, geo.b"),
        ("SENSITIVE_COLUMN_PATTERNS", "-"),
        ("REPORT_PREFIX", "audits"),
    ]))
    .expect("valid");
    assert_eq!(
        config.settings.expected_seed_tables,
        [
            TableName::parse("a", "public"),
            TableName::parse("geo.b", "public")
        ]
    );
    assert!(config.settings.sensitive_column_patterns.is_empty());
    assert!(config.settings.expected_versioned_tables.is_none());
    assert_eq!(config.prefix, "audits/");
}

#[test]
fn every_variable_read_is_declared() {
    let env = Env::from_pairs([("DATABASE_URL", "postgresql://h/db")]);
    crate::Config::from_env(&env).expect("valid");
    let declared: std::collections::BTreeSet<String> = crate::config_variables()
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(env.names_read(), declared);
    for name in &declared {
        assert!(
            crate::ENVIRONMENT.contains(&name.as_str()),
            "{name} missing from ENVIRONMENT"
        );
    }
}

#[test]
fn event_overrides_name_the_bad_field() {
    let parse = |v: serde_json::Value| Overrides::from_event(&v);
    assert_eq!(
        parse(serde_json::json!({"bucket": 5})).expect_err("bad"),
        "bucket: expected a non-empty string"
    );
    assert!(
        parse(serde_json::json!({"expected_seed_tables": [1]}))
            .expect_err("bad")
            .starts_with("expected_seed_tables[0]")
    );
    assert!(
        parse(serde_json::json!({"sample_rows": -1}))
            .expect_err("bad")
            .starts_with("sample_rows")
    );
    let overrides = parse(serde_json::json!({"count_mode": "exact", "expected_versioned_tables": "a,b", "source": "aws.events"})).expect("valid");
    let settings = Settings::default()
        .with_overrides(&overrides)
        .expect("valid");
    assert_eq!(settings.count_mode, CountMode::Exact);
    assert_eq!(settings.expected_versioned_tables.map(|t| t.len()), Some(2));
    let bad = Overrides {
        count_mode: Some("fast".into()),
        ..Overrides::default()
    };
    assert!(
        Settings::default()
            .with_overrides(&bad)
            .expect_err("bad")
            .starts_with("count_mode")
    );
    assert!(crate::is_scheduled(
        &serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"})
    ));
    assert!(!crate::is_scheduled(&serde_json::json!({"bucket": "b"})));
}

#[test]
fn cli_flags_are_the_variables_in_lower_case() {
    let args: Vec<String> = [
        "--database-url",
        "postgresql://h/db",
        "--out",
        "/tmp/r",
        "--count-mode=exact",
    ]
    .map(str::to_owned)
    .to_vec();
    let env = crate::cli::env_with_flags(Vec::new(), &args).expect("valid");
    let config = crate::Config::from_env(&env).expect("valid");
    assert_eq!(config.settings.count_mode, CountMode::Exact);
    assert_eq!(
        config.output_dir.as_deref(),
        Some(std::path::Path::new("/tmp/r"))
    );
    let unknown =
        crate::cli::env_with_flags(Vec::new(), &["--colour".to_owned(), "red".to_owned()]);
    assert!(
        unknown
            .expect_err("unknown")
            .starts_with("unknown flag --colour")
    );
    let missing = crate::cli::env_with_flags(Vec::new(), &["--out".to_owned()]);
    assert_eq!(missing.expect_err("missing"), "--out needs a value");
}

#[test]
fn file_names_follow_the_original() {
    let now = chrono::DateTime::parse_from_rfc3339("2025-09-22T21:56:26.5Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let (timestamp, stamp) = crate::timestamps(now);
    assert_eq!(stamp, "20250922_215626");
    assert_eq!(timestamp, "2025-09-22T21:56:26.500000+00:00");
    assert_eq!(
        crate::output::normalise_prefix("/database_audits"),
        "database_audits/"
    );
    assert_eq!(crate::output::normalise_prefix(""), "");
    assert_eq!(
        report::display_name("public", "t", &Settings::default()),
        "t"
    );
    assert_eq!(
        report::display_name("geo", "t", &Settings::default()),
        "geo.t"
    );
}
