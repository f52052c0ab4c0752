//! The versioning system's tables (`version_family`, `version`, `domain_family_map`,
//! `developer`): what was read of them, and the checks on it (families without an active
//! version or with several, the domain map against `EXPECTED_VERSIONED_TABLES`). A check that
//! could not run says so; it never reads as "no problem found". Pure code, no I/O.

use crate::reading::{QueryFailure, raw};
use crate::settings::{Settings, TableName, display_name};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

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

pub(crate) fn versioning_system(
    readings: Vec<VersioningReading>,
    settings: &Settings,
) -> VersioningSystem {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        serde_json::from_str(json).expect("rows")
    }

    #[test]
    fn versioning_validations_find_each_kind_of_problem() {
        let families = rows(
            r#"[{"id":1,"short_code":"a"},{"id":2,"short_code":"b"},{"id":3,"short_code":"c"}]"#,
        );
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
        let (active, v) =
            validate_versioning(Some(&families), Some(&versions), Some(&map), &settings);
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
        assert!(
            v.domain_map_missing_tables.is_empty() && v.domain_map_unexpected_tables.is_empty()
        );
        assert!(!v.expected_versioned_tables_configured);
        assert_eq!(v.unavailable.len(), 1);
        // Without the tables the checks say they could not run.
        let (active, v) = validate_versioning(None, None, None, &settings);
        assert!(active.is_empty());
        assert_eq!(v.unavailable.len(), 3);
    }
}
