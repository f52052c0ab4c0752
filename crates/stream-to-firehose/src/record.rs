//! The audit record: one DynamoDB stream record becomes one line of JSON.
//!
//! Pure code, no I/O. The line is written straight into a byte buffer rather than through a
//! `serde_json::Value`, for two reasons: a DynamoDB number has up to 38 significant digits and
//! must reach the line exactly as stored (a `Value` would take it through `f64`), and the
//! transform is the hot path of the function (see `benches/transform.rs`).

use crate::diff::{ChangedAttributes, changed_attributes};
use crate::dynamo_json::{RawAttribute, TranscodeError};
use crate::event::{EventName, Image, RewrittenImages, StreamRecord, is_ttl_deletion, table_name};

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

/// One record ready for Firehose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub sequence_number: String,
    /// The JSON object and its terminating `\n`.
    pub data: Vec<u8>,
    /// Set when images were left out to fit Firehose's record limit.
    pub images_omitted: Option<String>,
}

/// One image's parts for the line: its DynamoDB JSON text, its plain JSON and its top-level
/// attributes; `None` when there is no image (absent, or empty: every item has at least its
/// keys).
type ImageParts<'r> = Option<(&'r str, &'r [u8], &'r [RawAttribute])>;

fn image_parts<'r>(
    image: Option<&'r Image<'_>>,
    rewritten: &'r RewrittenImages,
) -> Result<ImageParts<'r>, TranscodeError> {
    let Some(image) = image else {
        return Ok(None);
    };
    let parts = image.rewritten.as_ref().map_err(Clone::clone)?;
    let attributes = &rewritten.attributes[parts.attributes.clone()];
    Ok((!attributes.is_empty())
        .then(|| (image.raw, &rewritten.plain[parts.plain.clone()], attributes)))
}

/// The audit line for one record of a batch read by [`crate::event::read_batch`].
pub fn audit_line(
    record: &StreamRecord<'_>,
    rewritten: &RewrittenImages,
) -> Result<AuditLine, RecordError> {
    let event_id = record.event_id.as_ref();
    let event_name =
        EventName::parse(&record.event_name).ok_or_else(|| RecordError::EventName {
            event_id: event_id.to_owned(),
            value: record.event_name.clone().into_owned(),
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

    let keys = image_parts(change.keys.as_ref(), rewritten).map_err(|e| image_error("Keys", e))?;
    let new_image = image_parts(change.new_image.as_ref(), rewritten)
        .map_err(|e| image_error("NewImage", e))?;
    let old_image = image_parts(change.old_image.as_ref(), rewritten)
        .map_err(|e| image_error("OldImage", e))?;
    let changed = match (event_name, new_image, old_image) {
        (EventName::Modify, Some((new, _, new_attributes)), Some((old, _, old_attributes))) => {
            Some(changed_attributes(
                (new, new_attributes),
                (old, old_attributes),
            ))
        }
        _ => None,
    };
    let keys: &[u8] = keys.map_or(b"{}", |(_, plain, _)| plain);
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
    let mut images = (
        new_image.map(|(_, plain, _)| plain),
        old_image.map(|(_, plain, _)| plain),
    );
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
    if !epoch_seconds.is_finite() || epoch_seconds <= 0.0 {
        return None;
    }
    let micros = (epoch_seconds * 1e6).round() as i64;
    Some(
        chrono::DateTime::from_timestamp_micros(micros)?
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
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

/// A JSON string literal. Text that needs no escape (stream metadata always) is written as it
/// is; anything else is escaped by serde_json (RFC 8259: quote, backslash and control
/// characters).
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    serde_json::to_writer(out, s).expect("writing a string into a Vec cannot fail");
}

#[cfg(test)]
mod tests;
