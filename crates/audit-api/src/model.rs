//! The pure core: what a request means. Validation of events and query strings into typed
//! values with FastAPI-shaped field errors, the search statement for a set of filters, the
//! keyset cursor, and the catalog of functionalities and event types. No I/O.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

/// The seed's `username varchar(20)`.
pub const MAX_USER_CHARS: usize = 20;
/// Events in one batch request, all stored or none.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// `GET .../recent`.
pub const RECENT_EVENTS: i64 = 500;
/// `page_size` bounds and default, as the seed.
pub const MAX_PAGE_SIZE: i64 = 5000;
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// One entry of a FastAPI 422 body: `{"loc": ["body", "user"], "msg": ..., "type": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
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

/// The event's outcome, the seed's CHECK constraint.
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
/// configured `LOCAL_TIMEZONE`, Central Time by default as the seed stored it).
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

/// JSON text kept as it was written: `additional_data` is stored and answered with every
/// digit of its numbers (`123456789012345678901234567890` is not `1.2345678901234568e29`).
/// PostgreSQL's jsonb keeps numbers as `numeric`, exactly; `serde_json::Value` would not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// `text` when it is one JSON value.
    pub fn parse(text: &str) -> Option<JsonText> {
        serde_json::from_str::<&serde_json::value::RawValue>(text)
            .ok()
            .map(|raw| JsonText(raw.get().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// jsonb's text output (`{"a": [1, 2]}`) without the blanks between tokens, as answers
    /// and exports always wrote it; strings and numbers unchanged.
    pub fn compact(stored: &str) -> Option<JsonText> {
        let mut out = String::with_capacity(stored.len());
        let (mut in_string, mut escaped) = (false, false);
        for c in stored.chars() {
            if in_string {
                out.push(c);
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if !c.is_whitespace() {
                out.push(c);
            }
        }
        JsonText::parse(&out)
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        JsonText(value.to_string())
    }
}

impl std::fmt::Display for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::from_str::<&serde_json::value::RawValue>(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// One event's `additional_data`, read as raw JSON (every other field is ignored here).
#[derive(Deserialize)]
struct RawAdditionalData<'a> {
    #[serde(borrow, default)]
    additional_data: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<RawAdditionalData<'a>>,
}

/// Puts the exact text of each event's `additional_data` (as `body` holds it) in place of
/// the one validation read through `serde_json::Value`, whose numbers are `f64`. `events`
/// are the validated events of `body`, in its order: the body itself for a single create, or
/// a batch (a list, or `{"events": [...]}`).
pub fn exact_additional_data(
    body: &[u8],
    events: &mut [NewEvent],
    batch: bool,
) -> Result<(), FieldError> {
    let unreadable = |e: serde_json::Error| {
        FieldError::new(
            vec![json!("body")],
            "json_invalid",
            format!("JSON decode error: {e}"),
        )
    };
    let items: Vec<RawAdditionalData<'_>> = if !batch {
        vec![serde_json::from_slice(body).map_err(unreadable)?]
    } else if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice(body).map_err(unreadable)?
    } else {
        serde_json::from_slice::<RawBatch<'_>>(body)
            .map_err(unreadable)?
            .events
    };
    for (event, item) in events.iter_mut().zip(items) {
        if event.additional_data.is_some() {
            event.additional_data = item
                .additional_data
                .map(|raw| JsonText(raw.get().to_owned()));
        }
    }
    Ok(())
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

    /// The event type names of a functionality, in id order (the seed's order).
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

/// Validates one event of the seed's payload. Every problem is reported, each naming its
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

fn nul_error(prefix: &[Value], field: &str) -> FieldError {
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
    /// The seed's `page_number` (1-based; OFFSET, slow deep in a large result).
    Number(i64),
    /// Keyset: the rows after a cursor (constant time at any depth).
    After(Cursor),
}

/// The seed's search filters, validated. Names are resolved by the caller.
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

/// `message_pattern` as a literal, case-insensitive substring: LIKE's `%`, `_` and the
/// escape character `\` are escaped (the seed passed them through as wildcards).
pub fn like_substring(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    out.push('%');
    for c in pattern.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A statement and its parameters.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The columns every event query returns, in [`EVENT_COLUMNS`] order.
pub const EVENT_SELECT: &str = "SELECT e.id, e.eventtimestamp, f.name, t.name, e.storelocationid, \
     e.companyid, e.username, e.message, e.status, e.additionaldata::text \
     FROM auditevents e \
     JOIN auditfunctionalities f ON f.id = e.functionalityid \
     JOIN auditeventtypes t ON t.id = e.eventtypeid";

/// The event fields in output order: JSON keys, and the export's header.
pub const EVENT_COLUMNS: [(&str, &str); 10] = [
    ("id", "ID"),
    ("event_timestamp", "Event Timestamp"),
    ("functionality", "Functionality"),
    ("event_type", "Event Type"),
    ("store_id", "Store ID"),
    ("company_id", "Company ID"),
    ("user", "User"),
    ("message", "Message"),
    ("status", "Status"),
    ("additional_data", "Additional Data"),
];

/// Which rows a query may see: all, or only those of the companies a scoped key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Companies(Vec<i64>),
}

/// What to select: filters (already checked against the scope), functionality resolved.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub filters: SearchFilters,
    pub functionality_id: Option<i32>,
    pub companies: Option<Vec<i64>>,
}

/// The search statement for a selection: only the present filters become predicates (a
/// generic `$1 IS NULL OR ...` plan cannot use the per-filter indexes), newest first, with
/// one row more than `limit` when `lookahead` so the caller knows whether more follow.
pub fn select_events(selection: &Selection, page: Option<&Page>, limit: Option<i64>) -> Statement {
    let (predicates, mut params) = event_predicates(selection, page);
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
                value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let mut sql = String::from(EVENT_SELECT);
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
    sql.push_str(" ORDER BY e.eventtimestamp DESC, e.id DESC");
    if let Some(limit) = limit {
        let p = bind(&mut params, Box::new(limit));
        sql.push_str(&format!(" LIMIT {p}"));
    }
    if let (Some(Page::Number(n)), Some(limit)) = (page, limit) {
        // `limit` includes the lookahead row; the offset counts whole pages.
        let offset = (n - 1).saturating_mul(limit - 1);
        if offset > 0 {
            let p = bind(&mut params, Box::new(offset));
            sql.push_str(&format!(" OFFSET {p}"));
        }
    }
    Statement { sql, params }
}

/// How many events a selection matches, counting no further than `cap`: an export checks
/// its size before writing a row.
pub fn count_events(selection: &Selection, cap: i64) -> Statement {
    let (predicates, mut params) = event_predicates(selection, None);
    let mut sql = String::from("SELECT count(*) FROM (SELECT 1 FROM auditevents e");
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
    params.push(Box::new(cap));
    sql.push_str(&format!(" LIMIT ${}) capped", params.len()));
    Statement { sql, params }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The predicates of a selection (and a cursor page), with their parameters.
fn event_predicates(selection: &Selection, page: Option<&Page>) -> (Vec<String>, Params) {
    let mut predicates: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
                value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let f = &selection.filters;
    if let Some(from) = &f.from_date {
        let p = bind(&mut params, Box::new(from.0.clone()));
        predicates.push(format!("e.eventtimestamp >= {p}::text::timestamptz"));
    }
    if let Some(to) = &f.to_date {
        let p = bind(&mut params, Box::new(to.0.clone()));
        predicates.push(format!("e.eventtimestamp <= {p}::text::timestamptz"));
    }
    if let Some(id) = selection.functionality_id {
        let p = bind(&mut params, Box::new(id));
        predicates.push(format!("e.functionalityid = {p}"));
    }
    if let Some(store) = f.store_id {
        let p = bind(&mut params, Box::new(store));
        predicates.push(format!("e.storelocationid = {p}"));
    }
    if let Some(company) = f.company_id {
        let p = bind(&mut params, Box::new(company));
        predicates.push(format!("e.companyid = {p}"));
    }
    if let Some(companies) = &selection.companies {
        let p = bind(&mut params, Box::new(companies.clone()));
        predicates.push(format!("e.companyid = ANY({p})"));
    }
    if let Some(user) = &f.user {
        let p = bind(&mut params, Box::new(user.clone()));
        predicates.push(format!("e.username = {p}"));
    }
    if let Some(pattern) = f.message_pattern.as_deref().filter(|p| !p.is_empty()) {
        let p = bind(&mut params, Box::new(like_substring(pattern)));
        predicates.push(format!("e.message ILIKE {p}"));
    }
    if let Some(Page::After(cursor)) = page {
        let t = bind(&mut params, Box::new(cursor.timestamp));
        let i = bind(&mut params, Box::new(cursor.id));
        predicates.push(format!("(e.eventtimestamp, e.id) < ({t}, {i})"));
    }
    (predicates, params)
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

/// The months a partition covers are whole UTC months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(t: DateTime<Utc>) -> Month {
        use chrono::Datelike as _;
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    pub fn plus(self, months: i32) -> Month {
        let index = self.year * 12 + (self.month as i32 - 1) + months;
        Month {
            year: index.div_euclid(12),
            month: index.rem_euclid(12) as u32 + 1,
        }
    }

    pub fn start(self) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// `auditevents_YYYYMM`, the seed's partition names.
    pub fn partition_name(self) -> String {
        format!("auditevents_{:04}{:02}", self.year, self.month)
    }

    pub fn from_partition_name(name: &str) -> Option<Month> {
        let digits = name.strip_prefix("auditevents_")?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let month = Month {
            year: digits[..4].parse().ok()?,
            month: digits[4..].parse().ok()?,
        };
        (1..=12).contains(&month.month).then_some(month)
    }
}

/// What maintenance must do, decided from the partitions that exist and today's date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// Months to create, oldest first: every month of the retention window (late and
    /// backfilled events are accepted while they would be kept), this month, and the next
    /// `premake_months`.
    pub create: Vec<Month>,
    /// Attached partitions wholly older than the retention window: archive, then drop.
    pub retire: Vec<Month>,
}

/// Partitions to create ahead and partitions past retention. A partition is retired when its
/// whole month is older than `retention_months` whole months before the current month.
pub fn plan_maintenance(
    now: DateTime<Utc>,
    existing: &[Month],
    premake_months: i32,
    retention_months: i32,
) -> MaintenancePlan {
    let this_month = Month::of(now);
    let create = (-retention_months..=premake_months)
        .map(|offset| this_month.plus(offset))
        .filter(|m| !existing.contains(m))
        .collect();
    let oldest_kept = this_month.plus(-retention_months);
    let mut retire: Vec<Month> = existing
        .iter()
        .copied()
        .filter(|m| *m < oldest_kept)
        .collect();
    retire.sort();
    MaintenancePlan { create, retire }
}

/// Text as one export cell: Excel holds at most 32,767 characters per cell, so longer text is
/// cut and says so (the CSV export keeps it whole).
pub fn excel_cell_text(text: &str) -> std::borrow::Cow<'_, str> {
    const LIMIT: usize = 32_767;
    if text.chars().count() <= LIMIT {
        return text.into();
    }
    let total = text.chars().count();
    let marker = format!(" [truncated: {total} characters; export as CSV for the full text]");
    let keep = LIMIT - marker.chars().count();
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&marker);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_patterns_are_literal_substrings() {
        assert_eq!(like_substring("100%"), "%100\\%%");
        assert_eq!(like_substring("a_b"), "%a\\_b%");
        assert_eq!(like_substring("C:\\temp"), "%C:\\\\temp%");
        assert_eq!(like_substring(""), "%%");
    }

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
    fn additional_data_keeps_the_digits_the_client_sent() {
        let event = |data: Option<JsonText>| NewEvent {
            timestamp: None,
            functionality_id: 1,
            event_type_id: 1,
            store_id: None,
            company_id: None,
            user: None,
            message: None,
            status: Status::Success,
            additional_data: data,
        };
        let body = br#"{"functionality_name": "x", "additional_data": {"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827}}"#;
        let lossy: Value = serde_json::from_slice(body).expect("json");
        let mut events = [event(Some(JsonText::from(&lossy["additional_data"])))];
        assert!(
            !events[0]
                .additional_data
                .as_ref()
                .expect("data")
                .as_str()
                .contains("123456789012345678901234567890"),
            "serde_json::Value alone loses the digits"
        );
        exact_additional_data(body, &mut events, false).expect("exact");
        assert_eq!(
            events[0].additional_data.as_ref().map(JsonText::as_str),
            Some(
                r#"{"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827}"#
            )
        );
        let batch = br#"{"events": [{"additional_data": {"n": 1e2}}, {"additional_data": null}, {"additional_data": {"n": 18446744073709551617}}]}"#;
        let mut events = [
            event(Some(JsonText::from(&json!({"n": 100.0})))),
            event(None),
            event(Some(JsonText::from(&json!({"n": 1.8446744073709552e19})))),
        ];
        exact_additional_data(batch, &mut events, true).expect("exact");
        let texts: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.additional_data.as_ref().map(JsonText::as_str))
            .collect();
        assert_eq!(
            texts,
            [
                Some(r#"{"n": 1e2}"#),
                None,
                Some(r#"{"n": 18446744073709551617}"#)
            ]
        );
        assert_eq!(
            JsonText::compact(r#"{"a": [1, 2.50], "s": "x \" y: , z"}"#).map(|j| j.to_string()),
            Some(r#"{"a":[1,2.50],"s":"x \" y: , z"}"#.to_owned())
        );
        let list = br#"[{"additional_data": {"n": 7}}]"#;
        let mut events = [event(Some(JsonText::from(&json!({"n": 7}))))];
        exact_additional_data(list, &mut events, true).expect("exact");
        assert_eq!(
            serde_json::to_string(&events[0].additional_data).expect("serialise"),
            r#"{"n": 7}"#
        );
    }

    fn filters(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        query_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn only_present_filters_become_predicates() {
        let request = parse_search(&filters(&[])).expect("valid");
        let statement = select_events(
            &Selection {
                filters: request.filters,
                ..Selection::default()
            },
            Some(&request.page),
            Some(request.page_size + 1),
        );
        assert!(
            statement
                .sql
                .ends_with("ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT $1")
        );
        assert!(!statement.sql.contains("WHERE"));

        let request = parse_search(&filters(&[
            ("company_id", "5001"),
            ("message_pattern", "50%"),
            ("page_number", "3"),
            ("page_size", "10"),
        ]))
        .expect("valid");
        let statement = select_events(
            &Selection {
                filters: request.filters,
                functionality_id: Some(2),
                companies: Some(vec![5001]),
            },
            Some(&request.page),
            Some(request.page_size + 1),
        );
        assert!(
            statement.sql.contains(
                "WHERE e.functionalityid = $1 AND e.companyid = $2 AND e.companyid = ANY($3) \
             AND e.message ILIKE $4 ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT $5 OFFSET $6"
            ),
            "{}",
            statement.sql
        );
        assert_eq!(format!("{:?}", statement.params[3]), "\"%50\\\\%%\"");
        assert_eq!(
            format!("{:?}", statement.params[5]),
            "20",
            "two whole pages skipped"
        );

        let cursor = Cursor {
            timestamp: DateTime::UNIX_EPOCH,
            id: 7,
        };
        let request = parse_search(&filters(&[("cursor", &cursor.encode())])).expect("valid");
        assert_eq!(request.page, Page::After(cursor));
        let statement = select_events(&Selection::default(), Some(&request.page), Some(501));
        assert!(
            statement
                .sql
                .contains("WHERE (e.eventtimestamp, e.id) < ($1, $2)")
        );
        assert!(!statement.sql.contains("OFFSET"));
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
    fn maintenance_keeps_the_window_and_makes_months_ahead() {
        let now = Month {
            year: 2027,
            month: 1,
        }
        .start();
        let existing: Vec<Month> = (-14..=2).map(|m| Month::of(now).plus(m)).collect();
        let plan = plan_maintenance(now, &existing, 5, 12);
        let names = |months: &[Month]| {
            months
                .iter()
                .map(|m| m.partition_name())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&plan.create),
            [
                "auditevents_202704",
                "auditevents_202705",
                "auditevents_202706"
            ]
        );
        assert_eq!(
            names(&plan.retire),
            ["auditevents_202511", "auditevents_202512"]
        );
        assert_eq!(Month::from_partition_name("auditevents_202613"), None);
        assert_eq!(Month::from_partition_name("auditevents_archival"), None);
        assert_eq!(
            Month::from_partition_name("auditevents_202602"),
            Some(Month {
                year: 2026,
                month: 2
            })
        );
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

    #[test]
    fn excel_cells_say_when_text_was_cut() {
        assert_eq!(excel_cell_text("short"), "short");
        let long = "é".repeat(40_000);
        let cell = excel_cell_text(&long);
        assert_eq!(cell.chars().count(), 32_767);
        assert!(cell.ends_with("[truncated: 40000 characters; export as CSV for the full text]"));
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
