//! The JSON report, in the original auditor's shape (a contract: same keys, extra keys only
//! added), assembled from the catalog and the per-table [`crate::reading`]s without I/O. The
//! versioning checks are in [`crate::versioning`], the CSV summary in [`crate::csv_summary`],
//! the HTML page in [`crate::html`].

use crate::catalog::{
    Catalog, CatalogColumn, CatalogTable, ColumnStatistics, DatabaseInfo, SchemaObjects,
};
use crate::plan::{self, AuditColumns, CountPlan, EstimateSource};
use crate::reading::{QueryFailure, TableReading, raw};
use crate::settings::{Settings, TableName, display_name};
use crate::versioning::{TableExistence, VersioningReading, VersioningSystem, versioning_system};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// A statement that failed on one table (or versioning table); the audit went on.

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
    /// Statements that read the tables: small tables are read many to a statement
    /// (a batch that failed is read again table by table, each statement counted).
    pub table_statements: u64,
    pub duration_ms: u64,
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

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Default, Serialize)]
pub struct Validation {
    pub tables_missing_audit_trigger: NameList,
    pub tables_attributed_to_system_only: NameList,
    /// The same tables always schema-qualified (the two lists above leave the default
    /// schema out, as the original did), for the HTML page.
    #[serde(skip)]
    pub missing_audit_trigger_qualified: NameList,
    #[serde(skip)]
    pub system_only_qualified: NameList,
}

/// A list of table names held as one text (a JSON list of strings in the report). The
/// validation lists can name every table: at 100,000 tables, four lists of a `String` each
/// held about 20 MB of heap for 4 MB of names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList {
    text: String,
    ends: Vec<usize>,
}

impl NameList {
    pub fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len());
    }

    /// Appends the names of `later`.
    pub fn append(&mut self, later: NameList) {
        let base = self.text.len();
        self.text.push_str(&later.text);
        self.ends.extend(later.ends.iter().map(|end| base + end));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.text[start..end])
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }
}

impl Serialize for NameList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<const N: usize> PartialEq<[&str; N]> for NameList {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

/// `schema.table` as PostgreSQL would print it: a part that is not a plain lower-case name is
/// double-quoted (a table called `a.b` is not the table `b` of schema `a`).
pub fn qualified(schema: &str, table: &str) -> String {
    fn part(name: &str) -> String {
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
        if plain {
            name.to_owned()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }
    format!("{}.{}", part(schema), part(table))
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

/// How the run went, for `audit_settings`.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts {
    pub connections: usize,
    pub table_statements: u64,
    pub duration_ms: u64,
}

fn raw_string(text: &str) -> Box<RawValue> {
    raw(&serde_json::to_string(text).unwrap_or_else(|_| "null".to_owned()))
}

/// One part of the report (the tables of a few schemas, [`crate::catalog::catalog_parts`]):
/// its tables' entries and its schemas' objects, each sorted as the whole report sorts them.
#[derive(Debug, Clone)]
pub struct PartReport {
    pub database_info: DatabaseInfo,
    pub entries: Vec<TableEntry>,
    pub objects: SchemaObjects,
}

/// Builds one part of the report from its catalog and what was read of its tables
/// (`readings` and `statistics` in the catalog's table order).
pub fn assemble_part(
    catalog: Catalog,
    readings: Vec<TableReading>,
    statistics: &[ColumnStatistics],
    settings: &Settings,
) -> PartReport {
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
    for stats in statistics {
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
    let entries = tables
        .iter()
        .zip(readings)
        .map(|(table, reading)| {
            let table_columns = columns_of.remove(&table.oid).unwrap_or_default();
            table_entry(
                table,
                table_columns,
                reading,
                statistics_of
                    .get(&table.oid)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                audit_triggered.contains(&table.oid),
                database_info.block_size,
                settings,
            )
        })
        .collect();
    PartReport {
        database_info,
        entries,
        objects,
    }
}

/// What one part adds to the report-wide lists, kept until every part is in.
#[derive(Debug, Default)]
struct PartLists {
    schemas: Vec<String>,
    validation: Validation,
    with_errors: Vec<TableEntry>,
}

/// What the report says about all its tables (summary, validation lists, seed tables),
/// gathered part by part in whatever order the parts are read, so that no part needs to be
/// kept once it is added.
#[derive(Debug, Default)]
pub struct Totals {
    summary: Summary,
    lists: std::collections::BTreeMap<usize, PartLists>,
    seed_found: HashMap<(String, String), SeedTableStatus>,
    database_info: Option<DatabaseInfo>,
}

impl Totals {
    /// Adds part `index` (its position in schema order).
    pub fn add(&mut self, index: usize, part: &PartReport, settings: &Settings) {
        if self.database_info.is_none() {
            self.database_info = Some(part.database_info.clone());
        }
        let lists = self.lists.entry(index).or_default();
        for entry in &part.entries {
            count(&mut self.summary, entry);
            if lists.schemas.last() != Some(&entry.schema) {
                lists.schemas.push(entry.schema.clone());
            }
            let validation = &mut lists.validation;
            if entry.audit_fields.has_created_by && !entry.has_audit_trigger {
                validation.tables_missing_audit_trigger.push(&display_name(
                    &entry.schema,
                    &entry.table,
                    settings,
                ));
                validation
                    .missing_audit_trigger_qualified
                    .push(&qualified(&entry.schema, &entry.table));
            }
            let fields = &entry.audit_fields;
            if entry.table != "developer"
                && entry.record_count.is_some_and(|n| n > 0)
                && fields.created_by_values.len() == 1
                && display_value(&fields.created_by_values[0]) == settings.system_user_id
            {
                validation
                    .tables_attributed_to_system_only
                    .push(&display_name(&entry.schema, &entry.table, settings));
                validation
                    .system_only_qualified
                    .push(&qualified(&entry.schema, &entry.table));
            }
            if !entry.errors.is_empty() {
                lists.with_errors.push(entry.clone());
            }
            if plan::is_listed(&entry.schema, &entry.table, &settings.expected_seed_tables) {
                self.seed_found.insert(
                    (entry.schema.clone(), entry.table.clone()),
                    seed_status(entry),
                );
            }
        }
        let objects = &part.objects;
        self.summary.indexes += objects.indexes.len();
        self.summary.foreign_keys += objects.foreign_keys.len();
        self.summary.triggers += objects.triggers.len();
        self.summary.functions += objects.functions.len();
    }

    /// The report without its parts: every field as the whole report has it, but `tables`
    /// holds only the tables with errors (what the HTML page lists apart) and the objects
    /// are empty. [`AuditReport::with_parts`] puts the parts in.
    pub fn finish(
        self,
        versioning: Vec<VersioningReading>,
        settings: &Settings,
        facts: RunFacts,
        audit_timestamp: String,
    ) -> AuditReport {
        let Totals {
            mut summary,
            lists,
            mut seed_found,
            database_info,
        } = self;
        let seed_tables: Vec<SeedTableStatus> = settings
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
            .collect();
        let mut validation = Validation::default();
        let mut schemas_audited: Vec<String> = Vec::new();
        let mut with_errors = Vec::new();
        for (_, part) in lists {
            let later = part.validation;
            validation
                .tables_missing_audit_trigger
                .append(later.tables_missing_audit_trigger);
            validation
                .missing_audit_trigger_qualified
                .append(later.missing_audit_trigger_qualified);
            validation
                .tables_attributed_to_system_only
                .append(later.tables_attributed_to_system_only);
            validation
                .system_only_qualified
                .append(later.system_only_qualified);
            schemas_audited.extend(part.schemas);
            with_errors.extend(part.with_errors);
        }
        schemas_audited.dedup();
        let versioning_system = versioning_system(versioning, settings);
        summary.versioning_tables_found = versioning_system
            .versioning_tables_exist
            .values()
            .filter(|e| matches!(e, TableExistence::Exists { .. }))
            .count();
        let seeds_with = |s: SeedStatus| seed_tables.iter().filter(|seed| seed.status == s).count();
        summary.seed_tables_loaded = seeds_with(SeedStatus::Loaded);
        summary.seed_tables_empty = seeds_with(SeedStatus::Empty);
        summary.seed_tables_missing = seeds_with(SeedStatus::Missing);
        AuditReport {
            audit_timestamp,
            database_info: database_info.unwrap_or_default(),
            versioning_system,
            objects: SchemaObjects::default(),
            tables: with_errors,
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
                connections: facts.connections,
                table_statements: facts.table_statements,
                duration_ms: facts.duration_ms,
            },
            summary,
        }
    }
}

impl AuditReport {
    /// The whole report: `head` from [`Totals::finish`], with the parts (in schema order)
    /// as its tables and objects.
    pub fn with_parts(mut self, parts: impl IntoIterator<Item = PartReport>) -> AuditReport {
        self.tables.clear();
        for part in parts {
            self.tables.extend(part.entries);
            self.objects.append(part.objects);
        }
        self
    }
}

/// Adds one table to the summary's counts. Partitions are counted once, through their
/// partitioned table, in the total of records.
fn count(summary: &mut Summary, e: &TableEntry) {
    let fields = &e.audit_fields;
    summary.total_tables += 1;
    if e.partition_of.is_none() {
        summary.total_records += e.record_count.unwrap_or(0);
    }
    match e.record_count_method {
        Method::Exact => summary.exact_counts += 1,
        Method::Estimate => summary.estimated_counts += 1,
        Method::Unavailable => summary.unavailable_counts += 1,
    }
    summary.empty_tables += usize::from(e.record_count == Some(0));
    summary.tables_with_audit_fields += usize::from(
        fields.has_created_by
            || fields.has_created_at
            || fields.has_updated_by
            || fields.has_updated_at,
    );
    summary.tables_with_audit_trigger += usize::from(e.has_audit_trigger);
    summary.tables_with_errors += usize::from(!e.errors.is_empty());
}

fn table_entry(
    table: &CatalogTable,
    columns: Vec<CatalogColumn>,
    reading: TableReading,
    statistics: &[&ColumnStatistics],
    has_audit_trigger: bool,
    block_size: i64,
    settings: &Settings,
) -> TableEntry {
    let column_refs: Vec<&CatalogColumn> = columns.iter().collect();
    let audit = AuditColumns::of(&column_refs);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_list_keeps_names_whole_and_in_order_across_appends() {
        let mut first = NameList::default();
        first.push("public.a");
        first.push("");
        let mut later = NameList::default();
        later.push("\"Odd \"\"Name\".t");
        first.append(later);
        first.append(NameList::default());
        assert_eq!(first.len(), 3);
        assert_eq!(first, ["public.a", "", "\"Odd \"\"Name\".t"]);
        assert!(first.contains("public.a") && !first.contains("public"));
        assert_eq!(
            serde_json::to_string(&first).expect("json"),
            r#"["public.a","","\"Odd \"\"Name\".t"]"#
        );
        assert!(NameList::default().is_empty());
    }
}
