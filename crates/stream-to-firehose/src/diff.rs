//! What a MODIFY changed: the attribute names added, removed and modified between the two
//! images. Values compare by meaning, not by text: sets without order, numbers by value
//! (`10.50` is `10.5`). Pure code, no I/O.

use crate::dynamo_json::RawAttribute;
use audit_core::number::{DecimalNumber, same_number};
use serde_dynamo::AttributeValue;

/// The attribute names a MODIFY changed, each list sorted, as written in the image (JSON
/// string contents, escapes kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedAttributes<'a> {
    pub added: Vec<&'a str>,
    pub removed: Vec<&'a str>,
    pub modified: Vec<&'a str>,
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
                        .map(|n| DecimalNumber::parse(n).and_then(|p| p.canonical()))
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

    #[test]
    fn numbers_compare_by_value() {
        use serde_dynamo::AttributeValue as V;
        let n = |s: &str| V::N(s.to_owned());
        assert!(same_value(&n("1.50"), &n("15e-1")));
        assert!(same_value(&n("0"), &n("-0.000")));
        assert!(same_value(&n("100"), &n("1E+2")));
        assert!(!same_value(&n("100"), &n("10")));
        assert!(!same_value(
            &n("12345678901234567890123456789012345678"),
            &n("12345678901234567890123456789012345679")
        ));
        let ns = |v: &[&str]| V::Ns(v.iter().map(|s| (*s).to_owned()).collect());
        assert!(same_value(&ns(&["1", "2.0"]), &ns(&["2", "1"])));
        assert!(!same_value(&ns(&["1", "2"]), &ns(&["1", "3"])));
        assert!(
            !same_value(&V::S("1".into()), &n("1")),
            "a type change is a change"
        );
    }
}
