//! The original updater's request, validated and turned into one update: `{id, attributes,
//! enable_logging?, condition_expression?}` plus `sort_key` (tables with a sort key) and
//! `idempotency_key` (or the `Idempotency-Key` header).
//!
//! Pure: no I/O. Every name and value goes into the expressions through a placeholder.

use crate::condition;
use crate::json::{ValueError, attribute_value};
use crate::{KeyAttribute, KeyKind, KeySchema, UpdateError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;

/// DynamoDB's limits that a request can run into.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
pub const MAX_NAME_BYTES: usize = 65_535;
/// `ClientRequestToken`: 1 to 36 characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 36;

/// One update, ready for `UpdateItem` or a transaction's `Update`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePlan {
    /// The `id` as the caller sent it (the original updater's `updated_id` / `record_id`).
    pub record_id: String,
    pub key: HashMap<String, AttributeValue>,
    pub update_expression: String,
    pub condition_expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    /// The updated attributes' names, in request order; the value of the i-th is `:u<i>`.
    pub attributes: Vec<String>,
    /// Whether to write the audit record with the update.
    pub audit: bool,
    pub idempotency_key: Option<String>,
}

impl UpdatePlan {
    pub fn updated_names(&self) -> Vec<&str> {
        self.attributes.iter().map(String::as_str).collect()
    }

    /// The updated attributes with their new values, in request order (for the audit record).
    pub fn updated_values(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((name.as_str(), self.values.get(&format!(":u{i}"))?)))
    }
}

/// The request body's top-level fields, kept raw so each gets its own error.
#[derive(Debug, Default, Deserialize)]
struct RawRequest {
    id: Option<Box<RawValue>>,
    sort_key: Option<Box<RawValue>>,
    attributes: Option<Box<RawValue>>,
    enable_logging: Option<Box<RawValue>>,
    condition_expression: Option<Box<RawValue>>,
    idempotency_key: Option<Box<RawValue>>,
}

/// An object's entries in order (a plain map would lose the order and hide duplicates).
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push((name, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A field that is there and not `null`.
fn present(raw: &Option<Box<RawValue>>) -> Option<&RawValue> {
    raw.as_deref().filter(|r| r.get() != "null")
}

fn is_null(raw: &Option<Box<RawValue>>) -> bool {
    present(raw).is_none()
}

fn string_field(raw: &RawValue, field: &str) -> Result<String, UpdateError> {
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| UpdateError::invalid_input(format!("{field} must be a string"), field))
}

/// Whether a request is audited: `ENABLE_AUDIT_LOG`, and whether a request's
/// `enable_logging: false` may switch it off (`ALLOW_AUDIT_OPT_OUT`, off by default: a deployment
/// that audits must not be silenced by its callers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditPolicy {
    pub by_default: bool,
    pub requests_may_opt_out: bool,
}

impl From<bool> for AuditPolicy {
    /// `ENABLE_AUDIT_LOG` alone: requests may turn auditing on, never off.
    fn from(by_default: bool) -> Self {
        AuditPolicy {
            by_default,
            requests_may_opt_out: false,
        }
    }
}

impl AuditPolicy {
    /// Whether a request that says `enable_logging: requested` (or nothing) is audited.
    pub fn audits(self, requested: Option<bool>) -> bool {
        match requested {
            Some(true) => true,
            // Refused silently would surprise the caller less than a 400 would break it: the
            // update goes ahead, audited, and the handler logs that the opt-out was ignored.
            Some(false) => self.by_default && !self.requests_may_opt_out,
            None => self.by_default,
        }
    }
}

/// Validates `body` against the table's key schema and builds the update.
/// `audit` is `ENABLE_AUDIT_LOG` (and `ALLOW_AUDIT_OPT_OUT`); `header_key` the
/// `Idempotency-Key` header.
pub fn plan(
    body: &str,
    schema: &KeySchema,
    audit: impl Into<AuditPolicy>,
    header_key: Option<&str>,
) -> Result<UpdatePlan, UpdateError> {
    let policy = audit.into();
    let request: RawRequest = serde_json::from_str(body).map_err(|e| {
        UpdateError::invalid_input(
            format!(
                "the request body must be a JSON object ({})",
                e.classify_message()
            ),
            "body",
        )
    })?;
    let mut missing = Vec::new();
    if is_null(&request.id) {
        missing.push("id");
    }
    if is_null(&request.attributes) {
        missing.push("attributes");
    }
    if schema.sort.is_some() && is_null(&request.sort_key) {
        missing.push("sort_key");
    }
    if !missing.is_empty() {
        return Err(UpdateError::missing_fields(&missing));
    }
    let (Some(id), Some(attributes)) = (&request.id, &request.attributes) else {
        return Err(UpdateError::missing_fields(&["id", "attributes"]));
    };
    let record_id = string_field(id, "id")?;
    let mut key = HashMap::with_capacity(2);
    key.insert(
        schema.partition.name.clone(),
        key_value(&record_id, &schema.partition, "id", MAX_PARTITION_KEY_BYTES)?,
    );
    if let Some(sort) = &schema.sort {
        let raw = request.sort_key.as_ref().map_or("", |r| r.get());
        // A numeric sort key may be sent as a JSON number.
        let text = match serde_json::from_str::<String>(raw) {
            Ok(s) => s,
            Err(_) if sort.kind == KeyKind::N && crate::json::check_number(raw).is_ok() => {
                raw.to_owned()
            }
            Err(_) => {
                return Err(UpdateError::invalid_input(
                    "sort_key must be a string",
                    "sort_key",
                ));
            }
        };
        key.insert(
            sort.name.clone(),
            key_value(&text, sort, "sort_key", MAX_SORT_KEY_BYTES)?,
        );
    }

    let entries: Entries = serde_json::from_str(attributes.get()).map_err(|_| {
        UpdateError::invalid_input("attributes must be an object of name: value", "attributes")
    })?;
    if entries.0.is_empty() {
        return Err(UpdateError::validation(
            "attributes must name at least one attribute",
            "attributes",
        ));
    }
    let mut names = HashMap::with_capacity(entries.0.len() + 4);
    let mut values = HashMap::with_capacity(entries.0.len() + 4);
    let mut update_expression = String::with_capacity(16 * entries.0.len());
    let mut updated: Vec<String> = Vec::with_capacity(entries.0.len());
    let mut size = key
        .iter()
        .map(|(n, v)| n.len() + value_size(v))
        .sum::<usize>();
    for (i, (name, raw)) in entries.0.into_iter().enumerate() {
        let field = format!("attributes.{name}");
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(UpdateError::validation(
                "an attribute name must be 1 to 65535 bytes",
                &field,
            ));
        }
        if name == schema.partition.name || schema.sort.as_ref().is_some_and(|s| s.name == name) {
            return Err(UpdateError::validation(
                format!("{name} is part of the table's key and cannot be updated"),
                &field,
            ));
        }
        if updated.contains(&name) {
            return Err(UpdateError::validation(
                format!("{name} appears twice"),
                &field,
            ));
        }
        let value = attribute_value(&raw, &field)
            .map_err(|ValueError { path, message }| UpdateError::validation(message, &path))?;
        size += name.len() + value_size(&value);
        update_expression.push_str(if i == 0 { "SET " } else { ", " });
        let name_placeholder = format!("#u{i}");
        let value_placeholder = format!(":u{i}");
        update_expression.push_str(&name_placeholder);
        update_expression.push_str(" = ");
        update_expression.push_str(&value_placeholder);
        names.insert(name_placeholder, name.clone());
        values.insert(value_placeholder, value);
        updated.push(name);
    }
    if size > MAX_ITEM_BYTES {
        return Err(UpdateError::validation(
            format!("the update is {size} bytes; DynamoDB items hold at most {MAX_ITEM_BYTES}"),
            "attributes",
        ));
    }

    // The item must exist (a missing one is a 404, told apart from a failed caller condition by
    // the old item DynamoDB returns with the failure).
    names.insert("#k".into(), schema.partition.name.clone());
    let mut condition_expression = "attribute_exists(#k)".to_owned();
    if let Some(raw) = present(&request.condition_expression) {
        let text = string_field(raw, "condition_expression")?;
        let condition = condition::parse(&text).map_err(|e| {
            UpdateError::validation(format!("condition_expression: {e}"), "condition_expression")
        })?;
        condition_expression.push_str(" AND (");
        condition_expression.push_str(&condition.expression);
        condition_expression.push(')');
        names.extend(condition.names);
        values.extend(condition.values);
    }
    // DynamoDB's 4 KB limit applies to the expression it receives (placeholders included),
    // which can be several times the caller's text: refuse here rather than get a
    // ValidationException.
    for (expression, field) in [
        (&condition_expression, "condition_expression"),
        (&update_expression, "attributes"),
    ] {
        if expression.len() > condition::MAX_LENGTH {
            return Err(UpdateError::validation(
                format!(
                    "the {field} becomes a {}-byte expression; DynamoDB accepts at most {}",
                    expression.len(),
                    condition::MAX_LENGTH
                ),
                field,
            ));
        }
    }

    let requested = match present(&request.enable_logging) {
        Some(raw) => Some(serde_json::from_str::<bool>(raw.get()).map_err(|_| {
            UpdateError::invalid_input("enable_logging must be true or false", "enable_logging")
        })?),
        None => None,
    };
    let audit = policy.audits(requested);
    let idempotency_key = match present(&request.idempotency_key) {
        Some(raw) => Some(string_field(raw, "idempotency_key")?),
        None => header_key.map(str::to_owned),
    };
    if let Some(k) = &idempotency_key
        && (k.is_empty()
            || k.len() > MAX_IDEMPOTENCY_KEY
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(UpdateError::validation(
            "idempotency_key must be 1 to 36 letters, digits, '-' or '_'",
            "idempotency_key",
        ));
    }
    Ok(UpdatePlan {
        record_id,
        key,
        update_expression,
        condition_expression,
        names,
        values,
        attributes: updated,
        audit,
        idempotency_key,
    })
}

/// A key value of the table's key type.
fn key_value(
    text: &str,
    key: &KeyAttribute,
    field: &str,
    max: usize,
) -> Result<AttributeValue, UpdateError> {
    if text.is_empty() {
        return Err(UpdateError::validation(
            format!("{field} must not be empty"),
            field,
        ));
    }
    if text.len() > max {
        return Err(UpdateError::validation(
            format!("{field} is {} bytes; DynamoDB allows {max}", text.len()),
            field,
        ));
    }
    match key.kind {
        KeyKind::S => Ok(AttributeValue::S(text.to_owned())),
        KeyKind::N => {
            crate::json::check_number(text)
                .map_err(|m| UpdateError::validation(format!("{field}: {m}"), field))?;
            Ok(AttributeValue::N(text.to_owned()))
        }
        KeyKind::B => Err(UpdateError::validation(
            format!("{field}: tables with a binary key are not supported"),
            field,
        )),
    }
}

/// DynamoDB's size of a value (names count where they appear): close enough to enforce the
/// item limit before DynamoDB does.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "it is not valid JSON"
            }
            _ => "it is JSON, but not an object",
        }
    }
}

#[cfg(test)]
mod tests;
