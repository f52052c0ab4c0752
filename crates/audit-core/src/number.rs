//! Decimal numbers as DynamoDB and JSON spell them, kept exact: a DynamoDB number has up to
//! 38 significant digits, which a trip through `f64` would change. The change audit writes
//! them into its lines ([`json_number`]) and compares them by value ([`same_number`]); the
//! record updater checks them against DynamoDB's limits ([`DecimalNumber`]).

use std::borrow::Cow;

/// The JSON number token for a DynamoDB number string, keeping every digit. DynamoDB already
/// returns numbers in JSON's grammar; other spellings of the same value (`+5`, `.5`, `5.`,
/// `007`) are rewritten without changing a digit. `None` when the text is not a number.
pub fn json_number(n: &str) -> Option<Cow<'_, str>> {
    if is_json_number(n) {
        return Some(Cow::Borrowed(n));
    }
    let parsed = DecimalNumber::parse(n)?;
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
pub fn is_json_number(n: &str) -> bool {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalNumber<'a> {
    pub negative: bool,
    pub integer: &'a str,
    pub fraction: &'a str,
    /// Sign and digits, as written.
    pub exponent: Option<&'a str>,
}

impl<'a> DecimalNumber<'a> {
    /// `None` when `n` is not a decimal number in any common spelling.
    pub fn parse(n: &'a str) -> Option<Self> {
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
        Some(DecimalNumber {
            negative,
            integer,
            fraction,
            exponent,
        })
    }

    /// Sign, significant digits and the power of ten of the last digit: equal exactly when
    /// the values are equal (`1.50` and `15e-1` agree).
    pub fn canonical(&self) -> Option<(bool, String, i64)> {
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

/// Whether two number strings are the same value (`1.50` and `15e-1` are).
pub fn same_number(a: &str, b: &str) -> bool {
    a == b || {
        let canonical = |n: &str| DecimalNumber::parse(n).and_then(|p| p.canonical());
        match (canonical(a), canonical(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_digits_in_json_grammar() {
        assert_eq!(json_number("101").as_deref(), Some("101"));
        assert_eq!(json_number("-1.25E-7").as_deref(), Some("-1.25E-7"));
        assert_eq!(json_number("+5").as_deref(), Some("5"));
        assert_eq!(json_number(".5").as_deref(), Some("0.5"));
        assert_eq!(json_number("5.").as_deref(), Some("5"));
        assert_eq!(json_number("007").as_deref(), Some("7"));
        for bad in ["", "-", "abc", "1e", "1.2.3", "0x10", "NaN", "1e+"] {
            assert_eq!(json_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn equal_values_in_other_spellings_are_the_same_number() {
        assert!(same_number("1.50", "15e-1"));
        assert!(same_number("0", "-0.000"));
        assert!(same_number("100", "1E+2"));
        assert!(!same_number("100", "10"));
        assert!(!same_number(
            "12345678901234567890123456789012345678",
            "12345678901234567890123456789012345679"
        ));
        assert!(!same_number("1", "one"));
    }
}
