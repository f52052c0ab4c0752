//! The report: the seed's JSON shape (a contract: same keys, extra keys only added), the CSV
//! summary (same columns in the same order, extras appended), and the Lambda response body.
//! Assembled from the catalog and the per-table figures without I/O.

use crate::catalog::{
    Catalog, CatalogColumn, CatalogTable, ColumnStatistics, DatabaseInfo, SchemaObjects,
};
use crate::plan::{self, AuditColumns, CountPlan, EstimateSource};
use crate::settings::{Settings, TableName};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};

/// A statement that failed on one table (or versioning table); the audit went on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueryFailure {
    /// What was being read: `describe` (the table was locked), `count`, `sample_records`,
    /// `emptiness`, `contents`.
    pub step: String,
    pub sqlstate: Option<String>,
    pub message: String,
}

/// What the exact scan of a table returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactFigures {
    pub count: u64,
    /// `{"min": ..., "max": ...}` as JSON text, `None` without values.
    pub created_at_range: Option<String>,
    /// A JSON array of distinct creators (one more than the cap when cut).
    pub created_by_values: Option<String>,
}

/// What the sample statement returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFigures {
    pub bytes: Option<i64>,
    /// A JSON array of redacted rows.
    pub rows: String,
}

/// Everything read from one table.
#[derive(Debug, Clone, Default)]
pub struct TableReading {
    /// Why the table was not read at all (another session held it ACCESS EXCLUSIVE).
    pub describe: Option<QueryFailure>,
    pub exact: Option<Result<ExactFigures, QueryFailure>>,
    pub sample: Option<Result<SampleFigures, QueryFailure>>,
    pub emptiness: Option<Result<bool, QueryFailure>>,
}

/// A versioning table: absent, or its count and (redacted, capped) rows.
#[derive(Debug, Clone)]
pub enum VersioningReading {
    Missing,
    Read { count: u64, rows: String },
    Failed(QueryFailure),
}

/// The four versioning tables, in the original's order.
pub const VERSIONING_TABLES: [&str; 4] = [
    "version_family",
    "version",
    "domain_family_map",
    "developer",
];

// ---------------------------------------------------------------------------------------
// The JSON report
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub audit_timestamp: String,
    pub database_info: DatabaseInfo,
    pub versioning_system: VersioningSystem,
    /// `indexes`, `foreign_keys`, `check_constraints`, `unique_constraints`, `triggers`,
    /// `functions`, at the top level as in the original.
    #[serde(flatten)]
    pub objects: SchemaObjects,
    pub tables: Vec<TableEntry>,
    pub validation: Validation,
    // Additions to the original's shape.
    pub seed_tables: Vec<SeedTableStatus>,
    pub audit_settings: AuditSettings,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct AuditSettings {
    pub count_mode: &'static str,
    pub exact_count_threshold: u64,
    pub schemas_audited: Vec<String>,
    pub audit_trigger_function: String,
    pub sample_rows: u32,
    pub sensitive_column_patterns: Vec<String>,
    /// Read-only, repeatable-read: every figure comes from one snapshot.
    pub snapshot: &'static str,
    pub connections: usize,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct VersioningSystem {
    pub versioning_tables_exist: BTreeMap<&'static str, TableExistence>,
    pub version_families: Box<RawValue>,
    pub versions: Box<RawValue>,
    pub domain_mappings: Box<RawValue>,
    pub developers: Box<RawValue>,
    pub active_versions: Vec<ActiveVersions>,
    pub validation: VersioningValidation,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TableExistence {
    Exists { exists: bool, count: u64 },
    Absent { exists: bool, error: String },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActiveVersions {
    pub version_family_id: serde_json::Value,
    pub active_version_ids: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct VersioningValidation {
    pub families_without_active_version: Vec<serde_json::Value>,
    pub families_with_multiple_active_versions: Vec<ActiveVersions>,
    pub domain_map_missing_tables: Vec<String>,
    pub domain_map_unexpected_tables: Vec<String>,
    /// Whether `EXPECTED_VERSIONED_TABLES` was configured: without it the two domain-map
    /// lists are empty, not "everything is fine".
    pub expected_versioned_tables_configured: bool,
    /// Checks that could not run (a table missing, a column missing).
    pub unavailable: Vec<String>,
    /// Whether the two active-version lists were computed (both versioning tables read): an
    /// empty list is "none found" only when this is true.
    pub active_version_checks_ran: bool,
    /// Whether the two domain-map lists were computed (the map read and
    /// `EXPECTED_VERSIONED_TABLES` configured).
    pub domain_map_checks_ran: bool,
}

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Exact,
    Estimate,
    Unavailable,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Estimate => "estimate",
            Method::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TableEntry {
    pub schema: String,
    pub table: String,
    pub owner: String,
    pub has_indexes: bool,
    pub has_rules: bool,
    pub has_triggers: bool,
    pub has_audit_trigger: bool,
    pub record_count: Option<u64>,
    pub column_count: usize,
    pub columns: Vec<CatalogColumn>,
    pub audit_fields: AuditFields,
    // Additions.
    pub record_count_method: Method,
    /// `count(*)`, `planner` (reltuples scaled to the current size) or `statistics`
    /// (n_live_tup) when estimated.
    pub record_count_source: Option<&'static str>,
    pub is_partitioned: bool,
    pub partition_of: Option<String>,
    pub errors: Vec<QueryFailure>,
}

#[derive(Debug, Serialize)]
pub struct AuditFields {
    pub has_created_by: bool,
    pub has_created_at: bool,
    pub has_updated_by: bool,
    pub has_updated_at: bool,
    pub created_by_values: Vec<Box<RawValue>>,
    pub created_at_range: Option<Box<RawValue>>,
    pub sample_records: Box<RawValue>,
    // Additions.
    pub method: Method,
    pub created_by_values_truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct Validation {
    pub tables_missing_audit_trigger: Vec<String>,
    pub tables_attributed_to_system_only: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SeedStatus {
    Loaded,
    Empty,
    Missing,
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct SeedTableStatus {
    pub schema: String,
    pub table: String,
    pub status: SeedStatus,
    pub record_count: Option<u64>,
    pub record_count_method: Method,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub total_tables: usize,
    pub total_records: u64,
    pub exact_counts: usize,
    pub estimated_counts: usize,
    pub unavailable_counts: usize,
    pub empty_tables: usize,
    pub tables_with_audit_fields: usize,
    pub tables_with_audit_trigger: usize,
    pub tables_with_errors: usize,
    pub versioning_tables_found: usize,
    pub seed_tables_loaded: usize,
    pub seed_tables_empty: usize,
    pub seed_tables_missing: usize,
    pub indexes: usize,
    pub foreign_keys: usize,
    pub triggers: usize,
    pub functions: usize,
}

/// Everything [`assemble`] needs besides the catalog.
#[derive(Debug)]
pub struct Readings {
    pub tables: Vec<TableReading>,
    pub statistics: Vec<ColumnStatistics>,
    pub versioning: Vec<VersioningReading>,
    pub connections: usize,
    pub duration_ms: u64,
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
}

fn raw_string(text: &str) -> Box<RawValue> {
    raw(&serde_json::to_string(text).unwrap_or_else(|_| "null".to_owned()))
}

/// How configured names and validation lists name a table: plain in the default schema (as
/// the original, which only knew `public`), `schema.table` elsewhere.
pub fn display_name(schema: &str, table: &str, settings: &Settings) -> String {
    if schema == settings.default_schema {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}

/// Builds the report from the catalog and what was read.
pub fn assemble(
    catalog: Catalog,
    readings: Readings,
    settings: &Settings,
    audit_timestamp: String,
) -> AuditReport {
    let Catalog {
        database_info,
        tables,
        columns,
        objects,
    } = catalog;
    let mut columns_of: HashMap<u32, Vec<CatalogColumn>> = HashMap::new();
    for column in columns {
        columns_of.entry(column.table_oid).or_default().push(column);
    }
    let mut statistics_of: HashMap<u32, Vec<&ColumnStatistics>> = HashMap::new();
    for stats in &readings.statistics {
        statistics_of
            .entry(stats.table_oid)
            .or_default()
            .push(stats);
    }
    let audit_triggered: std::collections::HashSet<u32> = objects
        .triggers
        .iter()
        .filter(|t| t.function_name == settings.audit_trigger_function)
        .map(|t| t.table_oid)
        .collect();

    let mut entries = Vec::with_capacity(tables.len());
    let mut seed_found: HashMap<(String, String), SeedTableStatus> = HashMap::new();
    for (table, reading) in tables.iter().zip(readings.tables) {
        let table_columns = columns_of.remove(&table.oid).unwrap_or_default();
        let column_refs: Vec<&CatalogColumn> = table_columns.iter().collect();
        let entry = table_entry(
            table,
            table_columns.clone(),
            &column_refs,
            reading,
            statistics_of
                .get(&table.oid)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            audit_triggered.contains(&table.oid),
            database_info.block_size,
            settings,
        );
        if plan::is_listed(table, &settings.expected_seed_tables) {
            seed_found.insert(
                (table.schema.clone(), table.table.clone()),
                seed_status(&entry),
            );
        }
        entries.push(entry);
    }
    let seed_tables = settings
        .expected_seed_tables
        .iter()
        .map(|TableName { schema, table }| {
            seed_found
                .remove(&(schema.clone(), table.clone()))
                .unwrap_or(SeedTableStatus {
                    schema: schema.clone(),
                    table: table.clone(),
                    status: SeedStatus::Missing,
                    record_count: None,
                    record_count_method: Method::Unavailable,
                    error: None,
                })
        })
        .collect::<Vec<_>>();

    let validation = Validation {
        tables_missing_audit_trigger: entries
            .iter()
            .filter(|e| e.audit_fields.has_created_by && !e.has_audit_trigger)
            .map(|e| display_name(&e.schema, &e.table, settings))
            .collect(),
        tables_attributed_to_system_only: entries
            .iter()
            .filter(|e| {
                e.table != "developer"
                    && e.record_count.is_some_and(|n| n > 0)
                    && e.audit_fields.created_by_values.len() == 1
                    && display_value(&e.audit_fields.created_by_values[0])
                        == settings.system_user_id
            })
            .map(|e| display_name(&e.schema, &e.table, settings))
            .collect(),
    };
    let versioning_system = versioning_system(readings.versioning, settings);
    let summary = summarise(
        &entries,
        &seed_tables,
        &versioning_system,
        [
            objects.indexes.len(),
            objects.foreign_keys.len(),
            objects.triggers.len(),
            objects.functions.len(),
        ],
    );
    let mut schemas_audited: Vec<String> = tables.iter().map(|t| t.schema.clone()).collect();
    schemas_audited.dedup();
    AuditReport {
        audit_timestamp,
        database_info,
        versioning_system,
        objects,
        tables: entries,
        validation,
        seed_tables,
        audit_settings: AuditSettings {
            count_mode: settings.count_mode.as_str(),
            exact_count_threshold: settings.exact_count_threshold,
            schemas_audited,
            audit_trigger_function: settings.audit_trigger_function.clone(),
            sample_rows: settings.sample_rows,
            sensitive_column_patterns: settings.sensitive_column_patterns.clone(),
            snapshot: "repeatable read, read only",
            connections: readings.connections,
            duration_ms: readings.duration_ms,
        },
        summary,
    }
}

#[allow(clippy::too_many_arguments)]
fn table_entry(
    table: &CatalogTable,
    columns: Vec<CatalogColumn>,
    column_refs: &[&CatalogColumn],
    reading: TableReading,
    statistics: &[&ColumnStatistics],
    has_audit_trigger: bool,
    block_size: i64,
    settings: &Settings,
) -> TableEntry {
    let audit = AuditColumns::of(column_refs);
    let plan = plan::count_plan(table, settings.count_mode, settings.exact_count_threshold);
    let mut errors: Vec<QueryFailure> = reading.describe.into_iter().collect();
    let sample = figures_or_error(reading.sample, &mut errors);
    let exact = figures_or_error(reading.exact, &mut errors);
    let (record_count, method, source) = match (&exact, plan) {
        (Some(figures), _) => (Some(figures.count), Method::Exact, Some("count(*)")),
        (None, CountPlan::Estimate { rows, source }) => {
            let rows = match source {
                EstimateSource::Planner if !table.is_partitioned => plan::scaled_estimate(
                    table.reltuples,
                    table.relpages,
                    sample.as_ref().and_then(|s| s.bytes),
                    block_size,
                ),
                _ => rows.round(),
            };
            let source = match source {
                EstimateSource::Planner => "planner",
                EstimateSource::Statistics => "statistics",
            };
            (Some(rows as u64), Method::Estimate, Some(source))
        }
        _ => (None, Method::Unavailable, None),
    };
    let max_values = settings.max_created_by_values as usize;
    let (created_by_values, truncated, created_at_range, fields_method) = match &exact {
        Some(figures) => {
            let mut values: Vec<Box<RawValue>> = figures
                .created_by_values
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default();
            let truncated = values.len() > max_values;
            values.truncate(max_values);
            (
                values,
                truncated,
                figures.created_at_range.as_deref().map(raw),
                Method::Exact,
            )
        }
        None if matches!(plan, CountPlan::Estimate { .. }) && audit.any() => {
            let estimated = plan::estimated_audit_fields(statistics);
            let numeric = column_refs.iter().any(|c| {
                c.column_name == "created_by"
                    && matches!(
                        c.data_type.as_str(),
                        "integer" | "bigint" | "smallint" | "numeric"
                    )
            });
            let values = estimated
                .created_by_values
                .iter()
                .take(max_values)
                .map(|v| if numeric { raw(v) } else { raw_string(v) })
                .collect();
            let range = estimated.created_at_range.map(|(min, max)| {
                let iso =
                    |v: &str| serde_json::to_string(&plan::iso_timestamp(v)).unwrap_or_default();
                raw(&format!(
                    r#"{{"min": {}, "max": {}}}"#,
                    iso(&min),
                    iso(&max)
                ))
            });
            (
                values,
                !estimated.created_by_complete,
                range,
                Method::Estimate,
            )
        }
        None if audit.any() => (Vec::new(), false, None, Method::Unavailable),
        None => (Vec::new(), false, None, Method::Exact),
    };
    let mut entry = TableEntry {
        schema: table.schema.clone(),
        table: table.table.clone(),
        owner: table.owner.clone(),
        has_indexes: table.has_indexes,
        has_rules: table.has_rules,
        has_triggers: table.has_triggers,
        has_audit_trigger,
        record_count,
        column_count: columns.len(),
        columns,
        audit_fields: AuditFields {
            has_created_by: audit.created_by,
            has_created_at: audit.created_at,
            has_updated_by: audit.updated_by,
            has_updated_at: audit.updated_at,
            created_by_values,
            created_at_range,
            sample_records: raw(sample.as_ref().map_or("[]", |s| s.rows.as_str())),
            method: fields_method,
            created_by_values_truncated: truncated,
        },
        record_count_method: method,
        record_count_source: source,
        is_partitioned: table.is_partitioned,
        partition_of: table.partition_of.clone(),
        errors,
    };
    match reading.emptiness {
        Some(Ok(has_rows)) => {
            // The estimate may say 0 for a table loaded since the last ANALYZE (or more
            // than 0 for one emptied since): the emptiness check is exact, and wins.
            if !has_rows {
                entry.record_count = Some(0);
                entry.record_count_method = Method::Exact;
                entry.record_count_source = Some("exists");
            } else if entry.record_count == Some(0) || entry.record_count.is_none() {
                entry.record_count = None;
                entry.record_count_method = Method::Unavailable;
                entry.record_count_source = Some("exists");
            }
        }
        Some(Err(failure)) => entry.errors.push(failure),
        None => {}
    }
    entry
}

/// What a statement read, its failure moved into the table's errors.
fn figures_or_error<T>(
    outcome: Option<Result<T, QueryFailure>>,
    errors: &mut Vec<QueryFailure>,
) -> Option<T> {
    match outcome? {
        Ok(figures) => Some(figures),
        Err(failure) => {
            errors.push(failure);
            None
        }
    }
}

fn seed_status(entry: &TableEntry) -> SeedTableStatus {
    let has_rows_checked = entry.record_count_source == Some("exists");
    let status = match (entry.record_count, entry.record_count_method) {
        (Some(0), _) => SeedStatus::Empty,
        (Some(_), _) => SeedStatus::Loaded,
        (None, _) if has_rows_checked => SeedStatus::Loaded,
        (None, _) => SeedStatus::Unknown,
    };
    SeedTableStatus {
        schema: entry.schema.clone(),
        table: entry.table.clone(),
        status,
        record_count: entry.record_count,
        record_count_method: entry.record_count_method,
        error: entry.errors.first().map(|e| e.message.clone()),
    }
}

/// A JSON scalar as text: strings unquoted, everything else as written.
pub fn display_value(value: &RawValue) -> String {
    let text = value.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned())
    } else {
        text.to_owned()
    }
}

fn versioning_system(readings: Vec<VersioningReading>, settings: &Settings) -> VersioningSystem {
    let mut exist = BTreeMap::new();
    let mut contents: Vec<Box<RawValue>> = Vec::new();
    let mut parsed: Vec<Option<Vec<serde_json::Map<String, serde_json::Value>>>> = Vec::new();
    for (name, reading) in VERSIONING_TABLES.iter().zip(readings) {
        match reading {
            VersioningReading::Read { count, rows } => {
                exist.insert(
                    *name,
                    TableExistence::Exists {
                        exists: true,
                        count,
                    },
                );
                parsed.push(serde_json::from_str(&rows).ok());
                contents.push(raw(&rows));
            }
            VersioningReading::Missing | VersioningReading::Failed(_) => {
                let error = match reading {
                    VersioningReading::Failed(failure) => failure.message,
                    _ => format!(
                        "relation \"{}.{name}\" does not exist",
                        settings.default_schema
                    ),
                };
                exist.insert(
                    *name,
                    TableExistence::Absent {
                        exists: false,
                        error,
                    },
                );
                parsed.push(None);
                contents.push(raw("[]"));
            }
        }
    }
    let (active_versions, validation) = validate_versioning(
        parsed[0].as_deref(),
        parsed[1].as_deref(),
        parsed[2].as_deref(),
        settings,
    );
    let mut contents = contents.into_iter();
    let mut next = || contents.next().unwrap_or_else(|| raw("[]"));
    VersioningSystem {
        versioning_tables_exist: exist,
        version_families: next(),
        versions: next(),
        domain_mappings: next(),
        developers: next(),
        active_versions,
        validation,
    }
}

type Row = serde_json::Map<String, serde_json::Value>;

fn is_true(value: Option<&serde_json::Value>) -> bool {
    matches!(value, Some(serde_json::Value::Bool(true)))
}

/// The original's versioning checks, on the rows as read.
pub fn validate_versioning(
    families: Option<&[Row]>,
    versions: Option<&[Row]>,
    domain_map: Option<&[Row]>,
    settings: &Settings,
) -> (Vec<ActiveVersions>, VersioningValidation) {
    let mut validation = VersioningValidation {
        expected_versioned_tables_configured: settings.expected_versioned_tables.is_some(),
        ..Default::default()
    };
    let mut active: Vec<ActiveVersions> = Vec::new();
    match versions {
        Some(versions) => {
            let mut by_family: BTreeMap<String, ActiveVersions> = BTreeMap::new();
            for version in versions.iter().filter(|v| is_true(v.get("is_active"))) {
                let family = version
                    .get("version_family_id")
                    .cloned()
                    .unwrap_or_default();
                by_family
                    .entry(sort_key(&family))
                    .or_insert_with(|| ActiveVersions {
                        version_family_id: family,
                        active_version_ids: Vec::new(),
                    })
                    .active_version_ids
                    .push(version.get("id").cloned().unwrap_or_default());
            }
            active = by_family.into_values().collect();
        }
        None => validation
            .unavailable
            .push("active versions: the version table was not read".to_owned()),
    }
    match (families, versions) {
        (Some(families), Some(_)) => {
            validation.active_version_checks_ran = true;
            for family in families {
                let id = family.get("id").cloned().unwrap_or_default();
                let count = active
                    .iter()
                    .find(|a| a.version_family_id == id)
                    .map_or(0, |a| a.active_version_ids.len());
                if count == 0 {
                    let mut named = serde_json::Map::new();
                    named.insert("id".to_owned(), id);
                    if let Some(code) = family.get("short_code") {
                        named.insert("short_code".to_owned(), code.clone());
                    }
                    validation
                        .families_without_active_version
                        .push(serde_json::Value::Object(named));
                }
            }
            validation.families_with_multiple_active_versions = active
                .iter()
                .filter(|a| a.active_version_ids.len() > 1)
                .cloned()
                .collect();
        }
        _ => validation.unavailable.push(
            "families without / with several active versions: version_family or version was not read"
                .to_owned(),
        ),
    }
    match (domain_map, &settings.expected_versioned_tables) {
        (Some(map), Some(expected)) => {
            validation.domain_map_checks_ran = true;
            let mapped: Vec<TableName> = map
                .iter()
                .filter_map(|row| {
                    let table = row.get("table_name")?.as_str()?;
                    let schema = row
                        .get("schema_name")
                        .and_then(|s| s.as_str())
                        .unwrap_or(&settings.default_schema);
                    Some(TableName {
                        schema: schema.to_owned(),
                        table: table.to_owned(),
                    })
                })
                .collect();
            let name = |t: &TableName| display_name(&t.schema, &t.table, settings);
            validation.domain_map_missing_tables = expected
                .iter()
                .filter(|t| !mapped.contains(t))
                .map(name)
                .collect();
            let mut unexpected: Vec<String> = mapped
                .iter()
                .filter(|t| !expected.contains(t))
                .map(name)
                .collect();
            unexpected.sort();
            unexpected.dedup();
            validation.domain_map_unexpected_tables = unexpected;
        }
        (None, _) => validation
            .unavailable
            .push("domain map checks: domain_family_map was not read".to_owned()),
        (Some(_), None) => validation
            .unavailable
            .push("domain map checks: EXPECTED_VERSIONED_TABLES is not configured".to_owned()),
    }
    (active, validation)
}

/// Orders family ids numerically when they are numbers.
fn sort_key(value: &serde_json::Value) -> String {
    match value.as_i64() {
        Some(n) => format!("{:020}", n.saturating_add(i64::MAX / 2)),
        None => value.to_string(),
    }
}

fn summarise(
    entries: &[TableEntry],
    seeds: &[SeedTableStatus],
    versioning: &VersioningSystem,
    [indexes, foreign_keys, triggers, functions]: [usize; 4],
) -> Summary {
    let count = |f: &dyn Fn(&TableEntry) -> bool| entries.iter().filter(|e| f(e)).count();
    let seeds_with = |s: SeedStatus| seeds.iter().filter(|seed| seed.status == s).count();
    Summary {
        total_tables: entries.len(),
        // Partitions are counted once, through their partitioned table.
        total_records: entries
            .iter()
            .filter(|e| e.partition_of.is_none())
            .filter_map(|e| e.record_count)
            .sum(),
        exact_counts: count(&|e| e.record_count_method == Method::Exact),
        estimated_counts: count(&|e| e.record_count_method == Method::Estimate),
        unavailable_counts: count(&|e| e.record_count_method == Method::Unavailable),
        empty_tables: count(&|e| e.record_count == Some(0)),
        tables_with_audit_fields: count(&|e| {
            let f = &e.audit_fields;
            f.has_created_by || f.has_created_at || f.has_updated_by || f.has_updated_at
        }),
        tables_with_audit_trigger: count(&|e| e.has_audit_trigger),
        tables_with_errors: count(&|e| !e.errors.is_empty()),
        versioning_tables_found: versioning
            .versioning_tables_exist
            .values()
            .filter(|e| matches!(e, TableExistence::Exists { .. }))
            .count(),
        seed_tables_loaded: seeds_with(SeedStatus::Loaded),
        seed_tables_empty: seeds_with(SeedStatus::Empty),
        seed_tables_missing: seeds_with(SeedStatus::Missing),
        indexes,
        foreign_keys,
        triggers,
        functions,
    }
}

// ---------------------------------------------------------------------------------------
// CSV summary and the Lambda response
// ---------------------------------------------------------------------------------------

/// The CSV header: the original's ten columns in its order (scripts read them by position),
/// then additions.
pub const CSV_COLUMNS: [&str; 14] = [
    "schema",
    "table",
    "records",
    "columns",
    "has_created_by",
    "has_created_at",
    "has_updated_by",
    "has_updated_at",
    "created_by_values",
    "owner",
    "has_audit_trigger",
    "records_method",
    "is_partitioned",
    "errors",
];

/// The CSV summary, as the original's pandas wrote it: `True`/`False`, `created_by_values`
/// joined with `,` in one quoted field, `records` empty when unavailable. Every text cell is
/// [`audit_core::spreadsheet::csv_cell`]: a table named `=HYPERLINK(...)` reads as text.
pub fn tables_csv(report: &AuditReport) -> Result<Vec<u8>, csv::Error> {
    use audit_core::spreadsheet::csv_cell;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    let flag = |b: bool| if b { "True" } else { "False" };
    for entry in &report.tables {
        let fields = &entry.audit_fields;
        let values = fields
            .created_by_values
            .iter()
            .map(|v| display_value(v))
            .collect::<Vec<_>>()
            .join(",");
        writer.write_record([
            &*csv_cell(&entry.schema),
            &*csv_cell(&entry.table),
            &entry
                .record_count
                .map(|n| n.to_string())
                .unwrap_or_default(),
            &entry.column_count.to_string(),
            flag(fields.has_created_by),
            flag(fields.has_created_at),
            flag(fields.has_updated_by),
            flag(fields.has_updated_at),
            &*csv_cell(&values),
            &*csv_cell(&entry.owner),
            flag(entry.has_audit_trigger),
            entry.record_count_method.as_str(),
            flag(entry.is_partitioned),
            &entry.errors.len().to_string(),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// Where the report files went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportLocations {
    pub detailed_json: String,
    pub tables_csv: String,
    pub html: String,
}

/// The Lambda response body on success.
pub fn response_body(report: &AuditReport, locations: &ReportLocations) -> serde_json::Value {
    let errors = report.summary.tables_with_errors;
    let message = if errors == 0 {
        "Database audit completed successfully".to_owned()
    } else {
        format!(
            "Database audit completed; {errors} table(s) could not be read in full (see their `errors`)"
        )
    };
    serde_json::json!({
        "message": message,
        "timestamp": report.audit_timestamp,
        "database": report.database_info.database_name,
        "session_user": report.database_info.session_user,
        "summary": report.summary,
        "validation": {
            "tables_missing_audit_trigger": report.validation.tables_missing_audit_trigger,
            "tables_attributed_to_system_only": report.validation.tables_attributed_to_system_only,
            "versioning": report.versioning_system.validation,
        },
        "reports": locations,
    })
}
