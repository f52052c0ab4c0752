//! The counting decisions and the statements: exact or estimated, what a probe selects and how
//! it quotes, redaction, and the order tables are read in.

use super::*;
use crate::catalog::{CatalogColumn, CatalogTable, ColumnStatistics, LeafStatistics};
use crate::settings::{CountMode, Settings};

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

#[test]
fn small_tables_are_read_in_one_statement_that_numbers_its_rows() {
    let probe = |n: u32| TableProbe {
        exact: Some(format!("SELECT '{n}', NULL::text, NULL::text FROM t{n}")),
        sample: format!("SELECT '{n}', '[]'"),
        emptiness: None,
    };
    let (a, b) = (probe(1), probe(2));
    assert_eq!(
        batch_sql(&[&a, &b]).as_deref(),
        Some(
            "SELECT 0::text, e.*, s.* FROM (SELECT '1', NULL::text, NULL::text FROM t1) e \
             CROSS JOIN (SELECT '1', '[]') s UNION ALL \
             SELECT 1::text, e.*, s.* FROM (SELECT '2', NULL::text, NULL::text FROM t2) e \
             CROSS JOIN (SELECT '2', '[]') s"
        )
    );
    // A table counted by estimate, or a seed table's emptiness check, is read alone.
    let estimated = TableProbe {
        exact: None,
        ..probe(3)
    };
    let seed = TableProbe {
        emptiness: Some("SELECT 'true'".into()),
        ..probe(4)
    };
    assert!(!batchable(&estimated) && !batchable(&seed) && batchable(&a));
    assert_eq!(batch_sql(&[&a, &estimated]), None);
    assert_eq!(batch_sql(&[&seed]), None);
}

#[test]
fn small_tables_are_grouped_up_to_the_batch_size_and_the_others_read_alone() {
    // 0 and 5 are not batchable: each stands alone and ends the group before it.
    let order: Vec<usize> = (0..140).collect();
    let groups = batches(&order, |t| t != 0 && t != 5);
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    assert_eq!(sizes, [1, 4, 1, 64, 64, 6]);
    assert_eq!(groups[1], [1, 2, 3, 4]);
    assert_eq!(groups[2], [5]);
    let flat: Vec<usize> = groups.concat();
    assert_eq!(flat, order, "every table once, in order");
    assert!(batches(&[], |_| true).is_empty());
}
