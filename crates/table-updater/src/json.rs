//! Request JSON to DynamoDB attribute values, keeping every digit of a number.
//!
//! serde_json (without its `arbitrary_precision` feature, which would change number handling
//! for every crate in the workspace) hands numbers over as `u64`/`i64`/`f64`, and a 38-digit
//! DynamoDB number does not survive that. The `attributes` object therefore arrives as raw JSON
//! text (`RawValue`, already validated as JSON by serde_json) and is converted here: strings are
//! decoded, numbers keep their text, objects become maps, arrays lists, `null` NULL.

use audit_core::number::DecimalNumber;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// DynamoDB's nesting limit for maps and lists.
pub const MAX_DEPTH: usize = 32;

/// Why a value cannot be stored, and where (`address.lines[2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub path: String,
    pub message: String,
}

/// One JSON value as an attribute value; `path` names it in errors. Taking a `RawValue` means
/// serde_json has already checked the text is JSON, which the parser below relies on.
pub fn attribute_value(raw: &RawValue, path: &str) -> Result<AttributeValue, ValueError> {
    let raw = raw.get();
    let mut parser = Parser {
        bytes: raw.as_bytes(),
        text: raw,
        at: 0,
    };
    let value = parser.value(0).map_err(|(mut segments, message)| {
        segments.reverse();
        ValueError {
            path: format!("{path}{}", segments.concat()),
            message,
        }
    })?;
    Ok(value)
}

type Failure = (Vec<String>, String);

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, Failure> {
        Err((Vec::new(), message.into()))
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, Failure> {
        self.ws();
        match self.bytes.get(self.at) {
            Some(b'"') => Ok(AttributeValue::S(self.string()?)),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return self.fail(format!("nested deeper than DynamoDB's {MAX_DEPTH} levels"));
                }
                self.at += 1;
                let mut map = HashMap::new();
                self.ws();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(AttributeValue::M(map));
                }
                loop {
                    self.ws();
                    let name = self.string()?;
                    self.ws();
                    self.at += 1; // ':' (the text is valid JSON)
                    let value = self.value(depth + 1).map_err(|(mut p, m)| {
                        p.push(format!(".{name}"));
                        (p, m)
                    })?;
                    if name.is_empty() {
                        return self.fail("a map key is empty");
                    }
                    map.insert(name, value);
                    self.ws();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        _ => {
                            self.at += 1; // '}'
                            return Ok(AttributeValue::M(map));
                        }
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.fail(format!("nested deeper than DynamoDB's {MAX_DEPTH} levels"));
                }
                self.at += 1;
                let mut list = Vec::new();
                self.ws();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(AttributeValue::L(list));
                }
                loop {
                    let index = list.len();
                    let value = self.value(depth + 1).map_err(|(mut p, m)| {
                        p.push(format!("[{index}]"));
                        (p, m)
                    })?;
                    list.push(value);
                    self.ws();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        _ => {
                            self.at += 1; // ']'
                            return Ok(AttributeValue::L(list));
                        }
                    }
                }
            }
            Some(b't') => {
                self.at += 4;
                Ok(AttributeValue::Bool(true))
            }
            Some(b'f') => {
                self.at += 5;
                Ok(AttributeValue::Bool(false))
            }
            Some(b'n') => {
                self.at += 4;
                Ok(AttributeValue::Null(true))
            }
            Some(_) => {
                let start = self.at;
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') =
                    self.bytes.get(self.at)
                {
                    self.at += 1;
                }
                let number = &self.text[start..self.at];
                check_number(number).map_err(|e| (Vec::new(), e.to_string()))?;
                Ok(AttributeValue::N(number.to_owned()))
            }
            None => self.fail("missing value"),
        }
    }

    /// A string literal, decoded.
    fn string(&mut self) -> Result<String, Failure> {
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        while let Some(&b) = self.bytes.get(self.at) {
            self.at += 1;
            match b {
                b'\\' => {
                    escaped = true;
                    self.at += 1;
                }
                b'"' => {
                    let literal = &self.text[start..self.at];
                    if !escaped {
                        return Ok(literal[1..literal.len() - 1].to_owned());
                    }
                    return serde_json::from_str(literal).map_err(|e| (Vec::new(), e.to_string()));
                }
                _ => {}
            }
        }
        self.fail("unterminated string")
    }
}

/// A number DynamoDB cannot store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("{0} is not a number")]
    NotANumber(String),
    #[error("{number} has {digits} significant digits; DynamoDB keeps at most 38")]
    TooPrecise { number: String, digits: usize },
    #[error("{0} is outside DynamoDB's range (1E-130 to 9.99E+125)")]
    OutOfRange(String),
}

/// A JSON number DynamoDB can store: at most 38 significant digits, magnitude between 1E-130
/// and 9.9999999999999999999999999999999999999E+125 (or zero).
pub fn check_number(number: &str) -> Result<(), NumberError> {
    let not_a_number = || NumberError::NotANumber(number.to_owned());
    // A leading `+` is no spelling JSON or DynamoDB accepts.
    if number.starts_with('+') {
        return Err(not_a_number());
    }
    let (_, digits, last_digit_power) = DecimalNumber::parse(number)
        .and_then(|n| n.canonical())
        .ok_or_else(not_a_number)?;
    if digits.is_empty() {
        return Ok(()); // zero
    }
    if digits.len() > 38 {
        return Err(NumberError::TooPrecise {
            number: number.to_owned(),
            digits: digits.len(),
        });
    }
    // The power of ten of the first significant digit.
    let magnitude = last_digit_power + i64::try_from(digits.len()).unwrap_or(i64::MAX) - 1;
    if !(-130..=125).contains(&magnitude) {
        return Err(NumberError::OutOfRange(number.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap()
    }

    fn av(text: &str) -> AttributeValue {
        attribute_value(&raw(text), "attributes.x").unwrap()
    }

    #[test]
    fn numbers_keep_every_digit() {
        assert_eq!(
            av("12345678901234567890123456789012345678"),
            AttributeValue::N("12345678901234567890123456789012345678".into())
        );
        assert_eq!(av("-1.5e-7"), AttributeValue::N("-1.5e-7".into()));
        assert_eq!(av("0"), AttributeValue::N("0".into()));
    }

    #[test]
    fn nested_values_convert_and_errors_name_the_path() {
        let value = av(r#"{"a":"x\"y\u00e9","b":[1,true,null,{"c":[]}]}"#);
        let AttributeValue::M(map) = value else {
            panic!("{value:?}")
        };
        assert_eq!(map["a"], AttributeValue::S("x\"yé".into()));
        assert_eq!(
            map["b"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::Bool(true),
                AttributeValue::Null(true),
                AttributeValue::M([("c".to_owned(), AttributeValue::L(vec![]))].into()),
            ])
        );
        let error = attribute_value(&raw(r#"{"lines":[1,{"qty":1e999}]}"#), "attributes.order")
            .unwrap_err();
        assert_eq!(error.path, "attributes.order.lines[1].qty");
        assert!(error.message.contains("range"), "{}", error.message);
        let error = attribute_value(&raw(r#"{"":1}"#), "attributes.m").unwrap_err();
        assert!(error.message.contains("empty"));
    }

    #[test]
    fn too_deep_or_too_precise_values_are_refused() {
        let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
        assert!(
            attribute_value(&raw(&deep), "a")
                .unwrap_err()
                .message
                .contains("32 levels")
        );
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(attribute_value(&raw(&ok), "a").is_ok());
        assert!(check_number("123456789012345678901234567890123456789").is_err());
        assert!(check_number("1234567890123456789012345678901234567800000").is_ok());
        assert!(check_number("1e-130").is_ok() && check_number("1e-131").is_err());
        assert!(check_number("9.9e125").is_ok() && check_number("1e126").is_err());
        assert!(check_number("0.000e-500").is_ok(), "zero has no magnitude");
        for bad in ["", "-", "+5", "1e", "x1", "1.2.3"] {
            assert!(check_number(bad).is_err(), "{bad:?}");
        }
    }
}
