//! `additional_data` as the exact JSON text the client sent: numbers keep every digit on the
//! way in and out, which `serde_json::Value` (f64) would not. No I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
/// the one validation read through `serde_json::Value`, whose numbers are `f64`. `slots` are
/// the validated events' `additional_data`, in the body's order: the body itself for a single
/// create, or a batch (a list, or `{"events": [...]}`). A slot left empty by validation stays
/// empty.
pub fn exact_additional_data<'s>(
    body: &[u8],
    slots: impl IntoIterator<Item = &'s mut Option<JsonText>>,
    batch: bool,
) -> Result<(), serde_json::Error> {
    let items: Vec<RawAdditionalData<'_>> = if !batch {
        vec![serde_json::from_slice(body)?]
    } else if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice(body)?
    } else {
        serde_json::from_slice::<RawBatch<'_>>(body)?.events
    };
    for (slot, item) in slots.into_iter().zip(items) {
        if slot.is_some() {
            *slot = item
                .additional_data
                .map(|raw| JsonText(raw.get().to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn additional_data_keeps_the_digits_the_client_sent() {
        let event = |data: Option<JsonText>| data;
        let body = br#"{"functionality_name": "x", "additional_data": {"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827}}"#;
        let lossy: Value = serde_json::from_slice(body).expect("json");
        let mut events = [event(Some(JsonText::from(&lossy["additional_data"])))];
        assert!(
            !events[0]
                .as_ref()
                .expect("data")
                .as_str()
                .contains("123456789012345678901234567890"),
            "serde_json::Value alone loses the digits"
        );
        exact_additional_data(body, &mut events, false).expect("exact");
        assert_eq!(
            events[0].as_ref().map(JsonText::as_str),
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
            .map(|e| e.as_ref().map(JsonText::as_str))
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
            serde_json::to_string(&events[0]).expect("serialise"),
            r#"{"n": 7}"#
        );
    }
}
