//! DynamoDB JSON (`{"price": {"N": "10.5"}}`) to plain JSON (`{"price": 10.5}`), in one pass
//! over the bytes.
//!
//! The event reader ([`crate::event`]) calls [`transcode_item_at`] where an image starts in the
//! event's text, so the image is checked and rewritten in the same pass that reads the event.
//! Rewriting the text directly, instead of building a map of attribute values first, is what
//! makes the transform fast enough (see `benches/transform.rs`: the typed `aws_lambda_events`
//! record managed 45,000 records/s on the benchmark batch). String contents are copied as they
//! are, escapes included (and checked), so nothing is decoded and re-encoded; base64 binary
//! stays the same base64; a number's digits are written as a JSON number token, never through
//! `f64`.
//!
//! The top-level attributes' raw spans are kept, so the MODIFY diff compares raw text first and
//! reads further only the values whose text differs (a reordered set or another spelling of a
//! number can still be the same value).

use std::ops::Range;

/// Why an image could not be rewritten, and where (`lines.[0].qty`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeError {
    pub path: String,
    pub message: String,
}

/// One top-level attribute of an image: byte ranges in the raw image text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttribute {
    /// The name as written between its quotes (escapes not decoded).
    pub name: Range<usize>,
    /// The attribute value object, `{"S": ...}`.
    pub value: Range<usize>,
}

/// Rewrites one item (`{"name": {"T": v}, ...}`) as plain JSON onto `out`, and returns its
/// top-level attributes.
pub fn transcode_item(raw: &str, out: &mut Vec<u8>) -> Result<Vec<RawAttribute>, TranscodeError> {
    let mut attributes = Vec::with_capacity(32);
    transcode_item_into(raw, out, &mut attributes)?;
    Ok(attributes)
}

/// [`transcode_item`] appending the attributes to a vector the caller reuses.
pub fn transcode_item_into(
    raw: &str,
    out: &mut Vec<u8>,
    attributes: &mut Vec<RawAttribute>,
) -> Result<(), TranscodeError> {
    let bytes = raw.as_bytes();
    let end = transcode_item_at(bytes, 0, out, attributes)?;
    let mut parser = Parser::new(bytes, end, out);
    parser.ws();
    if parser.at != bytes.len() {
        return Err(TranscodeError {
            path: String::new(),
            message: "text after the item".into(),
        });
    }
    Ok(())
}

/// Rewrites the item that starts at byte `at` of `bytes` (a stream event being read, see
/// [`crate::event::read_batch`]) and returns the byte after it. The attributes' ranges are
/// relative to the item's first byte. On error, `out` and `attributes` may hold a part of the
/// item: the caller truncates them.
///
/// The text must be UTF-8 without control bytes inside strings (the caller checks both);
/// everything else is checked here: the structure, escapes, and depth.
pub fn transcode_item_at(
    bytes: &[u8],
    at: usize,
    out: &mut Vec<u8>,
    attributes: &mut Vec<RawAttribute>,
) -> Result<usize, TranscodeError> {
    let mut parser = Parser::new(bytes, at, out);
    parser.ws();
    let start = parser.at;
    let first = attributes.len();
    parser
        .item(Some(attributes))
        .map_err(Failure::into_transcode_error)?;
    for attribute in &mut attributes[first..] {
        attribute.name = attribute.name.start - start..attribute.name.end - start;
        attribute.value = attribute.value.start - start..attribute.value.end - start;
    }
    Ok(parser.at)
}

/// How deep maps and lists may nest. DynamoDB allows 32 levels; serde_json, which read the
/// images before, stopped at 128. The limit keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 128;

/// The contents of the JSON string literal whose opening quote is at `at`: the range between
/// the quotes, and the byte after the closing one. Escapes are checked, not decoded.
pub fn scan_string(bytes: &[u8], at: usize) -> Result<(Range<usize>, usize), &'static str> {
    if bytes.get(at) != Some(&b'"') {
        return Err("expected a string");
    }
    let start = at + 1;
    let mut at = start;
    loop {
        // Eight bytes at a time to the next quote or backslash (strings are most of an
        // event's bytes, and this is most of the time spent reading it).
        while let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
            let found = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
            if found != 0 {
                at += (found.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        match bytes.get(at) {
            Some(b'"') => return Ok((start..at, at + 1)),
            Some(b'\\') => {
                at += escape_len(&bytes[at + 1..]).ok_or("invalid escape in a string")?
            }
            Some(_) => at += 1,
            None => return Err("unterminated string"),
        }
    }
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const QUOTES: u64 = ONES * b'"' as u64;
const BACKSLASHES: u64 = ONES * b'\\' as u64;

/// The high bit of the first zero byte of `word` set (bytes after it may be flagged too,
/// which is why only the lowest flag is used).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & (ONES << 7)
}

/// A position in JSON text, for the readers that walk it token by token (the event reader and
/// the diff): whitespace, single bytes, string literals as written.
#[derive(Debug, Clone)]
pub(crate) struct TextCursor<'a> {
    pub(crate) text: &'a str,
    pub(crate) at: usize,
}

impl<'a> TextCursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        TextCursor { text, at: 0 }
    }
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }
    /// The next byte after whitespace.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.at).copied()
    }
    /// Consumes `byte` if it comes next (after whitespace).
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }
    /// Consumes `word` (`true`, `null` ...) if it comes next (after whitespace).
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        self.ws();
        let found = self.bytes()[self.at..].starts_with(word.as_bytes());
        self.at += if found { word.len() } else { 0 };
        found
    }
    /// The contents of the string literal that comes next, as written (escapes checked, not
    /// decoded); the error says why and where.
    pub(crate) fn raw_string(&mut self) -> Result<&'a str, String> {
        self.ws();
        let (contents, next) = scan_string(self.bytes(), self.at)
            .map_err(|message| format!("{message} at byte {}", self.at))?;
        self.at = next;
        // The quotes are ASCII, so both ends are character boundaries.
        Ok(&self.text[contents])
    }
}

/// A string's contents as written in JSON, with its escapes decoded; `None` if they do not
/// decode (never for text [`scan_string`] accepted, but a lone surrogate).
pub(crate) fn decode_string(contents: &str) -> Option<String> {
    serde_json::from_str::<String>(&format!("\"{contents}\"")).ok()
}

/// The length of the escape whose backslash comes just before `rest`, backslash included
/// (RFC 8259: one of `"\\/bfnrt`, or `u` and four hex digits).
fn escape_len(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' if rest.len() >= 5 && rest[1..5].iter().all(u8::is_ascii_hexdigit) => Some(6),
        _ => None,
    }
}

/// An error on its way up, collecting the path from the innermost segment out. Shared with
/// the event reader, which spells its paths its own way.
pub(crate) struct Failure {
    path: Vec<String>,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            path: Vec::new(),
            message: message.into(),
        }
    }
    pub(crate) fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }
    /// The path's segments, outermost first.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.iter().rev().map(String::as_str)
    }
    fn into_transcode_error(self) -> TranscodeError {
        TranscodeError {
            path: self.segments().collect::<Vec<_>>().join("."),
            message: self.message,
        }
    }
}

struct Parser<'a, 'o> {
    bytes: &'a [u8],
    at: usize,
    out: &'o mut Vec<u8>,
    depth: usize,
}

type Step = Result<(), Failure>;

impl<'a, 'o> Parser<'a, 'o> {
    fn new(bytes: &'a [u8], at: usize, out: &'o mut Vec<u8>) -> Self {
        Parser {
            bytes,
            at,
            out,
            depth: 0,
        }
    }

    /// Enters a map or list.
    fn deeper(&mut self) -> Step {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Failure::new(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Step {
        // Lambda's events are compact JSON: the byte is usually right here.
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            return Ok(());
        }
        self.ws();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Failure::new(format!(
                "expected '{}' at byte {}",
                byte as char, self.at
            )))
        }
    }

    /// Consumes `byte` if it comes next (after whitespace).
    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            return true;
        }
        self.ws();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string literal: returns the range of its contents (between the quotes).
    fn string(&mut self) -> Result<Range<usize>, Failure> {
        if self.bytes.get(self.at) != Some(&b'"') {
            self.ws();
        }
        let (contents, next) = scan_string(self.bytes, self.at)
            .map_err(|message| Failure::new(format!("{message} at byte {}", self.at)))?;
        self.at = next;
        Ok(contents)
    }

    /// Copies a string literal to the output as it is, quotes included.
    fn copy_string(&mut self) -> Step {
        let contents = self.string()?;
        self.out
            .extend_from_slice(&self.bytes[contents.start - 1..contents.end + 1]);
        Ok(())
    }

    /// A DynamoDB number (a string) as a JSON number token.
    fn number(&mut self) -> Step {
        let contents = self.string()?;
        let text = &self.bytes[contents];
        let text = std::str::from_utf8(text).map_err(|_| Failure::new("number is not UTF-8"))?;
        match audit_core::number::json_number(text) {
            Some(token) => {
                self.out.extend_from_slice(token.as_bytes());
                Ok(())
            }
            None => Err(Failure::new(format!("not a number: {text:?}"))),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> bool {
        self.ws();
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// `{"name": <attribute value>, ...}` → `{"name": <plain>, ...}`.
    fn item(&mut self, attributes: Option<&mut Vec<RawAttribute>>) -> Step {
        self.deeper()?;
        self.item_members(attributes)?;
        self.depth -= 1;
        Ok(())
    }

    fn item_members(&mut self, mut attributes: Option<&mut Vec<RawAttribute>>) -> Step {
        self.expect(b'{')?;
        self.out.push(b'{');
        if self.eat(b'}') {
            self.out.push(b'}');
            return Ok(());
        }
        let mut first = true;
        loop {
            if !first {
                self.out.push(b',');
            }
            first = false;
            let name = self.string()?;
            self.expect(b':')?;
            if self.bytes[name.end + 1] == b':' {
                // Compact `"name":`: copy it whole.
                self.out
                    .extend_from_slice(&self.bytes[name.start - 1..name.end + 2]);
            } else {
                self.out.push(b'"');
                self.out.extend_from_slice(&self.bytes[name.clone()]);
                self.out.extend_from_slice(b"\":");
            }
            self.ws();
            let value_start = self.at;
            let bytes = self.bytes;
            self.attribute_value()
                .map_err(|f| f.within(String::from_utf8_lossy(&bytes[name.clone()])))?;
            if let Some(list) = attributes.as_deref_mut() {
                list.push(RawAttribute {
                    name,
                    value: value_start..self.at,
                });
            }
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}')?;
            self.out.push(b'}');
            return Ok(());
        }
    }

    /// `{"T": v}` → the plain value.
    fn attribute_value(&mut self) -> Step {
        // Fast path for the common compact `{"S":"..."}` and `{"N":"..."}`: one prefix check
        // instead of the general token steps.
        let rest = &self.bytes[self.at..];
        if rest.len() > 6 && rest.starts_with(b"{\"") && rest[3] == b'"' && rest[4] == b':' {
            match rest[2] {
                b'S' | b'B' if rest[5] == b'"' => {
                    self.at += 5;
                    self.copy_string()?;
                    return self.expect(b'}');
                }
                b'N' if rest[5] == b'"' => {
                    self.at += 5;
                    self.number()?;
                    return self.expect(b'}');
                }
                _ => {}
            }
        }
        self.expect(b'{')?;
        let tag = self.string()?;
        self.expect(b':')?;
        match &self.bytes[tag] {
            b"S" | b"B" => self.copy_string()?,
            b"N" => self.number()?,
            b"BOOL" => {
                if self.literal(b"true") {
                    self.out.extend_from_slice(b"true");
                } else if self.literal(b"false") {
                    self.out.extend_from_slice(b"false");
                } else {
                    return Err(Failure::new("BOOL is not true or false"));
                }
            }
            b"NULL" => {
                if !(self.literal(b"true") || self.literal(b"false")) {
                    return Err(Failure::new("NULL is not true or false"));
                }
                self.out.extend_from_slice(b"null");
            }
            b"M" => self.item(None)?,
            b"L" => self.list(|p| p.attribute_value())?,
            b"SS" | b"BS" => self.list(|p| p.copy_string())?,
            b"NS" => self.list(|p| p.number())?,
            other => {
                return Err(Failure::new(format!(
                    "unknown attribute type {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        }
        self.expect(b'}')
    }

    fn list(&mut self, element: impl FnMut(&mut Self) -> Step) -> Step {
        self.deeper()?;
        self.list_elements(element)?;
        self.depth -= 1;
        Ok(())
    }

    fn list_elements(&mut self, mut element: impl FnMut(&mut Self) -> Step) -> Step {
        self.expect(b'[')?;
        self.out.push(b'[');
        if self.eat(b']') {
            self.out.push(b']');
            return Ok(());
        }
        let mut index = 0;
        loop {
            if index > 0 {
                self.out.push(b',');
            }
            element(self).map_err(|f| f.within(format!("[{index}]")))?;
            index += 1;
            if self.eat(b',') {
                continue;
            }
            self.expect(b']')?;
            self.out.push(b']');
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(raw: &str) -> String {
        let mut out = Vec::new();
        transcode_item(raw, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rewrites_every_type_and_keeps_string_bytes_as_written() {
        assert_eq!(
            plain(
                r#"{ "a" : {"S":"x\"y\u00e9"}, "b":{"N":"-1.5E+3"}, "c":{"BOOL":false},"d":{"NULL":true},
                "e":{"B":"AAE="},"f":{"SS":["p","q"]},"g":{"NS":["1","2"]},"h":{"BS":[]},
                "i":{"L":[{"M":{"j":{"L":[]}}},{"N":"0"}]},"k":{"M":{}}}"#
            ),
            r#"{"a":"x\"y\u00e9","b":-1.5E+3,"c":false,"d":null,"e":"AAE=","f":["p","q"],"g":[1,2],"h":[],"i":[{"j":[]},0],"k":{}}"#
        );
        assert_eq!(plain("{}"), "{}");
    }

    #[test]
    fn keeps_the_raw_span_of_each_top_level_attribute() {
        let raw = r#"{"a":{"S":"1"}, "b\"q":{"L":[{"N":"2"}]}}"#;
        let attributes = transcode_item(raw, &mut Vec::new()).unwrap();
        let spans: Vec<(&str, &str)> = attributes
            .iter()
            .map(|a| (&raw[a.name.clone()], &raw[a.value.clone()]))
            .collect();
        assert_eq!(
            spans,
            [("a", r#"{"S":"1"}"#), (r#"b\"q"#, r#"{"L":[{"N":"2"}]}"#)]
        );
    }

    #[test]
    fn names_where_a_value_is_wrong() {
        let error = |raw: &str| transcode_item(raw, &mut Vec::new()).unwrap_err();
        let e = error(r#"{"lines":{"L":[{"N":"1"},{"M":{"qty":{"N":"lots"}}}]}}"#);
        assert_eq!(e.path, "lines.[1].qty");
        assert!(e.message.contains("lots"), "{}", e.message);
        assert_eq!(error(r#"{"a":{"X":"1"}}"#).path, "a");
        assert!(error(r#"{"a":{"BOOL":"yes"}}"#).message.contains("BOOL"));
        assert!(error(r#"{"a":{"S":"1"}"#).message.contains("expected"));
        assert!(error(r#"{"a":"plain"}"#).message.contains("expected '{'"));
    }
}
