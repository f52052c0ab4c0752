//! What a search or export request asks for: the filters, the page size, the opaque keyset
//! [`Cursor`], the export's format; one stored event as the API answers it ([`EventRecord`])
//! and pages of them. Query strings become typed values or FastAPI-shaped field errors. No I/O.

use crate::event::{FieldError, TimestampText, nul_error, parse_timestamp};
use crate::json_text::JsonText;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// `GET .../recent`.
pub const RECENT_EVENTS: i64 = 500;
/// `page_size` bounds and default, as the original service.
pub const MAX_PAGE_SIZE: i64 = 5000;
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// The timestamps a cursor may carry: 1900-01-01 to 9999-12-31 (microseconds since 1970).
const CURSOR_TIMESTAMPS: std::ops::RangeInclusive<i64> =
    -2_208_988_800_000_000..=253_402_300_799_999_999;

/// The position after the last row of a page: newest-first order is `(eventtimestamp, id)`
/// descending, so the next page is everything strictly below it. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timestamp: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.timestamp.timestamp_micros(),
            self.id
        ))
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != "v1" {
            return None;
        }
        let micros: i64 = parts.next()?.parse().ok()?;
        let id: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let timestamp = DateTime::from_timestamp_micros(micros)?;
        // The server issues cursors from stored rows only: a positive id (bigserial) and a
        // timestamp of this era. Anything else (a year before 4713 BC, which PostgreSQL
        // cannot even represent) was not issued here.
        if id < 1 || !CURSOR_TIMESTAMPS.contains(&micros) {
            return None;
        }
        Some(Cursor { timestamp, id })
    }
}

/// Which page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The original service's `page_number` (1-based; OFFSET, slow deep in a large result).
    Number(i64),
    /// Keyset: the rows after a cursor (constant time at any depth).
    After(Cursor),
}

/// The original service's search filters, validated. Names are resolved by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilters {
    pub from_date: Option<TimestampText>,
    pub to_date: Option<TimestampText>,
    pub functionality: Option<String>,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    pub user: Option<String>,
    pub message_pattern: Option<String>,
}

/// A search request: filters and a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub filters: SearchFilters,
    pub page: Page,
    pub page_size: i64,
}

/// The last value of each query parameter (FastAPI's rule for scalar parameters).
pub fn query_map(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    pairs.into_iter().collect()
}

fn query_loc(field: &str) -> Vec<Value> {
    vec![json!("query"), json!(field)]
}

fn query_int(
    query: &HashMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let text = query.get(field)?;
    text.trim().parse().ok().or_else(|| {
        errors.push(FieldError::new(
            query_loc(field),
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ));
        None
    })
}

fn query_text(
    query: &HashMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let text = query.get(field)?;
    if text.contains('\0') {
        errors.push(nul_error(&[json!("query")], field));
        return None;
    }
    Some(text.clone())
}

/// Validates the search filters of a query string (search and export share them).
pub fn parse_filters(
    query: &HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> SearchFilters {
    let mut timestamp = |field: &str| {
        let text = query.get(field)?;
        parse_timestamp(text).or_else(|| {
            errors.push(FieldError::new(
                query_loc(field),
                "datetime_from_date_parsing",
                "Input should be a valid datetime (RFC 3339, e.g. 2025-09-25T10:30:00Z)",
            ));
            None
        })
    };
    let from_date = timestamp("from_date");
    let to_date = timestamp("to_date");
    SearchFilters {
        from_date,
        to_date,
        functionality: query_text(query, "functionality", errors),
        store_id: query_int(query, "store_id", errors),
        company_id: query_int(query, "company_id", errors),
        user: query_text(query, "user", errors),
        message_pattern: query_text(query, "message_pattern", errors),
    }
}

/// Validates a search query string: the filters, `page_size` (1..=5000, default 500), and
/// either `page_number` (>= 1, default 1) or `cursor`.
pub fn parse_search(query: &HashMap<String, String>) -> Result<SearchRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let filters = parse_filters(query, &mut errors);
    let page_size = query_int(query, "page_size", &mut errors).unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        errors.push(FieldError::new(
            query_loc("page_size"),
            if page_size < 1 {
                "greater_than_equal"
            } else {
                "less_than_equal"
            },
            format!("Input should be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let page_number = query_int(query, "page_number", &mut errors);
    if let Some(n) = page_number
        && !(1..=i64::from(i32::MAX)).contains(&n)
    {
        errors.push(FieldError::new(
            query_loc("page_number"),
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ));
    }
    let page = match query.get("cursor") {
        None => Page::Number(page_number.unwrap_or(1)),
        Some(text) => match Cursor::decode(text) {
            Some(_) if page_number.is_some_and(|n| n != 1) => {
                errors.push(FieldError::new(
                    query_loc("cursor"),
                    "value_error",
                    "Use either cursor or page_number, not both",
                ));
                Page::Number(1)
            }
            Some(cursor) => Page::After(cursor),
            None => {
                errors.push(FieldError::new(
                    query_loc("cursor"),
                    "value_error",
                    "Invalid cursor: pass the X-Next-Cursor value of the previous page unchanged",
                ));
                Page::Number(1)
            }
        },
    };
    if errors.is_empty() {
        Ok(SearchRequest {
            filters,
            page,
            page_size,
        })
    } else {
        Err(errors)
    }
}

/// One stored event, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEventOut)]
pub struct EventRecord {
    pub id: i64,
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub event_timestamp: DateTime<Utc>,
    pub functionality: String,
    pub event_type: String,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    pub user: Option<String>,
    pub message: Option<String>,
    /// Success or Failed.
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub additional_data: Option<JsonText>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(t))
}

/// RFC 3339 in UTC with `Z`, fractional seconds only when present.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A page of results: at most `page_size` rows, and the cursor of the next page when the
/// lookahead row showed there is one.
pub fn split_page(
    mut rows: Vec<EventRecord>,
    page_size: i64,
) -> (Vec<EventRecord>, Option<Cursor>) {
    let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
    if rows.len() > page_size {
        rows.truncate(page_size);
        let next = rows.last().map(|last| Cursor {
            timestamp: last.event_timestamp,
            id: last.id,
        });
        (rows, next)
    } else {
        (rows, None)
    }
}

/// The export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Xlsx,
    Csv,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Csv => "csv",
        }
    }
}

/// An export request: the filters of a search, or the newest [`RECENT_EVENTS`] (`recent`),
/// as a workbook or CSV (`format`).
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub filters: SearchFilters,
    pub recent: bool,
    pub format: ExportFormat,
}

/// `GET .../export`'s query string, every problem named by its parameter.
pub fn parse_export(query: &HashMap<String, String>) -> Result<ExportRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let filters = parse_filters(query, &mut errors);
    let recent = match query
        .get("recent")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false" | "0" | "no" | "off") => false,
        Some("true" | "1" | "yes" | "on") => true,
        Some(_) => {
            errors.push(FieldError::new(
                query_loc("recent"),
                "bool_parsing",
                "Input should be a valid boolean",
            ));
            false
        }
    };
    let format = match query.get("format").map(String::as_str) {
        None | Some("xlsx") => ExportFormat::Xlsx,
        Some("csv") => ExportFormat::Csv,
        Some(_) => {
            errors.push(FieldError::new(
                query_loc("format"),
                "enum",
                "Input should be 'xlsx' or 'csv'",
            ));
            ExportFormat::Xlsx
        }
    };
    if errors.is_empty() {
        Ok(ExportRequest {
            filters,
            recent,
            format,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn filters(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        query_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let cursor = Cursor {
            timestamp: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("t"),
            id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "not-a-cursor", "djE6MToxOjE", "djI6MToy", "djE6eDoy"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        // Well-formed, but not issued here: PostgreSQL cannot hold a year before 4713 BC
        // (SQLSTATE 22008 was a 500), and ids start at 1.
        let forge = |micros: i64, id: i64| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{id}"))
        };
        for (micros, id) in [
            (-210_000_000_000_000_000, 1),
            (i64::MIN / 2, 1),
            (300_000_000_000_000_000, 1),
            (1_764_000_000_000_000, 0),
            (1_764_000_000_000_000, -5),
        ] {
            assert_eq!(Cursor::decode(&forge(micros, id)), None, "{micros} {id}");
        }
        assert!(Cursor::decode(&forge(1_764_000_000_000_000, 1)).is_some());
    }

    #[test]
    fn search_parameters_are_validated_by_name() {
        let fields = |pairs: &[(&str, &str)]| -> Vec<Value> {
            parse_search(&filters(pairs))
                .expect_err("invalid")
                .into_iter()
                .map(|e| e.loc[1].clone())
                .collect()
        };
        assert_eq!(fields(&[("page_size", "0")]), [json!("page_size")]);
        assert_eq!(
            fields(&[("page_size", "5001"), ("page_number", "-1")]),
            [json!("page_size"), json!("page_number")]
        );
        assert_eq!(
            fields(&[("company_id", "1.5"), ("to_date", "x")]),
            [json!("to_date"), json!("company_id")]
        );
        let cursor = Cursor {
            timestamp: DateTime::UNIX_EPOCH,
            id: 1,
        }
        .encode();
        assert_eq!(
            fields(&[("cursor", &cursor), ("page_number", "2")]),
            [json!("cursor")]
        );
        assert!(parse_search(&filters(&[("page_size", "5000"), ("unknown", "ignored")])).is_ok());
    }

    #[test]
    fn pages_keep_page_size_rows_and_point_past_the_last() {
        let record = |id: i64| EventRecord {
            id,
            event_timestamp: DateTime::from_timestamp(1_700_000_000 - id, 0).expect("t"),
            functionality: "Authenticate".into(),
            event_type: "Login".into(),
            store_id: None,
            company_id: None,
            user: None,
            message: None,
            status: "Success".into(),
            additional_data: None,
        };
        let (rows, next) = split_page((1..=4).map(record).collect(), 3);
        assert_eq!(rows.len(), 3);
        assert_eq!(next.map(|c| c.id), Some(3));
        let (rows, next) = split_page((1..=3).map(record).collect(), 3);
        assert_eq!((rows.len(), next), (3, None));
    }
}
