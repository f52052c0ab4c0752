//! An audit event as a client sends it: one event or a batch of up to 1,000 validated into
//! [`NewEvent`]s against the [`Catalog`] of functionalities and event types, every problem a
//! FastAPI-shaped [`FieldError`] naming its field. No I/O.

use crate::json_text::JsonText;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The original service's `username varchar(20)`.
pub const MAX_USER_CHARS: usize = 20;
/// Events in one batch request, all stored or none.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// One entry of a FastAPI 422 body: `{"loc": ["body", "user"], "msg": ..., "type": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    /// Where: `["body", "user"]`, `["body", 3, "status"]`, `["query", "page_size"]`.
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
}

impl FieldError {
    pub fn new(loc: Vec<Value>, kind: &'static str, msg: impl Into<String>) -> Self {
        FieldError {
            loc,
            msg: msg.into(),
            kind,
        }
    }
}

/// The event's outcome, the original service's CHECK constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::Failed => "Failed",
        }
    }
}

/// A timestamp as PostgreSQL will read it (`$n::text::timestamptz`): with an offset it is
/// that instant; without one it is wall-clock time in the session's `TimeZone` (the
/// configured `LOCAL_TIMEZONE`, Central Time by default as the original service stored it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampText(pub String);

/// Parses the datetime forms FastAPI (pydantic) accepts from JSON and query strings: RFC 3339
/// with `Z` or an offset, ISO 8601 without an offset (`T` or space), and a bare date
/// (midnight). Years 1..=9999 only, which PostgreSQL and Excel both hold.
pub fn parse_timestamp(text: &str) -> Option<TimestampText> {
    let text = text.trim();
    if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
        // Sent as UTC: PostgreSQL refuses offsets beyond ±15:59 that RFC 3339 allows.
        let utc = zoned.with_timezone(&Utc);
        return in_range(utc.naive_utc())
            .then(|| TimestampText(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    in_range(naive).then(|| TimestampText(naive.format("%Y-%m-%dT%H:%M:%S%.f").to_string()))
}

fn in_range(t: NaiveDateTime) -> bool {
    use chrono::Datelike as _;
    (1..=9999).contains(&t.year())
}

/// A validated event, its names resolved to ids: what one row of `auditevents` receives.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `None`: the time the database stores it.
    pub timestamp: Option<TimestampText>,
    pub functionality_id: i32,
    pub event_type_id: i32,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    pub user: Option<String>,
    pub message: Option<String>,
    pub status: Status,
    /// As the client sent it (see [`exact_additional_data`]).
    pub additional_data: Option<JsonText>,
}

/// The functionalities and their event types, by name (as clients send them) and by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    functionalities: HashMap<String, FunctionalityEntry>,
}

#[derive(Debug, Clone)]
struct FunctionalityEntry {
    id: i32,
    event_types: Vec<(String, i32)>,
}

impl Catalog {
    /// From `(functionality id, functionality name, event type id, event type name)` rows;
    /// a functionality without event types has `None` for the last two.
    pub fn from_rows(rows: impl IntoIterator<Item = (i32, String, Option<(i32, String)>)>) -> Self {
        let mut functionalities: HashMap<String, FunctionalityEntry> = HashMap::new();
        for (id, name, event_type) in rows {
            let entry = functionalities.entry(name).or_insert(FunctionalityEntry {
                id,
                event_types: Vec::new(),
            });
            if let Some((type_id, type_name)) = event_type {
                entry.event_types.push((type_name, type_id));
            }
        }
        Catalog { functionalities }
    }

    pub fn functionality_id(&self, name: &str) -> Option<i32> {
        self.functionalities.get(name).map(|f| f.id)
    }

    /// The event type names of a functionality, in id order (the original service's order).
    pub fn event_type_names(&self, functionality: &str) -> Option<Vec<String>> {
        let entry = self.functionalities.get(functionality)?;
        let mut types = entry.event_types.clone();
        types.sort_by_key(|(_, id)| *id);
        Some(types.into_iter().map(|(name, _)| name).collect())
    }

    fn event_type_id(&self, functionality: &str, event_type: &str) -> Option<i32> {
        self.functionalities
            .get(functionality)?
            .event_types
            .iter()
            .find(|(name, _)| name == event_type)
            .map(|(_, id)| *id)
    }

    /// Whether a name is missing here; the caller reloads the catalog once before
    /// reporting it unknown (another deployment may have added it).
    pub fn knows(&self, functionality: &str, event_type: Option<&str>) -> bool {
        match event_type {
            None => self.functionality_id(functionality).is_some(),
            Some(t) => self.event_type_id(functionality, t).is_some(),
        }
    }
}

fn loc(prefix: &[Value], field: &str) -> Vec<Value> {
    let mut loc = prefix.to_vec();
    loc.push(Value::from(field));
    loc
}

/// The names an event refers to, read before the catalog is consulted (so the caller can
/// refresh the catalog when one is unknown).
pub fn referenced_names(value: &Value) -> Option<(&str, &str)> {
    Some((
        value.get("functionality")?.as_str()?,
        value.get("event_type")?.as_str()?,
    ))
}

/// Validates one event of the original service's payload. Every problem is reported, each naming its
/// field, as pydantic would; nothing is stored unless this succeeds.
pub fn validate_event(
    value: &Value,
    catalog: &Catalog,
    prefix: &[Value],
) -> Result<NewEvent, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new(
            prefix.to_vec(),
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )]);
    };
    let mut errors = Vec::new();
    let timestamp = match object.get("event_timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match parse_timestamp(text) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::new(
                    loc(prefix, "event_timestamp"),
                    "datetime_from_date_parsing",
                    "Input should be a valid datetime (RFC 3339, e.g. 2025-09-25T10:30:00Z)",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                loc(prefix, "event_timestamp"),
                "datetime_type",
                "Input should be a valid datetime string",
            ));
            None
        }
    };
    let functionality = required_string(object, "functionality", prefix, &mut errors);
    let event_type = required_string(object, "event_type", prefix, &mut errors);
    let mut functionality_id = None;
    let mut event_type_id = None;
    if let Some(name) = functionality {
        match catalog.functionality_id(name) {
            Some(id) => functionality_id = Some(id),
            None => errors.push(FieldError::new(
                loc(prefix, "functionality"),
                "value_error",
                format!("Unknown functionality '{name}'"),
            )),
        }
        if let (Some(_), Some(type_name)) = (functionality_id, event_type) {
            match catalog.event_type_id(name, type_name) {
                Some(id) => event_type_id = Some(id),
                None => errors.push(FieldError::new(
                    loc(prefix, "event_type"),
                    "value_error",
                    format!("Unknown event type '{type_name}' for functionality '{name}'"),
                )),
            }
        }
    }
    let store_id = optional_int(object, "store_id", prefix, &mut errors);
    let company_id = optional_int(object, "company_id", prefix, &mut errors);
    let user = optional_string(object, "user", prefix, &mut errors);
    if let Some(user) = &user
        && user.chars().count() > MAX_USER_CHARS
    {
        errors.push(FieldError::new(
            loc(prefix, "user"),
            "string_too_long",
            format!("String should have at most {MAX_USER_CHARS} characters"),
        ));
    }
    let message = optional_string(object, "message", prefix, &mut errors);
    let status = match object.get("status") {
        None => {
            errors.push(missing(prefix, "status"));
            None
        }
        Some(Value::String(s)) if s == "Success" => Some(Status::Success),
        Some(Value::String(s)) if s == "Failed" => Some(Status::Failed),
        Some(_) => {
            errors.push(FieldError::new(
                loc(prefix, "status"),
                "literal_error",
                "Input should be 'Success' or 'Failed'",
            ));
            None
        }
    };
    let additional_data = match object.get("additional_data") {
        None | Some(Value::Null) => None,
        Some(data @ Value::Object(_)) => {
            if contains_nul(data) {
                errors.push(nul_error(prefix, "additional_data"));
            }
            Some(JsonText::from(data))
        }
        Some(_) => {
            errors.push(FieldError::new(
                loc(prefix, "additional_data"),
                "dict_type",
                "Input should be a valid dictionary",
            ));
            None
        }
    };
    match (functionality_id, event_type_id, status) {
        (Some(functionality_id), Some(event_type_id), Some(status)) if errors.is_empty() => {
            Ok(NewEvent {
                timestamp,
                functionality_id,
                event_type_id,
                store_id,
                company_id,
                user,
                message,
                status,
                additional_data,
            })
        }
        _ => Err(errors),
    }
}

fn missing(prefix: &[Value], field: &str) -> FieldError {
    FieldError::new(loc(prefix, field), "missing", "Field required")
}

pub(crate) fn nul_error(prefix: &[Value], field: &str) -> FieldError {
    // PostgreSQL text and jsonb cannot hold U+0000: refusing it here keeps it a 422.
    FieldError::new(
        loc(prefix, field),
        "string_nul",
        "Input should not contain the NUL character (U+0000)",
    )
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    prefix: &[Value],
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match object.get(field) {
        None | Some(Value::Null) => {
            errors.push(missing(prefix, field));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(string_type(prefix, field));
            None
        }
    }
}

fn string_type(prefix: &[Value], field: &str) -> FieldError {
    FieldError::new(
        loc(prefix, field),
        "string_type",
        "Input should be a valid string",
    )
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    prefix: &[Value],
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(nul_error(prefix, field));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(string_type(prefix, field));
            None
        }
    }
}

/// A 64-bit integer as pydantic's lax mode takes it: a JSON integer, a float without a
/// fraction, or a string of digits.
pub fn lax_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(f))
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn optional_int(
    object: &Map<String, Value>,
    field: &str,
    prefix: &[Value],
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(value) => lax_int(value).or_else(|| {
            errors.push(FieldError::new(
                loc(prefix, field),
                "int_parsing",
                "Input should be a valid integer",
            ));
            None
        }),
    }
}

/// A batch's events and the location of its items in error reports: a JSON array
/// (`["body", i]`) or `{"events": [...]}` (`["body", "events", i]`).
pub fn batch_items(body: &Value) -> Option<(&[Value], Vec<Value>)> {
    match body {
        Value::Array(items) => Some((items, vec![json!("body")])),
        Value::Object(map) => match map.get("events") {
            Some(Value::Array(items)) => Some((items, vec![json!("body"), json!("events")])),
            _ => None,
        },
        _ => None,
    }
}

/// A batch: a JSON array of up to [`MAX_BATCH_EVENTS`] events (or `{"events": [...]}`),
/// each validated as [`validate_event`]; any error rejects the whole batch.
pub fn validate_batch(body: &Value, catalog: &Catalog) -> Result<Vec<NewEvent>, Vec<FieldError>> {
    let Some((items, prefix)) = batch_items(body) else {
        return Err(vec![FieldError::new(
            vec![json!("body")],
            "list_type",
            "Input should be a valid list of events (or an object with an `events` list)",
        )]);
    };
    if items.is_empty() || items.len() > MAX_BATCH_EVENTS {
        return Err(vec![FieldError::new(
            prefix,
            if items.is_empty() {
                "too_short"
            } else {
                "too_long"
            },
            format!(
                "List should have between 1 and {MAX_BATCH_EVENTS} events, not {}",
                items.len()
            ),
        )]);
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let mut item_prefix = prefix.clone();
        item_prefix.push(json!(index));
        match validate_event(item, catalog, &item_prefix) {
            Ok(event) => events.push(event),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_take_the_forms_clients_send() {
        let t = |s: &str| parse_timestamp(s).map(|t| t.0);
        assert_eq!(
            t("2025-09-25T10:30:00Z").as_deref(),
            Some("2025-09-25T10:30:00Z")
        );
        assert_eq!(
            t("2025-09-25T10:30:00+02:00").as_deref(),
            Some("2025-09-25T08:30:00Z")
        );
        // Offsets PostgreSQL would refuse are converted before it sees them.
        assert_eq!(
            t("1204-12-21T07:38:27+17:36").as_deref(),
            Some("1204-12-20T14:02:27Z")
        );
        assert_eq!(
            t("2025-09-25T10:30:00.5").as_deref(),
            Some("2025-09-25T10:30:00.500")
        );
        assert_eq!(
            t("2025-09-25 10:30:00").as_deref(),
            Some("2025-09-25T10:30:00")
        );
        assert_eq!(t("2025-09-25").as_deref(), Some("2025-09-25T00:00:00"));
        for bad in [
            "",
            "yesterday",
            "25/09/2025",
            "2025-13-01",
            "0000-01-01T00:00:00Z",
            "2025-09-25T25:00",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_are_taken_as_pydantic_does() {
        assert_eq!(lax_int(&json!(101)), Some(101));
        assert_eq!(lax_int(&json!(101.0)), Some(101));
        assert_eq!(lax_int(&json!("101")), Some(101));
        assert_eq!(lax_int(&json!(1.5)), None);
        assert_eq!(lax_int(&json!(true)), None);
        assert_eq!(lax_int(&json!(1e300)), None);
    }
}
