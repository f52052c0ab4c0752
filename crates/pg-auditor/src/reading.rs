//! What the audit read from the database, table by table, before it is assembled into the
//! report: figures, or the failure of the statement that should have produced them.

use serde::Serialize;
use serde_json::value::RawValue;

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

impl TableReading {
    /// What the exact and sample statements return for a table with no rows (see
    /// [`crate::plan::EMPTY_TABLES_SQL`]): a count of 0, no creation range, no creators,
    /// a size of 0 and no sample rows.
    pub fn of_empty_table() -> Self {
        TableReading {
            exact: Some(Ok(ExactFigures {
                count: 0,
                created_at_range: None,
                created_by_values: None,
            })),
            sample: Some(Ok(SampleFigures {
                bytes: Some(0),
                rows: "[]".to_owned(),
            })),
            ..TableReading::default()
        }
    }
}

/// JSON text the database produced, kept as it is.
pub(crate) fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
}
