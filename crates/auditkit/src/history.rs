//! `auditkit history`: one item's changes, read straight from the change log Firehose wrote
//! (gzip JSON lines, one per DynamoDB stream record, under hourly `YYYY/MM/DD/HH/` prefixes
//! of the delivery time), without Athena. Pure decisions and the scanner; the listing and
//! fetching are in `cli`.
//!
//! Speed comes from not parsing what cannot match: the decompressed bytes are searched for
//! the key as the change log spells it (`"orderId":"101"` or `"orderId":101`), and only the
//! lines holding it are parsed and compared exactly (table, every key attribute). A key that
//! needs JSON escaping is not searched for: then every line is parsed (slower, still right).

use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// Firehose delivers a record at most its buffer interval (900 s) after it arrived, and the
/// prefix is the delivery hour: a change can sit in the prefix of a later hour than its own.
pub const DELIVERY_SLACK_MS: i64 = 20 * 60 * 1000;

const HOUR_MS: i64 = 3_600_000;

/// The longest change-log line a scan holds. A stream record carries at most two images of a
/// 400 KB item, typed and escaped as DynamoDB JSON; a longer line is not a change record, and
/// stopping there keeps memory bounded whatever an object holds.
pub const MAX_CHANGE_LINE: usize = 16 << 20;

/// The item asked for: its table and key attributes (all of the table's key, or the partition
/// key alone to see every item under it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemKey {
    pub table: String,
    pub attributes: Vec<(String, String)>,
}

impl ItemKey {
    /// From `--table` and the `--key` arguments: each `attr=value[,attr=value]`; a value that
    /// holds a comma is given in a `--key` of its own.
    pub fn parse(table: &str, keys: &[String]) -> Result<Self, String> {
        if table.is_empty() {
            return Err("--table: empty".into());
        }
        let mut attributes = Vec::new();
        for arg in keys {
            let parts: Vec<&str> = arg.split(',').collect();
            let pieces = if parts.len() > 1 && parts.iter().all(|p| p.contains('=')) {
                parts
            } else {
                vec![arg.as_str()]
            };
            for piece in pieces {
                let (name, value) = piece.split_once('=').ok_or_else(|| {
                    format!("--key {arg:?}: expected attr=value (e.g. --key orderId=101)")
                })?;
                if name.is_empty() {
                    return Err(format!("--key {arg:?}: the attribute name is empty"));
                }
                if attributes.iter().any(|(n, _)| n == name) {
                    return Err(format!("--key: attribute {name:?} given twice"));
                }
                attributes.push((name.to_owned(), value.to_owned()));
            }
        }
        if attributes.is_empty() {
            return Err("--key: give at least the partition key, e.g. --key orderId=101".into());
        }
        Ok(ItemKey {
            table: table.to_owned(),
            attributes,
        })
    }

    /// Whether a change line's `keys` object names this item.
    fn matches(&self, keys: &BTreeMap<String, Box<RawValue>>) -> bool {
        self.attributes.iter().all(|(name, value)| {
            keys.get(name).is_some_and(|raw| {
                let raw = raw.get();
                match raw.strip_prefix('"') {
                    Some(_) => serde_json::from_str::<String>(raw).is_ok_and(|s| &s == value),
                    None => raw == value,
                }
            })
        })
    }

    /// The byte strings one of which every line of this item holds, when they can be known
    /// without escaping: `"attr":"value"` and, for a number, `"attr":value`.
    fn needles(&self) -> Option<Vec<Vec<u8>>> {
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'/')
        };
        let (name, value) = self.attributes.first()?;
        if !plain(name) || !plain(value) || value.is_empty() {
            return None;
        }
        let mut needles = vec![format!("\"{name}\":\"{value}\"").into_bytes()];
        if value.parse::<f64>().is_ok() {
            needles.push(format!("\"{name}\":{value}").into_bytes());
        }
        Some(needles)
    }
}

/// The hourly prefixes that can hold changes made in `[since, until]`.
pub fn hour_prefixes(prefix: &str, since: i64, until: i64) -> Vec<String> {
    let first = since.div_euclid(HOUR_MS);
    let last = (until + DELIVERY_SLACK_MS).div_euclid(HOUR_MS);
    (first..=last)
        .filter_map(|hour| chrono::DateTime::from_timestamp_millis(hour * HOUR_MS))
        .map(|t| format!("{prefix}{}", t.format("%Y/%m/%d/%H/")))
        .collect()
}

/// One change of the item, as its change-log line holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeStep {
    pub event_id: String,
    pub event_name: String,
    pub keys: Map<String, Value>,
    pub sequence_number: String,
    #[serde(default)]
    pub approximate_creation_time: Option<String>,
    #[serde(default)]
    pub new_image: Option<Map<String, Value>>,
    #[serde(default)]
    pub old_image: Option<Map<String, Value>>,
    #[serde(default)]
    pub ttl_expired: bool,
    #[serde(default)]
    pub images_omitted: Option<String>,
}

/// What a line must have for the exact comparison, parsed before the rest of it.
#[derive(Deserialize)]
struct LineHead {
    table: String,
    keys: BTreeMap<String, Box<RawValue>>,
    #[serde(default)]
    approximate_creation_time: Option<String>,
}

/// What one scan read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub bytes: u64,
    pub lines_parsed: u64,
}

/// Finds one item's changes in decompressed change-log bytes.
#[allow(missing_debug_implementations)] // holds compiled searchers
pub struct Scanner {
    item: ItemKey,
    finders: Option<Vec<memmem::Finder<'static>>>,
    since: i64,
    until: i64,
}

impl Scanner {
    pub fn new(item: ItemKey, since: i64, until: i64) -> Self {
        let finders = item.needles().map(|needles| {
            needles
                .into_iter()
                .map(|n| memmem::Finder::new(&n).into_owned())
                .collect()
        });
        Scanner {
            item,
            finders,
            since,
            until,
        }
    }

    /// Whether every line must be parsed (the key cannot be searched for as bytes).
    pub fn is_exhaustive(&self) -> bool {
        self.finders.is_none()
    }

    /// Scans one change-log object: gzip (Firehose's `GZIP` compression, possibly several
    /// members) when it starts with gzip's magic bytes, plain JSON lines otherwise (a stream
    /// delivered uncompressed).
    pub fn scan_object(
        &self,
        object: &[u8],
        found: &mut Vec<ChangeStep>,
    ) -> Result<ScanStats, String> {
        if object.starts_with(&[0x1f, 0x8b]) {
            self.scan(flate2::read::MultiGzDecoder::new(object), found)
        } else {
            self.scan(object, found)
        }
    }

    /// Scans decompressed change-log bytes, 1 MiB at a time.
    pub fn scan(
        &self,
        mut lines: impl Read,
        found: &mut Vec<ChangeStep>,
    ) -> Result<ScanStats, String> {
        const CHUNK: usize = 1 << 20;
        let mut stats = ScanStats::default();
        let mut buf: Vec<u8> = Vec::with_capacity(2 * CHUNK);
        let mut line_no = 0u64;
        loop {
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let n = lines
                .read(&mut buf[start..])
                .map_err(|e| format!("not valid gzip: {e}"))?;
            buf.truncate(start + n);
            stats.bytes += n as u64;
            let complete = if n == 0 {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None if buf.len() > MAX_CHANGE_LINE => {
                        return Err(format!(
                            "line {} is longer than {MAX_CHANGE_LINE} bytes: not a change record",
                            line_no + 1
                        ));
                    }
                    None => continue, // one line longer than the buffer so far
                }
            };
            self.scan_lines(&buf[..complete], &mut line_no, &mut stats, found)?;
            buf.drain(..complete);
            if n == 0 {
                return Ok(stats);
            }
        }
    }

    /// Scans whole lines.
    fn scan_lines(
        &self,
        block: &[u8],
        line_no: &mut u64,
        stats: &mut ScanStats,
        found: &mut Vec<ChangeStep>,
    ) -> Result<(), String> {
        match &self.finders {
            None => {
                for line in block.split(|&b| b == b'\n') {
                    *line_no += 1;
                    self.consider(line, *line_no, stats, found)?;
                }
            }
            Some(finders) => {
                // Candidate lines, each once, in order.
                let mut starts: Vec<usize> = Vec::new();
                for finder in finders {
                    for at in finder.find_iter(block) {
                        starts.push(memchr::memrchr(b'\n', &block[..at]).map_or(0, |i| i + 1));
                    }
                }
                starts.sort_unstable();
                starts.dedup();
                for start in starts {
                    let end =
                        memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
                    // Line numbers are for errors only; counting them costs a pass.
                    self.consider(&block[start..end], 0, stats, found)?;
                }
            }
        }
        Ok(())
    }

    fn consider(
        &self,
        line: &[u8],
        line_no: u64,
        stats: &mut ScanStats,
        found: &mut Vec<ChangeStep>,
    ) -> Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        stats.lines_parsed += 1;
        // A line that is not a change record: the change log is corrupt or not ours.
        let bad = |e: serde_json::Error| match line_no {
            0 => format!("a line holding the key is not a change record: {e}"),
            n => format!("line {n} is not a change record: {e}"),
        };
        let head: LineHead = serde_json::from_slice(line).map_err(bad)?;
        if head.table != self.item.table || !self.item.matches(&head.keys) {
            return Ok(());
        }
        if let Some(at) = head
            .approximate_creation_time
            .as_deref()
            .and_then(audit_core::digest::parse_rfc3339)
            && !(self.since..=self.until).contains(&at)
        {
            return Ok(());
        }
        found.push(serde_json::from_slice(line).map_err(bad)?);
        Ok(())
    }
}

/// The history: each change once (Firehose and retries deliver at least once), in stream
/// order (one item's changes share a shard, whose sequence numbers grow; compared as numbers).
pub fn history(mut steps: Vec<ChangeStep>) -> Vec<ChangeStep> {
    let mut seen = HashSet::new();
    steps.retain(|s| seen.insert(s.event_id.clone()));
    steps.sort_by(|a, b| {
        (a.sequence_number.len(), &a.sequence_number)
            .cmp(&(b.sequence_number.len(), &b.sequence_number))
    });
    steps
}

/// What one change did, a line per attribute: `state: "OPEN" -> "PICKEDUP"`.
pub fn describe(step: &ChangeStep) -> Vec<String> {
    if let Some(reason) = &step.images_omitted {
        return vec![format!("(images not recorded: {reason})")];
    }
    let empty = Map::new();
    let old = step.old_image.as_ref().unwrap_or(&empty);
    let new = step.new_image.as_ref().unwrap_or(&empty);
    let mut lines = Vec::new();
    match step.event_name.as_str() {
        "REMOVE" => {
            lines.push(if step.ttl_expired {
                "deleted by TTL expiry".to_owned()
            } else {
                "deleted".to_owned()
            });
        }
        _ if step.old_image.is_none() && step.event_name == "MODIFY" => {
            lines.push("(no old image: the stream view type records only new images)".into());
            for (name, value) in new {
                lines.push(format!("{name} = {value}"));
            }
        }
        _ => {
            for (name, value) in new {
                match old.get(name) {
                    None => lines.push(format!("{name} = {value}")),
                    Some(before) if before != value => {
                        lines.push(format!("{name}: {before} -> {value}"));
                    }
                    Some(_) => {}
                }
            }
            for name in old.keys().filter(|n| !new.contains_key(*n)) {
                lines.push(format!("{name} removed (was {})", old[name]));
            }
        }
    }
    lines
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The stack's `item-history` named query for this item and time range, for scans too large
/// to run here.
pub fn athena_query(item: &ItemKey, since: i64, until: i64) -> String {
    let hour = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y/%m/%d/%H")
            .to_string()
    };
    let keys: Vec<String> = item
        .attributes
        .iter()
        .map(|(n, v)| format!("keys[{}] = {}", sql_text(n), sql_text(v)))
        .collect();
    format!(
        "WITH changes AS (\n  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY datehour) AS copy\n  FROM dynamodb_changes\n  WHERE \"table\" = {} AND {}\n    AND datehour BETWEEN {} AND {}\n)\nSELECT approximate_creation_time, event_name, changed_attributes, ttl_expired, new_image, old_image\nFROM changes\nWHERE copy = 1\nORDER BY length(sequence_number), sequence_number",
        sql_text(&item.table),
        keys.join(" AND "),
        sql_text(&hour(since)),
        sql_text(&hour(until + DELIVERY_SLACK_MS)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(
        event_id: &str,
        name: &str,
        table: &str,
        key: &str,
        seq: &str,
        new_state: &str,
        old_state: Option<&str>,
    ) -> String {
        let old = old_state.map_or("null".to_owned(), |s| {
            format!("{{{key},\"state\":\"{s}\"}}")
        });
        format!(
            "{{\"event_id\":\"{event_id}\",\"event_name\":\"{name}\",\"table\":\"{table}\",\"keys\":{{{key}}},\"new_image\":{{{key},\"state\":\"{new_state}\"}},\"old_image\":{old},\"changed_attributes\":null,\"sequence_number\":\"{seq}\",\"approximate_creation_time\":\"2026-11-30T07:00:00Z\",\"stream_view_type\":\"NEW_AND_OLD_IMAGES\",\"ttl_expired\":false,\"region\":\"eu-west-1\",\"images_omitted\":null}}\n"
        )
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn scan(item: ItemKey, text: &str) -> Vec<ChangeStep> {
        let mut found = Vec::new();
        let scanner = Scanner::new(item, 0, i64::MAX / 2);
        scanner.scan_object(&gzip(text), &mut found).unwrap();
        // Delivered uncompressed, the same lines are found.
        let mut plain = Vec::new();
        scanner.scan_object(text.as_bytes(), &mut plain).unwrap();
        assert_eq!(plain, found);
        found
    }

    #[test]
    fn keys_parse_from_pairs_and_name_what_is_wrong() {
        let k = ItemKey::parse("Orders", &["orderId=101,sk=a".into(), "note=x,y".into()]).unwrap();
        assert_eq!(
            k.attributes,
            [
                ("orderId".into(), "101".into()),
                ("sk".into(), "a".into()),
                ("note".into(), "x,y".into())
            ]
        );
        assert!(
            ItemKey::parse("Orders", &["orderId".into()])
                .unwrap_err()
                .contains("attr=value")
        );
        assert!(
            ItemKey::parse("Orders", &[])
                .unwrap_err()
                .contains("partition key")
        );
        assert!(
            ItemKey::parse("Orders", &["a=1".into(), "a=2".into()])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            ItemKey::parse("", &["a=1".into()])
                .unwrap_err()
                .contains("--table")
        );
    }

    #[test]
    fn only_the_items_lines_are_found_string_and_number_keys_alike() {
        let item = ItemKey::parse("Orders", &["orderId=101".into()]).unwrap();
        let text = [
            line(
                "e1",
                "INSERT",
                "Orders",
                "\"orderId\":\"101\"",
                "100",
                "OPEN",
                None,
            ),
            line(
                "e2",
                "INSERT",
                "Orders",
                "\"orderId\":\"1011\"",
                "101",
                "OPEN",
                None,
            ),
            line(
                "e3",
                "INSERT",
                "Other",
                "\"orderId\":\"101\"",
                "102",
                "OPEN",
                None,
            ),
            line(
                "e4",
                "MODIFY",
                "Orders",
                "\"orderId\":101",
                "103",
                "DONE",
                Some("OPEN"),
            ),
            // The value in an image only, not in the key.
            line(
                "e5",
                "INSERT",
                "Orders",
                "\"orderId\":\"7\",\"ref\":\"101\"",
                "104",
                "OPEN",
                None,
            ),
        ]
        .concat();
        let ids: Vec<String> = scan(item.clone(), &text)
            .into_iter()
            .map(|s| s.event_id)
            .collect();
        assert_eq!(ids, ["e1", "e4"]);
        // The exhaustive path (a key that needs escaping) agrees.
        let odd = ItemKey::parse("Orders", &["note=a\"b".into()]).unwrap();
        assert!(Scanner::new(odd, 0, 1).is_exhaustive());
        assert!(!Scanner::new(item, 0, 1).is_exhaustive());
    }

    #[test]
    fn a_composite_key_must_match_every_attribute_given() {
        let text = [
            line(
                "e1",
                "INSERT",
                "T",
                "\"pk\":\"a\",\"sk\":\"1\"",
                "1",
                "X",
                None,
            ),
            line(
                "e2",
                "INSERT",
                "T",
                "\"pk\":\"a\",\"sk\":\"2\"",
                "2",
                "X",
                None,
            ),
        ]
        .concat();
        let one = ItemKey::parse("T", &["pk=a,sk=2".into()]).unwrap();
        assert_eq!(scan(one, &text)[0].event_id, "e2");
        let all = ItemKey::parse("T", &["pk=a".into()]).unwrap();
        assert_eq!(scan(all, &text).len(), 2);
    }

    #[test]
    fn the_history_is_each_change_once_in_stream_order_with_what_changed() {
        let item = ItemKey::parse("Orders", &["orderId=101".into()]).unwrap();
        let k = "\"orderId\":\"101\"";
        let text = [
            line(
                "e3",
                "MODIFY",
                "Orders",
                k,
                "1000",
                "DELIVERED",
                Some("PICKEDUP"),
            ),
            line("e1", "INSERT", "Orders", k, "99", "OPEN", None),
            line("e2", "MODIFY", "Orders", k, "200", "PICKEDUP", Some("OPEN")),
            line("e2", "MODIFY", "Orders", k, "200", "PICKEDUP", Some("OPEN")),
        ]
        .concat();
        let steps = history(scan(item, &text));
        let ids: Vec<&str> = steps.iter().map(|s| s.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e3"], "99 < 200 < 1000 as numbers");
        assert_eq!(
            describe(&steps[0]),
            ["orderId = \"101\"", "state = \"OPEN\""]
        );
        assert_eq!(
            describe(&steps[2]),
            ["state: \"PICKEDUP\" -> \"DELIVERED\""]
        );
    }

    #[test]
    fn a_line_that_is_not_a_change_record_is_an_error_not_a_skip() {
        let item = ItemKey::parse("Orders", &["orderId=101".into()]).unwrap();
        let scanner = Scanner::new(item, 0, i64::MAX / 2);
        let err = scanner
            .scan_object(
                &gzip("{\"keys\":{\"orderId\":\"101\"} oops\n"),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(err.contains("not a change record"), "{err}");
        let whole = line(
            "e1",
            "INSERT",
            "Orders",
            "\"orderId\":\"101\"",
            "1",
            "OPEN",
            None,
        );
        let mut cut = gzip(&whole);
        cut.truncate(cut.len() - 12);
        let err = scanner.scan_object(&cut, &mut Vec::new()).unwrap_err();
        assert!(err.contains("gzip"), "{err}");
    }

    #[test]
    fn a_line_past_the_bound_is_an_error_and_is_not_held_whole() {
        let item = ItemKey::parse("Orders", &["orderId=101".into()]).unwrap();
        let scanner = Scanner::new(item, 0, i64::MAX / 2);
        // A reader that never ends a line: the scan must stop, not grow without bound.
        let endless = std::io::repeat(b'x').take(4 * MAX_CHANGE_LINE as u64);
        let err = scanner.scan(endless, &mut Vec::new()).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn changes_outside_the_range_are_left_out_and_the_prefixes_cover_late_delivery() {
        let item = ItemKey::parse("Orders", &["orderId=101".into()]).unwrap();
        let text = line(
            "e1",
            "INSERT",
            "Orders",
            "\"orderId\":\"101\"",
            "1",
            "OPEN",
            None,
        );
        let at = audit_core::digest::parse_rfc3339("2026-11-30T07:00:00Z").unwrap();
        let mut found = Vec::new();
        Scanner::new(item.clone(), at + 1, at + HOUR_MS)
            .scan_object(&gzip(&text), &mut found)
            .unwrap();
        assert!(found.is_empty());
        let p = hour_prefixes("dynamodb-changes/", at + 10 * 60_000, at + 50 * 60_000);
        assert_eq!(
            p,
            [
                "dynamodb-changes/2026/11/30/07/",
                "dynamodb-changes/2026/11/30/08/"
            ]
        );
        let q = athena_query(
            &ItemKey::parse("O'rders", &["id=1'1".into()]).unwrap(),
            at,
            at,
        );
        assert!(
            q.contains("\"table\" = 'O''rders' AND keys['id'] = '1''1'"),
            "{q}"
        );
        assert!(
            q.contains("BETWEEN '2026/11/30/07' AND '2026/11/30/07'"),
            "{q}"
        );
    }
}
