//! The CSV summary (the original auditor's ten columns in their order, extras appended, each
//! cell safe to open in a spreadsheet) and the Lambda's response body. Pure code, no I/O.

use crate::report::{AuditReport, TableEntry, display_value};
use serde::Serialize;

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
    let mut csv = csv_header()?;
    csv.extend(csv_rows(&report.tables)?);
    Ok(csv)
}

/// The header line of [`tables_csv`].
pub fn csv_header() -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// The lines of [`tables_csv`] for `entries`, one per table.
pub fn csv_rows(entries: &[TableEntry]) -> Result<Vec<u8>, csv::Error> {
    use audit_core::spreadsheet::csv_cell;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let flag = |b: bool| if b { "True" } else { "False" };
    for entry in entries {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
