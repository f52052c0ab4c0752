//! Adapter over DynamoDB: the key schema at cold start, then one update per request.
//!
//! - Without an audit record or idempotency key: `UpdateItem`, conditional on the item existing
//!   (and on the caller's condition).
//! - With either: `TransactWriteItems`. It holds the same update plus, with audit on, the audit
//!   record: both are written or neither. The idempotency key becomes the `ClientRequestToken`.
//!   With audit on it also names the audit record (`log_id`), so a retry is recognised after
//!   DynamoDB's 10-minute token window too.
//! - A failed condition returns the current item (`ReturnValuesOnConditionCheckFailure`): no
//!   item means 404, an item means the caller's condition failed (412). No extra read is needed.
//! - A failed attempt with audit on leaves a `status: failed` audit record, best effort and
//!   outside the transaction.

use crate::request::{MAX_ITEM_BYTES, UpdatePlan, value_size};
use crate::{Config, KeyAttribute, KeyKind, KeySchema, UpdateError};
use audit_core::aws::describe;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TransactWriteItem, Update,
};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};

/// Why the table's key schema could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySchemaError {
    #[error("DescribeTable {table}: {message}")]
    Describe { table: String, message: String },
    #[error("DescribeTable returned no table")]
    NoTable,
    #[error("the table has no partition key")]
    NoPartitionKey,
}

/// The table's key schema (`DescribeTable`), read once at cold start.
pub async fn key_schema(client: &Client, table: &str) -> Result<KeySchema, KeySchemaError> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| KeySchemaError::Describe {
            table: table.to_owned(),
            message: describe(&e),
        })?;
    let table_description = described.table.ok_or(KeySchemaError::NoTable)?;
    let kind_of = |name: &str| {
        table_description
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == name)
            .map(|d| match d.attribute_type() {
                ScalarAttributeType::N => KeyKind::N,
                ScalarAttributeType::B => KeyKind::B,
                _ => KeyKind::S,
            })
            .unwrap_or(KeyKind::S)
    };
    let mut partition = None;
    let mut sort = None;
    for element in table_description.key_schema() {
        let attribute = KeyAttribute {
            name: element.attribute_name().to_owned(),
            kind: kind_of(element.attribute_name()),
        };
        match element.key_type() {
            KeyType::Hash => partition = Some(attribute),
            _ => sort = Some(attribute),
        }
    }
    Ok(KeySchema {
        partition: partition.ok_or(KeySchemaError::NoPartitionKey)?,
        sort,
    })
}

/// What an applied request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// A retry of a request already applied (same idempotency key, same request).
    Replayed,
}

/// Who asked, for the audit record's `user_agent`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub user_agent: Option<String>,
}

/// The function: settings, the table's key schema and the client, built once.
#[derive(Debug, Clone)]
pub struct Updater {
    pub config: Config,
    pub schema: KeySchema,
    pub dynamodb: Client,
    pub metrics: audit_core::metrics::MetricsOut,
}

/// A request's fingerprint: a retry with the same idempotency key must carry the same update.
/// Computed over a canonical form (map keys sorted at every level, numbers as sent, sets
/// sorted), so the same request always gives the same fingerprint whatever the order a
/// `HashMap` iterates in.
pub fn fingerprint(table: &str, plan: &UpdatePlan) -> String {
    let mut text = String::new();
    text.push_str(table);
    text.push('\n');
    canonical_map(&plan.key, &mut text);
    text.push('\n');
    text.push_str(&plan.update_expression);
    text.push('\n');
    text.push_str(&plan.condition_expression);
    text.push('\n');
    let names: BTreeMap<&String, &String> = plan.names.iter().collect();
    for (placeholder, name) in names {
        canonical_string(placeholder, &mut text);
        text.push('=');
        canonical_string(name, &mut text);
        text.push(';');
    }
    text.push('\n');
    canonical_map(&plan.values, &mut text);
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A JSON-quoted string: no value can imitate a separator.
fn canonical_string(value: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(value).to_string());
}

fn canonical_map(map: &HashMap<String, AttributeValue>, out: &mut String) {
    let sorted: BTreeMap<&String, &AttributeValue> = map.iter().collect();
    out.push('{');
    for (name, value) in sorted {
        canonical_string(name, out);
        out.push(':');
        canonical_value(value, out);
        out.push(',');
    }
    out.push('}');
}

/// One value with its type tag; sets sorted (DynamoDB keeps no order in them).
fn canonical_value(value: &AttributeValue, out: &mut String) {
    let sorted_set = |tag: &str, mut items: Vec<String>, out: &mut String| {
        items.sort();
        out.push_str(tag);
        out.push('[');
        for item in items {
            canonical_string(&item, out);
            out.push(',');
        }
        out.push(']');
    };
    match value {
        AttributeValue::S(text) => {
            out.push('S');
            canonical_string(text, out);
        }
        AttributeValue::N(number) => {
            out.push('N');
            canonical_string(number, out);
        }
        AttributeValue::B(bytes) => {
            out.push('B');
            out.push_str(&hex::encode(bytes.as_ref()));
        }
        AttributeValue::Bool(flag) => out.push_str(if *flag { "T" } else { "F" }),
        AttributeValue::Null(_) => out.push('0'),
        AttributeValue::M(map) => {
            out.push('M');
            canonical_map(map, out);
        }
        AttributeValue::L(list) => {
            out.push_str("L[");
            for item in list {
                canonical_value(item, out);
                out.push(',');
            }
            out.push(']');
        }
        AttributeValue::Ss(set) => sorted_set("SS", set.clone(), out),
        AttributeValue::Ns(set) => sorted_set("NS", set.clone(), out),
        AttributeValue::Bs(set) => sorted_set(
            "BS",
            set.iter().map(|b| hex::encode(b.as_ref())).collect(),
            out,
        ),
        // A variant added to the SDK later: its debug form, which has no map in it.
        other => out.push_str(&format!("?{other:?}")),
    }
}

/// The audit record's id: derived from the idempotency key (so a retry finds it), else random.
pub fn log_id(table: &str, plan: &UpdatePlan) -> String {
    record_id_for(table, plan.idempotency_key.as_deref())
}

fn record_id_for(table: &str, idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => {
            let digest = sha2::Sha256::digest(format!("{table}\n{key}").as_bytes());
            format!("idem-{}", &hex::encode(digest)[..32])
        }
        None => format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl Updater {
    /// The original updater's audit record, plus `previous_values` when known and the request fingerprint.
    fn audit_record(
        &self,
        plan: &UpdatePlan,
        log_id: String,
        timestamp: &str,
        caller: &Caller,
        failure: Option<(&UpdateError, Option<&HashMap<String, AttributeValue>>)>,
    ) -> HashMap<String, AttributeValue> {
        let updated: HashMap<String, AttributeValue> = plan
            .updated_values()
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect();
        let mut record = HashMap::from([
            ("log_id".to_owned(), s(&log_id)),
            ("timestamp".to_owned(), s(timestamp)),
            ("table_name".to_owned(), s(&self.config.table_name)),
            ("record_id".to_owned(), s(&plan.record_id)),
            ("updated_attributes".to_owned(), AttributeValue::M(updated)),
            (
                "user_agent".to_owned(),
                s(caller.user_agent.as_deref().unwrap_or("lambda-function")),
            ),
            (
                "request_fingerprint".to_owned(),
                s(&fingerprint(&self.config.table_name, plan)),
            ),
        ]);
        if let Some(key) = &plan.idempotency_key {
            record.insert("idempotency_key".into(), s(key));
        }
        match failure {
            None => {
                record.insert("status".into(), s("success"));
            }
            Some((error, current)) => {
                record.insert("status".into(), s("failed"));
                record.insert("error".into(), s(error.error_type()));
                if let Some(current) = current {
                    let previous: HashMap<String, AttributeValue> = plan
                        .attributes
                        .iter()
                        .filter_map(|name| Some((name.clone(), current.get(name)?.clone())))
                        .collect();
                    record.insert("previous_values".into(), AttributeValue::M(previous));
                }
            }
        }
        record
    }

    /// Applies `plan`; `timestamp` is the request's time (RFC 3339).
    pub async fn apply(
        &self,
        plan: &UpdatePlan,
        timestamp: &str,
        caller: &Caller,
    ) -> Result<Applied, UpdateError> {
        let record = if plan.audit {
            // The audit record carries every updated value plus its own fields: an update
            // that fits an item can still make a record that does not. Refused before
            // anything is written (no failed-attempt record either: nothing was attempted).
            let record = self.audit_record(
                plan,
                log_id(&self.config.table_name, plan),
                timestamp,
                caller,
                None,
            );
            let size = item_size(&record);
            if size > MAX_ITEM_BYTES {
                return Err(UpdateError::validation(
                    format!(
                        "the audit record of this update would be {size} bytes; DynamoDB items \
                         hold at most {MAX_ITEM_BYTES}: update fewer or smaller attributes"
                    ),
                    "attributes",
                ));
            }
            Some(record)
        } else {
            None
        };
        let outcome = if record.is_some() || plan.idempotency_key.is_some() {
            self.transact(plan, record).await
        } else {
            self.update(plan).await.map(|()| Applied::Updated)
        };
        if let Err((error, current)) = &outcome
            && plan.audit
        {
            self.record_failure(plan, timestamp, caller, error, current.as_ref())
                .await;
        }
        outcome.map_err(|(error, _)| error)
    }

    async fn update(
        &self,
        plan: &UpdatePlan,
    ) -> Result<(), (UpdateError, Option<HashMap<String, AttributeValue>>)> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.config.table_name)
            .set_key(Some(plan.key.clone()))
            .update_expression(&plan.update_expression)
            .condition_expression(&plan.condition_expression)
            .set_expression_attribute_names(Some(plan.names.clone()))
            .set_expression_attribute_values(Some(plan.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Err(condition_failed(failed.item().cloned()))
                }
                Some(service) if service.code() == Some(VALIDATION_EXCEPTION) => {
                    Err((refused_by_dynamodb(service.message()), None))
                }
                _ => {
                    tracing::error!(error = %describe(&error), "UpdateItem failed");
                    Err((UpdateError::Database, None))
                }
            },
        }
    }

    /// The update in a transaction, with `record` (the audit record) when auditing.
    async fn transact(
        &self,
        plan: &UpdatePlan,
        record: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Applied, (UpdateError, Option<HashMap<String, AttributeValue>>)> {
        let database = |what: &str| {
            tracing::error!(error = what, "TransactWriteItems failed");
            (UpdateError::Database, None)
        };
        let update = Update::builder()
            .table_name(&self.config.table_name)
            .set_key(Some(plan.key.clone()))
            .update_expression(&plan.update_expression)
            .condition_expression(&plan.condition_expression)
            .set_expression_attribute_names(Some(plan.names.clone()))
            .set_expression_attribute_values(Some(plan.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| database(&e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        let id = log_id(&self.config.table_name, plan);
        if let Some(record) = record {
            let put = Put::builder()
                .table_name(&self.config.audit_table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(log_id)")
                .build()
                .map_err(|e| database(&e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(plan.idempotency_key.clone())
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Applied::Updated),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let reasons = cancelled.cancellation_reasons();
                let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
                let failed = |i: usize| code(i) == "ConditionalCheckFailed";
                if plan.audit && plan.idempotency_key.is_some() && (failed(0) || failed(1)) {
                    // The stored audit record of this key decides first: a retry after
                    // DynamoDB's 10-minute token window of an update already applied finds
                    // the caller's condition false now (the update made it so), and must be
                    // a replay, not a 412 with a false failure record.
                    if let Some(outcome) = self.recorded(plan, &id).await? {
                        return outcome;
                    }
                }
                if failed(0) {
                    return Err(condition_failed(reasons[0].item().cloned()));
                }
                if code(0) == VALIDATION_ERROR || code(1) == VALIDATION_ERROR {
                    let message = reasons.iter().find_map(|r| r.message());
                    return Err((refused_by_dynamodb(message), None));
                }
                Err(database(&describe(&error)))
            }
            Some(service) if service.code() == Some(VALIDATION_EXCEPTION) => {
                Err((refused_by_dynamodb(service.message()), None))
            }
            Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) => {
                // Within DynamoDB's 10 minutes, a retry differs at least in the audit record's
                // timestamp: the stored record tells a retry from another request.
                if plan.audit {
                    self.replay(plan, &id).await
                } else {
                    Err((
                        UpdateError::validation(
                            "idempotency_key was used for a different request in the last 10 minutes",
                            "idempotency_key",
                        ),
                        None,
                    ))
                }
            }
            _ => Err(database(&describe(&error))),
        }
    }

    /// A retry: the same request (by fingerprint) is a replay; another request with the same
    /// key is refused.
    async fn replay(
        &self,
        plan: &UpdatePlan,
        log_id: &str,
    ) -> Result<Applied, (UpdateError, Option<HashMap<String, AttributeValue>>)> {
        match self.recorded(plan, log_id).await? {
            Some(outcome) => outcome,
            None => Err(different_request()),
        }
    }

    /// What the stored audit record of this idempotency key says: `None` when there is none,
    /// a replay when it records this same request, a refusal when it records another.
    async fn recorded(
        &self,
        plan: &UpdatePlan,
        log_id: &str,
    ) -> Result<Option<ReplayOutcome>, (UpdateError, Option<HashMap<String, AttributeValue>>)> {
        let stored = self
            .dynamodb
            .get_item()
            .table_name(&self.config.audit_table)
            .key("log_id", s(log_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                tracing::error!(error = %describe(&e), "reading the audit record of a retry failed");
                (UpdateError::Database, None)
            })?;
        let Some(item) = stored.item() else {
            return Ok(None);
        };
        let same = item
            .get("request_fingerprint")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|f| *f == fingerprint(&self.config.table_name, plan));
        if same {
            tracing::info!(log_id, "retry of an applied request; not applied again");
            Ok(Some(Ok(Applied::Replayed)))
        } else {
            Ok(Some(Err(different_request())))
        }
    }

    /// The `status: failed` audit record: best effort, outside the transaction (which did not
    /// happen). Its own failure is logged, never returned: the caller's error is the answer.
    async fn record_failure(
        &self,
        plan: &UpdatePlan,
        timestamp: &str,
        caller: &Caller,
        error: &UpdateError,
        current: Option<&HashMap<String, AttributeValue>>,
    ) {
        // A random id, never the key's: a failed attempt must not look like an applied retry.
        let id = record_id_for(&self.config.table_name, None);
        let record = self.audit_record(plan, id, timestamp, caller, Some((error, current)));
        if let Err(e) = self
            .dynamodb
            .put_item()
            .table_name(&self.config.audit_table)
            .set_item(Some(record))
            .send()
            .await
        {
            tracing::warn!(error = %describe(&e), "the failed attempt's audit record was not written");
        }
    }
}

type ReplayOutcome = Result<Applied, (UpdateError, Option<HashMap<String, AttributeValue>>)>;

fn different_request() -> (UpdateError, Option<HashMap<String, AttributeValue>>) {
    (
        UpdateError::validation(
            "idempotency_key was already used for a different request",
            "idempotency_key",
        ),
        None,
    )
}

/// DynamoDB's code for a request it will not run (an expression it cannot parse, an item
/// too large); in a cancelled transaction the reason's code is `ValidationError`.
const VALIDATION_EXCEPTION: &str = "ValidationException";
const VALIDATION_ERROR: &str = "ValidationError";

/// A request DynamoDB refused as invalid: the caller's to fix (400), with DynamoDB's words.
fn refused_by_dynamodb(message: Option<&str>) -> UpdateError {
    UpdateError::validation(
        format!(
            "DynamoDB refused the update: {}",
            message.unwrap_or("the request is not valid")
        ),
        "request",
    )
}

/// DynamoDB's size of an item: names plus values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// 404 when the item is missing (no old item came back), 412 when the caller's condition failed.
fn condition_failed(
    current: Option<HashMap<String, AttributeValue>>,
) -> (UpdateError, Option<HashMap<String, AttributeValue>>) {
    match current {
        Some(item) if !item.is_empty() => (UpdateError::ConditionalCheckFailed, Some(item)),
        _ => (UpdateError::RecordNotFound, None),
    }
}
