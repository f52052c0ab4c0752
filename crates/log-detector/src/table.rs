//! The tracking table: reading an instance's rows and the conditional writes of [`Action`]s.
//!
//! The expressions are built by pure functions ([`order_copy`], [`observe`]) so their
//! conditions are unit-tested; [`apply`] sends them.

use crate::{Action, DetectError, DueReason, ListedLogFile};
use audit_core::aws::{describe, is_retryable};
use audit_core::messages::InstanceToScan;
use audit_core::tracking::{TrackedLogFile, attr};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One conditional `UpdateItem`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSpec {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// Every attribute goes through a `#name` placeholder: `size` and `state` are reserved words.
fn names(list: &[&str]) -> HashMap<String, String> {
    list.iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

/// Fields both writes set: what was listed, where it came from, when it expires.
fn common(
    message: &InstanceToScan,
    file: &ListedLogFile,
    now_ms: i64,
    expires_at: i64,
) -> (Vec<&'static str>, HashMap<String, AttributeValue>) {
    let mut values = HashMap::from([
        (":size".to_owned(), n(file.size)),
        (":last_written".to_owned(), n(file.last_written)),
        (":now".to_owned(), n(now_ms)),
        (":engine".to_owned(), s(&message.engine)),
        (":expires_at".to_owned(), n(expires_at)),
    ]);
    let mut sets = vec![
        "#size = :size",
        "#last_written = :last_written",
        "#first_seen = if_not_exists(#first_seen, :now)",
        "#engine = :engine",
        "#expires_at = :expires_at",
    ];
    if let Some(cluster) = &message.cluster_id {
        values.insert(":cluster_id".to_owned(), s(cluster));
        sets.push("#cluster_id = :cluster_id");
    }
    (sets, values)
}

const ALL_NAMES: &[&str] = &[
    attr::INSTANCE_ID,
    attr::SIZE,
    attr::LAST_WRITTEN,
    attr::FIRST_SEEN,
    attr::ENGINE,
    attr::CLUSTER_ID,
    attr::EXPIRES_AT,
    attr::STATE,
    attr::DUE_GENERATION,
    attr::DUE_SIZE,
    attr::DUE_LAST_WRITTEN,
    attr::DUE_AT,
    attr::DUE_REASON,
];

/// Orders a copy: raises `due_generation` from the value read (or creates the row), so only
/// one of several detectors with the same view succeeds and a stale view fails.
pub fn order_copy(
    message: &InstanceToScan,
    file: &ListedLogFile,
    row: Option<&TrackedLogFile>,
    reason: DueReason,
    now_ms: i64,
    expires_at: i64,
) -> UpdateSpec {
    let (mut sets, mut values) = common(message, file, now_ms, expires_at);
    let generation = row.map_or(0, |r| r.due_generation);
    values.insert(":next".to_owned(), n(generation + 1));
    values.insert(":due".to_owned(), s("due"));
    values.insert(":reason".to_owned(), s(reason.as_str()));
    sets.extend([
        "#state = :due",
        "#due_generation = :next",
        "#due_size = :size",
        "#due_last_written = :last_written",
        "#due_at = :now",
        "#due_reason = :reason",
    ]);
    let condition = if row.is_some() {
        values.insert(":read".to_owned(), n(generation));
        "#due_generation = :read".to_owned()
    } else {
        "attribute_not_exists(#instance_id)".to_owned()
    };
    UpdateSpec {
        update: format!("SET {}", sets.join(", ")),
        condition,
        names: names(ALL_NAMES),
        values,
    }
}

/// Records a sighting without ordering a copy. Never moves `last_written` backwards, never
/// touches the copy state of an existing row.
pub fn observe(
    message: &InstanceToScan,
    file: &ListedLogFile,
    now_ms: i64,
    expires_at: i64,
) -> UpdateSpec {
    let (mut sets, mut values) = common(message, file, now_ms, expires_at);
    values.insert(":observed".to_owned(), s("observed"));
    values.insert(":zero".to_owned(), n(0));
    sets.extend([
        "#state = if_not_exists(#state, :observed)",
        "#due_generation = if_not_exists(#due_generation, :zero)",
    ]);
    UpdateSpec {
        update: format!("SET {}", sets.join(", ")),
        condition: "attribute_not_exists(#instance_id) OR #last_written <= :last_written"
            .to_owned(),
        names: names(ALL_NAMES),
        values,
    }
}

/// Every row of one instance (strongly consistent, all pages), by log file name.
pub async fn load_rows(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    instance: &str,
) -> Result<HashMap<String, TrackedLogFile>, DetectError> {
    let mut pages = client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", attr::INSTANCE_ID)
        .expression_attribute_values(":pk", s(instance))
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut rows = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DetectError::Table {
            operation: "Query",
            message: describe(&e),
            retryable: is_retryable(&e),
        })?;
        for item in page.items() {
            let row: TrackedLogFile =
                serde_dynamo::from_item(item.clone()).map_err(|e| DetectError::Table {
                    operation: "Query",
                    message: format!("unreadable row: {e}"),
                    retryable: false,
                })?;
            rows.insert(row.log_file.clone(), row);
        }
    }
    Ok(rows)
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The condition failed: another detector wrote a newer view first.
    LostRace,
}

/// One decided write: the file as listed, its row as read, and what to do.
#[derive(Debug, Clone, Copy)]
pub struct PlannedWrite<'a> {
    pub message: &'a InstanceToScan,
    pub file: &'a ListedLogFile,
    pub row: Option<&'a TrackedLogFile>,
    pub action: Action,
    pub now_ms: i64,
    /// TTL, epoch seconds.
    pub expires_at: i64,
}

/// Sends the write an [`Action`] needs.
pub async fn apply(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    write: &PlannedWrite<'_>,
) -> Result<Written, DetectError> {
    let PlannedWrite {
        message,
        file,
        row,
        action,
        now_ms,
        expires_at,
    } = *write;
    let spec = match action {
        Action::Unchanged => return Ok(Written::Done),
        Action::Observe => observe(message, file, now_ms, expires_at),
        Action::OrderCopy(reason) => order_copy(message, file, row, reason, now_ms, expires_at),
    };
    let used_names: HashMap<String, String> = spec
        .names
        .into_iter()
        .filter(|(k, _)| spec.update.contains(k.as_str()) || spec.condition.contains(k.as_str()))
        .collect();
    let result = client
        .update_item()
        .table_name(table)
        .key(attr::INSTANCE_ID, s(&message.instance_id))
        .key(attr::LOG_FILE, s(&file.name))
        .update_expression(spec.update)
        .condition_expression(spec.condition)
        .set_expression_attribute_names(Some(used_names))
        .set_expression_attribute_values(Some(spec.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Written::Done),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(Written::LostRace)
        }
        Err(e) => Err(DetectError::Table {
            operation: "UpdateItem",
            message: describe(&e),
            retryable: is_retryable(&e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> InstanceToScan {
        InstanceToScan {
            version: 1,
            instance_id: "db-1".into(),
            cluster_id: Some("c-1".into()),
            engine: "aurora-mysql".into(),
            scanned_at: "x".into(),
        }
    }

    fn listed() -> ListedLogFile {
        ListedLogFile {
            name: "audit/a".into(),
            size: 10,
            last_written: 1000,
        }
    }

    #[test]
    fn a_first_order_creates_the_row_only_if_absent() {
        let spec = order_copy(&message(), &listed(), None, DueReason::NewQuiet, 5, 9);
        assert_eq!(spec.condition, "attribute_not_exists(#instance_id)");
        assert_eq!(spec.values[":next"], n(1));
        assert!(spec.update.contains("#due_size = :size"));
        assert!(spec.update.contains("#cluster_id = :cluster_id"));
    }

    #[test]
    fn a_later_order_is_conditional_on_the_generation_read() {
        let mut row: TrackedLogFile = serde_json::from_value(serde_json::json!({
            "instance_id": "db-1", "log_file": "audit/a", "engine": "aurora-mysql", "size": 5,
            "last_written": 900, "first_seen": 1, "state": "copied", "due_generation": 4, "expires_at": 0
        }))
        .unwrap();
        row.due_generation = 4;
        let spec = order_copy(
            &message(),
            &listed(),
            Some(&row),
            DueReason::ChangedQuiet,
            5,
            9,
        );
        assert_eq!(spec.condition, "#due_generation = :read");
        assert_eq!(spec.values[":read"], n(4));
        assert_eq!(spec.values[":next"], n(5));
    }

    #[test]
    fn an_observation_never_moves_time_backwards_or_touches_copy_state() {
        let spec = observe(&message(), &listed(), 5, 9);
        assert!(spec.condition.contains("#last_written <= :last_written"));
        assert!(
            spec.update
                .contains("#state = if_not_exists(#state, :observed)")
        );
        assert!(!spec.update.contains("#due_size"));
    }
}
