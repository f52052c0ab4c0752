//! The DynamoDB stream event as Lambda delivers it, read in one pass over its bytes.
//!
//! The function takes the event as the raw bytes of the invocation ([`RawStreamEvent`], see
//! [`crate::raw_payload`]) and [`read_batch`] walks them once: the fields the audit line needs
//! are borrowed from the text, and each image is rewritten from DynamoDB JSON to plain JSON
//! ([`crate::dynamo_json`]) as the reader reaches it, so no image is scanned twice. That pass
//! is the whole cost of the function's transform (`benches/transform.rs`); reading the event
//! with `serde_json` first, as the runtime would, cost more than the rewrite itself.
//!
//! The reader is strict: the event must be JSON as RFC 8259 defines it (UTF-8, escapes, no
//! control characters in strings, no trailing commas, nesting at most
//! [`crate::dynamo_json::MAX_DEPTH`] deep). A field of the wrong type or a missing required
//! field is an [`EventError`] naming it (`Records[3].dynamodb.SequenceNumber`), which fails the
//! invocation as a runtime's deserialization error would. An image that is JSON but not
//! DynamoDB JSON (an unknown type, a number that is not one) fails only its record
//! ([`Image::rewritten`]), so the records before it can still be delivered.

use crate::dynamo_json::{
    Failure, MAX_DEPTH, RawAttribute, TextCursor, TranscodeError, decode_string, transcode_item_at,
};
use std::borrow::Cow;
use std::ops::Range;
use std::ops::{Deref, DerefMut};

/// The Lambda payload: the invocation's event, as the bytes the Runtime API sent.
#[derive(Debug, Clone)]
pub struct RawStreamEvent(pub bytes::Bytes);

impl From<String> for RawStreamEvent {
    fn from(text: String) -> Self {
        RawStreamEvent(bytes::Bytes::from(text))
    }
}

/// A stream batch, read: its records, and the plain JSON of their images.
#[derive(Debug, Default)]
pub struct StreamBatch<'a> {
    pub records: Vec<StreamRecord<'a>>,
    /// Every image's plain JSON and top-level attributes, one after another; an [`Image`]
    /// names its part.
    pub rewritten: RewrittenImages,
}

/// Rewritten images: their plain JSON and top-level attributes, one after another.
#[derive(Debug, Default)]
pub struct RewrittenImages {
    pub plain: Vec<u8>,
    pub attributes: Vec<RawAttribute>,
}

impl RewrittenImages {
    /// Empties the buffers, keeping their memory for the next record.
    pub fn clear(&mut self) {
        self.plain.clear();
        self.attributes.clear();
    }
}

/// One change (the `aws_lambda_events` field names and meanings). Strings are borrowed from
/// the event unless they hold escapes.
#[derive(Debug, Clone)]
pub struct StreamRecord<'a> {
    pub event_id: Cow<'a, str>,
    pub event_name: Cow<'a, str>,
    pub aws_region: Cow<'a, str>,
    pub event_source_arn: Option<Cow<'a, str>>,
    pub user_identity: Option<UserIdentity<'a>>,
    pub change: Change<'a>,
}

/// Who made the change: DynamoDB itself for a TTL deletion.
#[derive(Debug, Clone, Default)]
pub struct UserIdentity<'a> {
    pub type_: Cow<'a, str>,
    pub principal_id: Cow<'a, str>,
}

/// The `dynamodb` part of a record.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    /// Epoch seconds; may carry a fraction, may be missing.
    pub approximate_creation_date_time: Option<f64>,
    pub keys: Option<Image<'a>>,
    pub new_image: Option<Image<'a>>,
    pub old_image: Option<Image<'a>>,
    pub sequence_number: Option<Cow<'a, str>>,
    pub stream_view_type: Option<Cow<'a, str>>,
}

/// An item image (or the keys): its DynamoDB JSON text, and where its plain JSON is.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    /// The image as DynamoDB JSON, exactly as in the event.
    pub raw: &'a str,
    /// Its plain JSON in [`RewrittenImages`], or why it has none.
    pub rewritten: Result<RewrittenImage, TranscodeError>,
}

/// Where one image's plain JSON and top-level attributes are in [`RewrittenImages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenImage {
    pub plain: Range<usize>,
    /// Ranges relative to [`Image::raw`].
    pub attributes: Range<usize>,
}

/// A stream event that cannot be read: not JSON, or a field of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// `Records[3].dynamodb.SequenceNumber`; empty for the event as a whole.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "stream event: {}", self.message)
        } else {
            write!(f, "stream event: field {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for EventError {}

impl audit_core::Classify for EventError {
    fn code(&self) -> &'static str {
        "BadStreamEvent"
    }
    fn retryable(&self) -> bool {
        false
    }
}

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

/// The table name inside a stream (or table) ARN: `arn:aws:dynamodb:r:a:table/<name>/stream/<ts>`.
pub fn table_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":table/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Whether a REMOVE was DynamoDB's TTL process rather than a caller.
pub fn is_ttl_deletion(record: &StreamRecord<'_>) -> bool {
    record.event_name == "REMOVE"
        && record.user_identity.as_ref().is_some_and(|identity| {
            identity.type_ == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
        })
}

/// Reads a whole stream event (`{"Records": [...]}`), every record's images rewritten into
/// one buffer. The function itself reads record by record ([`BatchReader`]), reusing one
/// small buffer; this is for tests and tools that want the batch at once.
pub fn read_batch(body: &[u8]) -> Result<StreamBatch<'_>, EventError> {
    let mut reader = BatchReader::new(body)?;
    let mut batch = StreamBatch::default();
    while let Some(record) = reader.next_record(&mut batch.rewritten)? {
        batch.records.push(record);
    }
    Ok(batch)
}

/// Reads a stream event one record at a time, in one pass over its bytes.
///
/// Nothing of the event is trusted until [`BatchReader::next_record`] has returned `None`:
/// only then has the whole text been checked, so a caller acts on the records after that.
#[derive(Debug)]
pub struct BatchReader<'a> {
    reader: Reader<'a>,
    /// Records read so far; `None` once the event has been read to its end.
    records: Option<usize>,
}

impl<'a> BatchReader<'a> {
    /// Checks the text as a whole (UTF-8; control bytes) and finds the records.
    pub fn new(body: &'a [u8]) -> Result<Self, EventError> {
        // simdutf8 validates 16-32 bytes per step; the standard library, one word.
        let text = simdutf8::compat::from_utf8(body).map_err(|e| EventError {
            path: String::new(),
            message: format!("not UTF-8 (at byte {})", e.valid_up_to()),
        })?;
        // Lambda sends compact JSON: no byte below 0x20 anywhere, so none inside a string,
        // which is the one rule of JSON the rewrite does not check as it copies strings.
        // Other text (pretty-printed, or hostile) is checked by serde_json first.
        if has_control_bytes(body) {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| EventError {
                path: String::new(),
                message: format!("not JSON: {e}"),
            })?;
        }
        let mut reader = Reader(TextCursor::new(text));
        // Fields before "Records" are passed over; the records are read as they are asked for.
        let mut first = true;
        reader
            .expect(b'{', "'{'")
            .map_err(Failure::into_event_error)?;
        loop {
            let more = if first {
                !reader.eat(b'}')
            } else {
                reader.eat(b',')
            };
            if !more {
                let error = if first || reader.expect(b'}', "',' or '}'").is_ok() {
                    Failure::new("missing").within("Records")
                } else {
                    Failure::new(format!("expected ',' or '}}' at byte {}", reader.at))
                };
                return Err(error.into_event_error());
            }
            first = false;
            let key = reader.string().map_err(Failure::into_event_error)?;
            reader
                .expect(b':', "':'")
                .map_err(Failure::into_event_error)?;
            if key == "Records" {
                reader
                    .expect(b'[', "an array")
                    .map_err(|f| f.within("Records").into_event_error())?;
                return Ok(BatchReader {
                    reader,
                    records: Some(0),
                });
            }
            reader
                .skip_value(1)
                .map_err(|f| f.within(key.as_ref()).into_event_error())?;
        }
    }

    /// The next record, its images rewritten onto `rewritten` (which the caller may clear
    /// between records); `None` once the event has been read, and checked, to its end.
    pub fn next_record(
        &mut self,
        rewritten: &mut RewrittenImages,
    ) -> Result<Option<StreamRecord<'a>>, EventError> {
        let Some(index) = self.records else {
            return Ok(None);
        };
        let at_record = if index == 0 {
            !self.reader.eat(b']')
        } else {
            self.reader.eat(b',')
        };
        if !at_record {
            if index > 0 {
                self.reader
                    .expect(b']', "',' or ']'")
                    .map_err(|f| f.within("Records").into_event_error())?;
            }
            self.records = None;
            self.finish()?;
            return Ok(None);
        }
        let record = self.reader.record(rewritten).map_err(|f| {
            f.within(format!("[{index}]"))
                .within("Records")
                .into_event_error()
        })?;
        self.records = Some(index + 1);
        Ok(Some(record))
    }

    /// The rest of the event after its records: other fields, the end of the object, and
    /// nothing after it.
    fn finish(&mut self) -> Result<(), EventError> {
        let reader = &mut self.reader;
        while reader.eat(b',') {
            let key = reader.string().map_err(Failure::into_event_error)?;
            reader
                .expect(b':', "':'")
                .map_err(Failure::into_event_error)?;
            if key == "Records" {
                return Err(Failure::new("duplicate field Records").into_event_error());
            }
            reader
                .skip_value(1)
                .map_err(|f| f.within(key.as_ref()).into_event_error())?;
        }
        reader
            .expect(b'}', "',' or '}'")
            .map_err(Failure::into_event_error)?;
        reader.ws();
        if reader.at != reader.text.len() {
            return Err(EventError {
                path: String::new(),
                message: format!("text after the event at byte {}", reader.at),
            });
        }
        Ok(())
    }
}

/// Whether any byte is a control character (below 0x20). Written to compile to wide compares.
fn has_control_bytes(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |found, &b| found | (b < 0x20)))
}

impl Failure {
    /// `Records[3].dynamodb.SequenceNumber`: indexes follow their array without a dot.
    fn into_event_error(self) -> EventError {
        let mut path = String::new();
        for segment in self.segments() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        EventError {
            path,
            message: self.message,
        }
    }
}

type Step = Result<(), Failure>;

/// Sets a field that may appear once.
fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> Step {
    if slot.replace(value).is_some() {
        return Err(Failure::new(format!("duplicate field {key}")));
    }
    Ok(())
}

/// The event reader: a [`TextCursor`] with the event's grammar on top.
#[derive(Debug)]
struct Reader<'a>(TextCursor<'a>);

impl<'a> Deref for Reader<'a> {
    type Target = TextCursor<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> Reader<'a> {
    fn expect(&mut self, byte: u8, what: &str) -> Step {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(Failure::new(format!("expected {what} at byte {}", self.at)))
        }
    }

    /// A string literal, decoded (borrowed when it has no escapes).
    fn string(&mut self) -> Result<Cow<'a, str>, Failure> {
        let contents = self.raw_string().map_err(Failure::new)?;
        if !contents.contains('\\') {
            return Ok(Cow::Borrowed(contents));
        }
        decode_string(contents)
            .map(Cow::Owned)
            .ok_or_else(|| Failure::new("a string whose escapes do not decode"))
    }

    /// A string, or `null` for none.
    fn optional_string(&mut self) -> Result<Option<Cow<'a, str>>, Failure> {
        if self.literal_null() {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn literal_null(&mut self) -> bool {
        self.eat_word("null")
    }

    /// A JSON number token (RFC 8259 grammar): its text.
    fn number(&mut self) -> Result<&'a str, Failure> {
        self.ws();
        let bytes = self.bytes();
        let start = self.at;
        let mut at = start;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > from
        };
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let integer_start = at;
        if !digits(&mut at) || (bytes[integer_start] == b'0' && at - integer_start > 1) {
            return Err(Failure::new(format!("expected a number at byte {start}")));
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if !digits(&mut at) {
                return Err(Failure::new(format!("expected a number at byte {start}")));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if !digits(&mut at) {
                return Err(Failure::new(format!("expected a number at byte {start}")));
            }
        }
        self.at = at;
        Ok(&self.text[start..at])
    }

    /// `{"key": value, ...}`, calling `member` with the reader on each value. Keys with escapes
    /// are decoded before they are compared.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Step) -> Step {
        self.expect(b'{', "'{'")?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':', "':'")?;
            member(self, &key).map_err(|f| f.within(key.as_ref()))?;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}', "',' or '}'");
        }
    }

    /// Any JSON value, checked and passed over.
    fn skip_value(&mut self, depth: usize) -> Step {
        if depth >= MAX_DEPTH {
            return Err(Failure::new(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip_value(depth + 1)),
            Some(b'[') => {
                self.at += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if self.eat(b',') {
                        continue;
                    }
                    return self.expect(b']', "',' or ']'");
                }
            }
            Some(b'"') => self.raw_string().map(|_| ()).map_err(Failure::new),
            Some(b't' | b'f' | b'n') => {
                if ["true", "false", "null"]
                    .into_iter()
                    .any(|w| self.eat_word(w))
                {
                    return Ok(());
                }
                Err(Failure::new(format!(
                    "expected a value at byte {}",
                    self.at
                )))
            }
            _ => self.number().map(|_| ()),
        }
    }

    fn record(&mut self, rewritten: &mut RewrittenImages) -> Result<StreamRecord<'a>, Failure> {
        let (mut event_id, mut event_name, mut aws_region) = (None, None, None);
        let (mut arn, mut identity, mut change) = (None, None, None);
        self.object(|r, key| match key {
            "eventID" => {
                let value = r.string()?;
                set_once(&mut event_id, key, value)
            }
            "eventName" => {
                let value = r.string()?;
                set_once(&mut event_name, key, value)
            }
            "awsRegion" => {
                let value = r.string()?;
                set_once(&mut aws_region, key, value)
            }
            "eventSourceARN" => {
                let value = r.optional_string()?;
                set_once(&mut arn, key, value)
            }
            "userIdentity" => {
                let value = r.user_identity()?;
                set_once(&mut identity, key, value)
            }
            "dynamodb" => {
                let value = r.change(rewritten)?;
                set_once(&mut change, key, value)
            }
            _ => r.skip_value(1),
        })?;
        let required = |field: &str| Failure::new("missing").within(field);
        Ok(StreamRecord {
            event_id: event_id.ok_or_else(|| required("eventID"))?,
            event_name: event_name.ok_or_else(|| required("eventName"))?,
            aws_region: aws_region.unwrap_or_default(),
            event_source_arn: arn.flatten(),
            user_identity: identity.flatten(),
            change: change.ok_or_else(|| required("dynamodb"))?,
        })
    }

    fn user_identity(&mut self) -> Result<Option<UserIdentity<'a>>, Failure> {
        if self.literal_null() {
            return Ok(None);
        }
        let (mut type_, mut principal_id) = (None, None);
        self.object(|r, key| match key {
            "type" => {
                let value = r.string()?;
                set_once(&mut type_, key, value)
            }
            "principalId" => {
                let value = r.string()?;
                set_once(&mut principal_id, key, value)
            }
            _ => r.skip_value(2),
        })?;
        Ok(Some(UserIdentity {
            type_: type_.unwrap_or_default(),
            principal_id: principal_id.unwrap_or_default(),
        }))
    }

    fn change(&mut self, rewritten: &mut RewrittenImages) -> Result<Change<'a>, Failure> {
        let (mut created, mut keys, mut new, mut old, mut sequence, mut view) =
            (None, None, None, None, None, None);
        self.object(|r, key| match key {
            "ApproximateCreationDateTime" => {
                let value = if r.literal_null() {
                    None
                } else {
                    let text = r.number()?;
                    Some(
                        text.parse::<f64>()
                            .map_err(|e| Failure::new(e.to_string()))?,
                    )
                };
                set_once(&mut created, key, value)
            }
            "Keys" => {
                let value = r.image(rewritten)?;
                set_once(&mut keys, key, value)
            }
            "NewImage" => {
                let value = r.image(rewritten)?;
                set_once(&mut new, key, value)
            }
            "OldImage" => {
                let value = r.image(rewritten)?;
                set_once(&mut old, key, value)
            }
            "SequenceNumber" => {
                let value = r.optional_string()?;
                set_once(&mut sequence, key, value)
            }
            "StreamViewType" => {
                let value = r.optional_string()?;
                set_once(&mut view, key, value)
            }
            _ => r.skip_value(2),
        })?;
        Ok(Change {
            approximate_creation_date_time: created.flatten(),
            keys: keys.flatten(),
            new_image: new.flatten(),
            old_image: old.flatten(),
            sequence_number: sequence.flatten(),
            stream_view_type: view.flatten(),
        })
    }

    /// An image, rewritten to plain JSON as it is read; `null` for none.
    fn image(&mut self, rewritten: &mut RewrittenImages) -> Result<Option<Image<'a>>, Failure> {
        if self.literal_null() {
            return Ok(None);
        }
        if self.peek() != Some(b'{') {
            return Err(Failure::new(format!(
                "expected an object at byte {}",
                self.at
            )));
        }
        let start = self.at;
        let (plain_start, attributes_start) = (rewritten.plain.len(), rewritten.attributes.len());
        let result = transcode_item_at(
            self.bytes(),
            start,
            &mut rewritten.plain,
            &mut rewritten.attributes,
        );
        let image = match result {
            Ok(end) => {
                self.at = end;
                Ok(RewrittenImage {
                    plain: plain_start..rewritten.plain.len(),
                    attributes: attributes_start..rewritten.attributes.len(),
                })
            }
            Err(error) => {
                // JSON that is not DynamoDB JSON fails only this record; text that is not
                // JSON at all fails the event, here.
                rewritten.plain.truncate(plain_start);
                rewritten.attributes.truncate(attributes_start);
                self.skip_value(2)?;
                Err(error)
            }
        };
        Ok(Some(Image {
            raw: &self.text[start..self.at],
            rewritten: image,
        }))
    }
}

#[cfg(test)]
mod tests;
