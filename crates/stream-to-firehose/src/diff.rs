//! What a MODIFY changed: the attribute names added, removed and modified between the two
//! images. Values compare by meaning, not by text: sets without order, numbers by value
//! (`10.50` is `10.5`). Pure code, no I/O.

use crate::dynamo_json::{RawAttribute, TextCursor, decode_string};
use audit_core::number::{DecimalNumber, same_number};
use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

/// The attribute names a MODIFY changed, each list sorted, as written in the image (JSON
/// string contents, escapes kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedAttributes<'a> {
    pub added: Vec<&'a str>,
    pub removed: Vec<&'a str>,
    pub modified: Vec<&'a str>,
}

/// An attribute value read in place from an image's text: strings stay borrowed (escapes
/// kept), so comparing two values allocates only the lists of maps, lists and sets.
#[derive(Debug, Clone, PartialEq)]
pub enum RawAttributeValue<'a> {
    /// `S` or `B`: the string's contents as written.
    S(&'a str),
    B(&'a str),
    N(&'a str),
    Bool(bool),
    Null,
    M(Vec<(&'a str, RawAttributeValue<'a>)>),
    L(Vec<RawAttributeValue<'a>>),
    Ss(Vec<&'a str>),
    Ns(Vec<&'a str>),
    Bs(Vec<&'a str>),
}

impl<'a> RawAttributeValue<'a> {
    /// Reads the attribute value (`{"N": "1.5"}` ...) that is the whole of `text`. `None`
    /// when it is not one (never for an image the reader rewrote).
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut cursor = Cursor::new(text);
        let value = cursor.value(0)?;
        cursor.ws();
        (cursor.at == text.len()).then_some(value)
    }
}

/// The diff's reader: a [`TextCursor`] reading attribute values, `None` at anything else.
struct Cursor<'a>(TextCursor<'a>);

impl<'a> Deref for Cursor<'a> {
    type Target = TextCursor<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Cursor<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor(TextCursor::new(text))
    }
    fn string(&mut self) -> Option<&'a str> {
        self.raw_string().ok()
    }
    /// `[element, ...]`.
    fn list<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(items);
        }
        loop {
            items.push(element(self)?);
            if self.eat(b']') {
                return Some(items);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }
    /// `{"name": value, ...}`.
    fn map(&mut self, depth: usize) -> Option<Vec<(&'a str, RawAttributeValue<'a>)>> {
        if !self.eat(b'{') {
            return None;
        }
        let mut entries = Vec::new();
        if self.eat(b'}') {
            return Some(entries);
        }
        loop {
            let name = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            entries.push((name, self.value(depth + 1)?));
            if self.eat(b'}') {
                return Some(entries);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }
    fn literal(&mut self) -> Option<bool> {
        if self.eat_word("true") {
            Some(true)
        } else {
            self.eat_word("false").then_some(false)
        }
    }
    /// `{"T": v}`.
    fn value(&mut self, depth: usize) -> Option<RawAttributeValue<'a>> {
        if depth > crate::dynamo_json::MAX_DEPTH || !self.eat(b'{') {
            return None;
        }
        let tag = self.string()?;
        if !self.eat(b':') {
            return None;
        }
        let value = match tag {
            "S" => RawAttributeValue::S(self.string()?),
            "B" => RawAttributeValue::B(self.string()?),
            "N" => RawAttributeValue::N(self.string()?),
            "BOOL" => RawAttributeValue::Bool(self.literal()?),
            "NULL" => {
                self.literal()?;
                RawAttributeValue::Null
            }
            "M" => RawAttributeValue::M(self.map(depth)?),
            "L" => RawAttributeValue::L(self.list(|c| c.value(depth + 1))?),
            "SS" => RawAttributeValue::Ss(self.list(Self::string)?),
            "NS" => RawAttributeValue::Ns(self.list(Self::string)?),
            "BS" => RawAttributeValue::Bs(self.list(Self::string)?),
            _ => return None,
        };
        self.eat(b'}').then_some(value)
    }
}

/// Compares two values by walking both texts together, without building them: `Some` when
/// that decides (a difference ends the walk at once, which is the usual case for a modified
/// attribute), `None` when only the full comparison can (maps whose names come in another
/// order, sets in another order, text that does not read).
fn lockstep(a: &mut Cursor<'_>, b: &mut Cursor<'_>, depth: usize) -> Option<bool> {
    if depth > crate::dynamo_json::MAX_DEPTH || !a.eat(b'{') || !b.eat(b'{') {
        return None;
    }
    let tag = a.string()?;
    if b.string()? != tag {
        return Some(false);
    }
    if !a.eat(b':') || !b.eat(b':') {
        return None;
    }
    let both = |a: &mut Cursor<'_>, b: &mut Cursor<'_>, byte: u8| (a.eat(byte), b.eat(byte));
    match tag {
        "S" | "B" => {
            if !same_string(a.string()?, b.string()?) {
                return Some(false);
            }
        }
        "N" => {
            if !same_number(a.string()?, b.string()?) {
                return Some(false);
            }
        }
        "BOOL" | "NULL" => {
            if a.literal()? != b.literal()? {
                return Some(false);
            }
        }
        "L" | "M" => {
            let (open, close) = if tag == "L" {
                (b'[', b']')
            } else {
                (b'{', b'}')
            };
            if both(a, b, open) != (true, true) {
                return None;
            }
            let mut first = true;
            loop {
                match both(a, b, close) {
                    (true, true) => break,
                    (false, false) => {}
                    _ => return Some(false), // one has more entries
                }
                if !first && both(a, b, b',') != (true, true) {
                    return None;
                }
                first = false;
                if tag == "M" {
                    if a.string()? != b.string()? {
                        return None; // another order, or other names: the full comparison
                    }
                    if both(a, b, b':') != (true, true) {
                        return None;
                    }
                }
                if !lockstep(a, b, depth + 1)? {
                    return Some(false);
                }
            }
        }
        "SS" | "NS" | "BS" => {
            let (p, q) = (a.list(Cursor::string)?, b.list(Cursor::string)?);
            if p.len() != q.len() {
                return Some(false);
            }
            if p != q {
                return None; // another order, or another spelling: the full comparison
            }
        }
        _ => return None,
    }
    (a.eat(b'}') && b.eat(b'}')).then_some(true)
}

/// Whether two strings as written in JSON are the same text (escapes decoded when present).
fn same_string(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if !a.contains('\\') && !b.contains('\\') {
        return false;
    }
    matches!((decode_string(a), decode_string(b)), (Some(x), Some(y)) if x == y)
}

/// Whether two sets hold the same members, in any order.
fn same_set<T: Clone>(a: &[T], b: &[T], key: impl Fn(&T) -> Option<String>) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let sorted = |v: &[T]| {
        let mut keys: Vec<Option<String>> = v.iter().map(&key).collect();
        keys.sort();
        keys
    };
    let (p, q) = (sorted(a), sorted(b));
    p == q && !p.contains(&None)
}

/// Whether two attribute values are the same value: sets and maps compare without order,
/// numbers by value (`10.50` is `10.5`), strings with their escapes decoded.
pub fn same_value<'v>(a: &'v RawAttributeValue<'v>, b: &'v RawAttributeValue<'v>) -> bool {
    use RawAttributeValue as V;
    let decoded = |s: &&str| decode_string(s);
    match (a, b) {
        (V::S(x), V::S(y)) | (V::B(x), V::B(y)) => same_string(x, y),
        (V::N(x), V::N(y)) => same_number(x, y),
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Null, V::Null) => true,
        (V::M(x), V::M(y)) => {
            // By name, sorted: a map can hold thousands of entries.
            let by_name = |entries: &'v [(&'v str, RawAttributeValue<'v>)]| {
                let mut named: Vec<(Option<Cow<'v, str>>, &'v RawAttributeValue<'v>)> = entries
                    .iter()
                    .map(|(name, value)| {
                        let name = if name.contains('\\') {
                            decoded(name).map(Cow::Owned)
                        } else {
                            Some(Cow::Borrowed(*name))
                        };
                        (name, value)
                    })
                    .collect();
                named.sort_unstable_by(|p, q| p.0.cmp(&q.0));
                named
            };
            // Names in the same order (how DynamoDB writes both images of an item): pairwise.
            if x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.0 == q.0) {
                return x.iter().zip(y).all(|(p, q)| same_value(&p.1, &q.1));
            }
            x.len() == y.len() && {
                let (p, q) = (by_name(x), by_name(y));
                p.iter()
                    .zip(&q)
                    .all(|((n, v), (m, w))| n.is_some() && n == m && same_value(v, w))
            }
        }
        (V::L(x), V::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w)),
        (V::Ss(x), V::Ss(y)) | (V::Bs(x), V::Bs(y)) => {
            (x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p == q)) || same_set(x, y, decoded)
        }
        (V::Ns(x), V::Ns(y)) => same_set(x, y, |n| {
            DecimalNumber::parse(n)
                .and_then(|p| p.canonical())
                .map(|c| format!("{c:?}"))
        }),
        _ => false,
    }
}

/// Whether two raw attribute values (`{"N": "1.50"}` ...) are the same value. Equal text is
/// the common case; otherwise both are read in place and compared by value.
fn same_raw_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (mut x, mut y) = (Cursor::new(a), Cursor::new(b));
    if let Some(same) = lockstep(&mut x, &mut y, 0) {
        return same;
    }
    match (RawAttributeValue::parse(a), RawAttributeValue::parse(b)) {
        (Some(x), Some(y)) => same_value(&x, &y),
        _ => false,
    }
}

/// Added, removed and modified attribute names between two images.
pub fn changed_attributes<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        same_raw_value(a, b)
    }

    #[test]
    fn numbers_compare_by_value() {
        let n = |s: &str| format!(r#"{{"N":"{s}"}}"#);
        assert!(same(&n("1.50"), &n("15e-1")));
        assert!(same(&n("0"), &n("-0.000")));
        assert!(same(&n("100"), &n("1E+2")));
        assert!(!same(&n("100"), &n("10")));
        assert!(!same(
            &n("12345678901234567890123456789012345678"),
            &n("12345678901234567890123456789012345679")
        ));
        assert!(same(r#"{"NS":["1","2.0"]}"#, r#"{ "NS" : [ "2", "1" ] }"#));
        assert!(!same(r#"{"NS":["1","2"]}"#, r#"{"NS":["1","3"]}"#));
        assert!(!same(r#"{"S":"1"}"#, &n("1")), "a type change is a change");
    }

    #[test]
    fn containers_compare_by_meaning_not_by_text() {
        // Sets and maps in another order, escapes spelled differently: the same value.
        assert!(same(r#"{"SS":["a","b"]}"#, r#"{"SS":["b","a"]}"#));
        assert!(same(
            r#"{"BS":["AA==","/w=="]}"#,
            r#"{"BS":["/w==","AA=="]}"#
        ));
        assert!(same(r#"{"S":"Aé"}"#, r#"{"S":"Aé"}"#));
        assert!(same(
            r#"{"M":{"a":{"N":"1"},"b":{"L":[{"S":"x"},{"NULL":true}]}}}"#,
            r#"{"M":{"b":{"L":[{"S":"x"},{"NULL":true}]},"a":{"N":"1.0"}}}"#
        ));
        // Lists keep their order; a changed leaf anywhere is a change.
        assert!(!same(
            r#"{"L":[{"S":"x"},{"S":"y"}]}"#,
            r#"{"L":[{"S":"y"},{"S":"x"}]}"#
        ));
        assert!(!same(
            r#"{"M":{"a":{"M":{"b":{"BOOL":true}}}}}"#,
            r#"{"M":{"a":{"M":{"b":{"BOOL":false}}}}}"#
        ));
        assert!(!same(
            r#"{"M":{"a":{"N":"1"}}}"#,
            r#"{"M":{"a":{"N":"1"},"b":{"N":"1"}}}"#
        ));
        assert!(!same(r#"{"SS":["a","a"]}"#, r#"{"SS":["a","b"]}"#));
    }

    #[test]
    fn the_walk_in_step_agrees_with_the_full_comparison_whenever_it_decides() {
        let values = [
            r#"{"S":"x"}"#,
            r#"{"S":"\u0078"}"#,
            r#"{"N":"1.0"}"#,
            r#"{"N":"1"}"#,
            r#"{"N":"2"}"#,
            r#"{"BOOL":true}"#,
            r#"{"NULL":true}"#,
            r#"{"SS":["a","b"]}"#,
            r#"{"SS":["b","a"]}"#,
            r#"{"NS":["1","2"]}"#,
            r#"{"NS":["2.0","1"]}"#,
            r#"{"L":[{"S":"x"},{"N":"1"}]}"#,
            r#"{"L":[{"S":"x"},{"N":"1.00"}]}"#,
            r#"{"L":[{"S":"x"}]}"#,
            r#"{"M":{"a":{"S":"x"},"b":{"N":"1"}}}"#,
            r#"{"M":{"b":{"N":"1"},"a":{"S":"x"}}}"#,
            r#"{"M":{"a":{"S":"x"},"b":{"N":"2"}}}"#,
            r#"{"M":{"a":{"S":"x"}}}"#,
            r#"{ "M" : { "a" : { "S" : "x" } , "b" : { "N" : "1e0" } } }"#,
        ];
        let mut decided = 0;
        for a in values {
            for b in values {
                let full = same_value(
                    &RawAttributeValue::parse(a).unwrap(),
                    &RawAttributeValue::parse(b).unwrap(),
                );
                let (mut x, mut y) = (Cursor::new(a), Cursor::new(b));
                if let Some(walked) = lockstep(&mut x, &mut y, 0) {
                    assert_eq!(walked, full, "{a} vs {b}");
                    decided += 1;
                }
                assert_eq!(same_raw_value(a, b), full, "{a} vs {b}");
            }
        }
        assert!(decided > values.len() * values.len() / 2, "{decided}");
    }
}
