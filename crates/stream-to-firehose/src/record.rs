//! The audit record: one DynamoDB stream record becomes one line of JSON.
//!
//! Pure code, no I/O. The line is written straight into a byte buffer rather than through a
//! `serde_json::Value`, for two reasons: a DynamoDB number has up to 38 significant digits and
//! must reach the line exactly as stored (a `Value` would take it through `f64`), and the
//! transform is the hot path of the function (see `benches/transform.rs`).

use crate::dynamo_json::{RawAttribute, TranscodeError, transcode_item_into};
use serde::Deserialize;
use serde_dynamo::AttributeValue;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

/// A DynamoDB stream batch as Lambda delivers it. Only what the audit line needs is read; the
/// images stay raw JSON text until [`audit_line`] rewrites them.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

/// One change (the `aws_lambda_events` field names and meanings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    #[serde(default)]
    pub user_identity: Option<UserIdentity>,
    #[serde(rename = "dynamodb")]
    pub change: Change,
}

/// Who made the change: DynamoDB itself for a TTL deletion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub principal_id: String,
}

/// The `dynamodb` part of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    /// Epoch seconds; may carry a fraction, may be missing.
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<f64>,
    #[serde(rename = "Keys", default)]
    pub keys: Option<Box<RawValue>>,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<Box<RawValue>>,
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<Box<RawValue>>,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
    #[serde(rename = "StreamViewType", default)]
    pub stream_view_type: Option<String>,
}

/// Firehose's limit for one record, before base64: 1,000 KiB.
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// The top-level fields of every line, in the order they are written, with the Glue column
/// type each is read as (OpenX JSON SerDe). `keys` holds only scalars; the images are any
/// shape, so they are read as JSON text and queried with `json_extract_scalar`. The stack's
/// Glue table must declare exactly these columns (a contract test checks it).
pub const RECORD_COLUMNS: &[(&str, &str)] = &[
    ("event_id", "string"),
    ("event_name", "string"),
    ("table", "string"),
    ("keys", "map<string,string>"),
    ("new_image", "string"),
    ("old_image", "string"),
    (
        "changed_attributes",
        "struct<added:array<string>,removed:array<string>,modified:array<string>>",
    ),
    ("sequence_number", "string"),
    ("approximate_creation_time", "string"),
    ("stream_view_type", "string"),
    ("ttl_expired", "boolean"),
    ("region", "string"),
    ("images_omitted", "string"),
];

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Insert,
    Modify,
    Remove,
}

impl EventName {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "INSERT" => Some(EventName::Insert),
            "MODIFY" => Some(EventName::Modify),
            "REMOVE" => Some(EventName::Remove),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }
}

/// A stream record that cannot become an audit line. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record {event_id}: field eventName is {value:?}; expected INSERT, MODIFY or REMOVE")]
    EventName { event_id: String, value: String },
    #[error("record {event_id}: field dynamodb.SequenceNumber is missing")]
    SequenceNumber { event_id: String },
    #[error(
        "record {event_id}: field eventSourceARN ({value:?}) does not name a table (arn:...:table/<name>/stream/...)"
    )]
    SourceArn { event_id: String, value: String },
    #[error("record {event_id}: field {path}: {message}")]
    Image {
        event_id: String,
        path: String,
        message: String,
    },
}

impl audit_core::Classify for RecordError {
    fn code(&self) -> &'static str {
        "BadStreamRecord"
    }
    fn retryable(&self) -> bool {
        false
    }
}

/// The attribute names a MODIFY changed, each list sorted, as written in the image (JSON
/// string contents, escapes kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedAttributes<'a> {
    pub added: Vec<&'a str>,
    pub removed: Vec<&'a str>,
    pub modified: Vec<&'a str>,
}

/// One record ready for Firehose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub sequence_number: String,
    /// The JSON object and its terminating `\n`.
    pub data: Vec<u8>,
    /// Set when images were left out to fit Firehose's record limit.
    pub images_omitted: Option<String>,
}

/// The table name inside a stream (or table) ARN: `arn:aws:dynamodb:r:a:table/<name>/stream/<ts>`.
pub fn table_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":table/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Whether a REMOVE was DynamoDB's TTL process rather than a caller.
pub fn is_ttl_deletion(record: &StreamRecord) -> bool {
    record.event_name == "REMOVE"
        && record.user_identity.as_ref().is_some_and(|identity| {
            identity.type_ == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
        })
}

/// Buffers one batch reuses from record to record, so a line costs one allocation of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    plain: Vec<u8>,
    new_attributes: Vec<RawAttribute>,
    old_attributes: Vec<RawAttribute>,
}

/// Rewrites `raw` onto `plain`; the range written, or `None` when there is no image (absent,
/// or empty: every item has at least its keys).
fn image_into(
    raw: Option<&RawValue>,
    plain: &mut Vec<u8>,
    attributes: &mut Vec<RawAttribute>,
) -> Result<Option<Range<usize>>, TranscodeError> {
    attributes.clear();
    let Some(raw) = raw else {
        return Ok(None);
    };
    let start = plain.len();
    transcode_item_into(raw.get(), plain, attributes)?;
    Ok((!attributes.is_empty()).then_some(start..plain.len()))
}

/// The audit line for one stream record.
pub fn audit_line(record: &StreamRecord) -> Result<AuditLine, RecordError> {
    audit_line_with(record, &mut Scratch::default())
}

/// [`audit_line`] with buffers reused across the records of a batch.
pub fn audit_line_with(
    record: &StreamRecord,
    scratch: &mut Scratch,
) -> Result<AuditLine, RecordError> {
    let event_id = record.event_id.as_str();
    let event_name =
        EventName::parse(&record.event_name).ok_or_else(|| RecordError::EventName {
            event_id: event_id.to_owned(),
            value: record.event_name.clone(),
        })?;
    let change = &record.change;
    let sequence_number =
        change
            .sequence_number
            .as_deref()
            .ok_or_else(|| RecordError::SequenceNumber {
                event_id: event_id.to_owned(),
            })?;
    let arn = record.event_source_arn.as_deref().unwrap_or_default();
    let table = table_name(arn).ok_or_else(|| RecordError::SourceArn {
        event_id: event_id.to_owned(),
        value: arn.to_owned(),
    })?;
    let image_error = |field: &str, e: TranscodeError| RecordError::Image {
        event_id: event_id.to_owned(),
        path: if e.path.is_empty() {
            format!("dynamodb.{field}")
        } else {
            format!("dynamodb.{field}.{}", e.path)
        },
        message: e.message,
    };

    let Scratch {
        plain,
        new_attributes,
        old_attributes,
    } = scratch;
    plain.clear();
    let keys = image_into(change.keys.as_deref(), plain, new_attributes)
        .map_err(|e| image_error("Keys", e))?;
    let new_image = image_into(change.new_image.as_deref(), plain, new_attributes)
        .map_err(|e| image_error("NewImage", e))?;
    let old_image = image_into(change.old_image.as_deref(), plain, old_attributes)
        .map_err(|e| image_error("OldImage", e))?;
    let changed = match (event_name, &change.new_image, &change.old_image) {
        (EventName::Modify, Some(new), Some(old)) if new_image.is_some() && old_image.is_some() => {
            Some(changed_attributes(
                (new.get(), new_attributes),
                (old.get(), old_attributes),
            ))
        }
        _ => None,
    };
    let plain: &[u8] = plain;
    let keys: &[u8] = keys.map_or(b"{}", |k| &plain[k]);
    let created = change.approximate_creation_date_time.and_then(rfc3339);

    let parts = LineParts {
        event_id,
        event_name: event_name.as_str(),
        table,
        keys,
        sequence_number,
        created: created.as_deref(),
        view_type: change.stream_view_type.as_deref(),
        ttl_expired: is_ttl_deletion(record),
        region: &record.aws_region,
    };
    // Too large for Firehose: leave out the old image, then the new one, then (only for a
    // pathological item whose escaped attribute names alone fill a record) the diff. Keys
    // and metadata are bounded by DynamoDB's key size, so the loop ends within four writes.
    let mut images = (new_image.map(|r| &plain[r]), old_image.map(|r| &plain[r]));
    let mut changed = changed.as_ref();
    let mut left_out: Vec<&str> = Vec::new();
    let mut full_size = None;
    let (data, omitted) = loop {
        let omitted = full_size.map(|size: usize| {
            format!(
                "{} left out: the record was {size} bytes, over Firehose's {MAX_RECORD_BYTES}-byte limit",
                left_out.join(" and ")
            )
        });
        let data = parts.write(images, changed, omitted.as_deref());
        if data.len() <= MAX_RECORD_BYTES {
            break (data, omitted);
        }
        full_size.get_or_insert(data.len());
        if images.1.take().is_some() {
            left_out.push("old_image");
        } else if images.0.take().is_some() {
            left_out.push("new_image");
        } else if changed.take().is_some() {
            left_out.push("changed_attributes");
        } else {
            break (data, omitted);
        }
    };
    Ok(AuditLine {
        sequence_number: sequence_number.to_owned(),
        data,
        images_omitted: omitted,
    })
}

struct LineParts<'a> {
    event_id: &'a str,
    event_name: &'a str,
    table: &'a str,
    keys: &'a [u8],
    sequence_number: &'a str,
    created: Option<&'a str>,
    view_type: Option<&'a str>,
    ttl_expired: bool,
    region: &'a str,
}

impl LineParts<'_> {
    /// The line with the given (rendered) images, in [`RECORD_COLUMNS`] order.
    fn write(
        &self,
        (new_image, old_image): (Option<&[u8]>, Option<&[u8]>),
        changed: Option<&ChangedAttributes<'_>>,
        omitted: Option<&str>,
    ) -> Vec<u8> {
        let images_len = new_image.map_or(0, <[u8]>::len) + old_image.map_or(0, <[u8]>::len);
        let mut out = Vec::with_capacity(256 + self.keys.len() + images_len);
        out.extend_from_slice(b"{\"event_id\":");
        write_str(&mut out, self.event_id);
        out.extend_from_slice(b",\"event_name\":\"");
        out.extend_from_slice(self.event_name.as_bytes());
        out.extend_from_slice(b"\",\"table\":");
        write_str(&mut out, self.table);
        out.extend_from_slice(b",\"keys\":");
        out.extend_from_slice(self.keys);
        out.extend_from_slice(b",\"new_image\":");
        out.extend_from_slice(new_image.unwrap_or(b"null"));
        out.extend_from_slice(b",\"old_image\":");
        out.extend_from_slice(old_image.unwrap_or(b"null"));
        out.extend_from_slice(b",\"changed_attributes\":");
        match changed {
            None => out.extend_from_slice(b"null"),
            Some(changed) => {
                out.extend_from_slice(b"{\"added\":");
                write_names(&mut out, &changed.added);
                out.extend_from_slice(b",\"removed\":");
                write_names(&mut out, &changed.removed);
                out.extend_from_slice(b",\"modified\":");
                write_names(&mut out, &changed.modified);
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"sequence_number\":");
        write_str(&mut out, self.sequence_number);
        out.extend_from_slice(b",\"approximate_creation_time\":");
        write_opt_str(&mut out, self.created);
        out.extend_from_slice(b",\"stream_view_type\":");
        write_opt_str(&mut out, self.view_type);
        out.extend_from_slice(b",\"ttl_expired\":");
        out.extend_from_slice(if self.ttl_expired { b"true" } else { b"false" });
        out.extend_from_slice(b",\"region\":");
        write_str(&mut out, self.region);
        out.extend_from_slice(b",\"images_omitted\":");
        write_opt_str(&mut out, omitted);
        out.extend_from_slice(b"}\n");
        out
    }
}

/// Epoch seconds as RFC 3339 UTC (`2026-11-22T10:00:00Z`), with milli- or microseconds when
/// the time has a fraction.
fn rfc3339(epoch_seconds: f64) -> Option<String> {
    use chrono::{Datelike, Timelike};
    if !epoch_seconds.is_finite() || epoch_seconds <= 0.0 {
        return None;
    }
    let micros = (epoch_seconds * 1e6).round() as i64;
    let t = chrono::DateTime::from_timestamp_micros(micros)?;
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let fraction = micros.rem_euclid(1_000_000);
    Some(match fraction {
        0 => format!("{date}Z"),
        f if f % 1000 == 0 => format!("{date}.{:03}Z", f / 1000),
        f => format!("{date}.{f:06}Z"),
    })
}

/// Names as JSON strings; they are already escaped as in the image.
fn write_names(out: &mut Vec<u8>, names: &[&str]) {
    out.push(b'[');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    }
    out.push(b']');
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string literal (RFC 8259 escaping: quote, backslash and control characters).
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The JSON number token for a DynamoDB number string, keeping every digit. DynamoDB already
/// returns numbers in JSON's grammar; other spellings of the same value (`+5`, `.5`, `5.`,
/// `007`) are rewritten without changing a digit. `None` when the text is not a number.
pub fn json_number(n: &str) -> Option<Cow<'_, str>> {
    if is_json_number(n) {
        return Some(Cow::Borrowed(n));
    }
    let parsed = ParsedNumber::parse(n)?;
    let mut token = String::with_capacity(n.len() + 2);
    if parsed.negative {
        token.push('-');
    }
    let integer = parsed.integer.trim_start_matches('0');
    token.push_str(if integer.is_empty() { "0" } else { integer });
    if !parsed.fraction.is_empty() {
        token.push('.');
        token.push_str(parsed.fraction);
    }
    if let Some(exponent) = parsed.exponent {
        token.push('e');
        token.push_str(exponent);
    }
    Some(Cow::Owned(token))
}

/// RFC 8259 `number`.
fn is_json_number(n: &str) -> bool {
    let b = n.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The parts of a decimal number in any common spelling.
struct ParsedNumber<'a> {
    negative: bool,
    integer: &'a str,
    fraction: &'a str,
    /// Sign and digits, as written.
    exponent: Option<&'a str>,
}

impl<'a> ParsedNumber<'a> {
    fn parse(n: &'a str) -> Option<Self> {
        let (negative, rest) = match n.as_bytes().first()? {
            b'-' => (true, &n[1..]),
            b'+' => (false, &n[1..]),
            _ => (false, n),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (integer.is_empty() && fraction.is_empty())
            || !all_digits(integer)
            || !all_digits(fraction)
        {
            return None;
        }
        if let Some(e) = exponent {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
        }
        Some(ParsedNumber {
            negative,
            integer,
            fraction,
            exponent,
        })
    }

    /// Sign, significant digits and the power of ten of the last digit: equal exactly when
    /// the values are equal (`1.50` and `15e-1` agree).
    fn canonical(&self) -> Option<(bool, String, i64)> {
        let mut digits: String = self.integer.chars().chain(self.fraction.chars()).collect();
        let mut exponent: i64 = match self.exponent {
            Some(e) => e.parse().ok()?,
            None => 0,
        };
        exponent -= i64::try_from(self.fraction.len()).ok()?;
        let trimmed = digits.trim_start_matches('0').len();
        digits.drain(..digits.len() - trimmed);
        while digits.ends_with('0') {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Some((false, String::new(), 0)); // every zero is the same zero
        }
        Some((self.negative, digits, exponent))
    }
}

fn same_number(a: &str, b: &str) -> bool {
    a == b || {
        let canonical = |n: &str| ParsedNumber::parse(n).and_then(|p| p.canonical());
        match (canonical(a), canonical(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

fn same_set<T: Ord + Clone>(a: &[T], b: &[T], cmp: impl Fn(&T, &T) -> bool) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.iter().zip(b).all(|(x, y)| cmp(x, y)) {
        return true;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a.iter().zip(&b).all(|(x, y)| cmp(x, y))
}

/// Whether two attribute values are the same value: sets compare without order, numbers by
/// value.
pub fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as V;
    match (a, b) {
        (V::S(x), V::S(y)) => x == y,
        (V::N(x), V::N(y)) => same_number(x, y),
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Null(_), V::Null(_)) => true,
        (V::B(x), V::B(y)) => x == y,
        (V::M(x), V::M(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (V::L(x), V::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w)),
        (V::Ss(x), V::Ss(y)) => same_set(x, y, |p, q| p == q),
        (V::Bs(x), V::Bs(y)) => same_set(x, y, |p, q| p == q),
        (V::Ns(x), V::Ns(y)) => {
            x.len() == y.len() && {
                let canonical = |v: &[String]| {
                    v.iter()
                        .map(|n| ParsedNumber::parse(n).and_then(|p| p.canonical()))
                        .collect::<Vec<_>>()
                };
                let (mut p, mut q) = (canonical(x), canonical(y));
                p.sort();
                q.sort();
                p == q && !p.contains(&None)
            }
        }
        _ => false,
    }
}

/// Whether two raw attribute values (`{"N": "1.50"}` ...) are the same value. Equal text is
/// the common case; otherwise both are parsed and compared by value.
fn same_raw_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    // Scalars DynamoDB writes one way only: different text is a different value (a string
    // with escapes is compared decoded, below).
    let canonical_scalar = |v: &str| {
        ["{\"S\":", "{\"B\":", "{\"BOOL\":", "{\"NULL\":"]
            .iter()
            .any(|tag| v.starts_with(tag))
            && !v.contains('\\')
    };
    if canonical_scalar(a) && canonical_scalar(b) {
        return false;
    }
    match (
        serde_json::from_str::<AttributeValue>(a),
        serde_json::from_str::<AttributeValue>(b),
    ) {
        (Ok(x), Ok(y)) => same_value(&x, &y),
        _ => false,
    }
}

/// Added, removed and modified attribute names between two images.
fn changed_attributes<'a>(
    new: (&'a str, &[RawAttribute]),
    old: (&'a str, &[RawAttribute]),
) -> ChangedAttributes<'a> {
    let (new_raw, new_attributes) = new;
    let (old_raw, old_attributes) = old;
    let name = |raw: &'a str, a: &RawAttribute| &raw[a.name.clone()];
    let value = |raw: &'a str, a: &RawAttribute| &raw[a.value.clone()];
    // Fast path: both images list the same names in the same order (how DynamoDB writes an
    // item's two images), so no sorting is needed.
    if new_attributes.len() == old_attributes.len()
        && new_attributes
            .iter()
            .zip(old_attributes)
            .all(|(n, o)| name(new_raw, n) == name(old_raw, o))
    {
        let mut changed = ChangedAttributes::default();
        for (n, o) in new_attributes.iter().zip(old_attributes) {
            if !same_raw_value(value(new_raw, n), value(old_raw, o)) {
                changed.modified.push(name(new_raw, n));
            }
        }
        changed.modified.sort_unstable();
        return changed;
    }
    let named = |raw: &'a str, attributes: &[RawAttribute]| {
        let mut attributes: Vec<(&'a str, &'a str)> = attributes
            .iter()
            .map(|a| (name(raw, a), value(raw, a)))
            .collect();
        attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        attributes
    };
    let (new, old) = (
        named(new_raw, new_attributes),
        named(old_raw, old_attributes),
    );
    let mut changed = ChangedAttributes::default();
    let (mut i, mut j) = (0, 0);
    while i < new.len() || j < old.len() {
        match (new.get(i), old.get(j)) {
            (Some(n), Some(o)) if n.0 == o.0 => {
                if !same_raw_value(n.1, o.1) {
                    changed.modified.push(n.0);
                }
                i += 1;
                j += 1;
            }
            (Some(n), Some(o)) if n.0 < o.0 => {
                changed.added.push(n.0);
                i += 1;
            }
            (Some(n), None) => {
                changed.added.push(n.0);
                i += 1;
            }
            (_, Some(o)) => {
                changed.removed.push(o.0);
                j += 1;
            }
            (None, None) => break,
        }
    }
    changed
}
