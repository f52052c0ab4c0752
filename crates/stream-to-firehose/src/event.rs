//! The DynamoDB stream event as Lambda delivers it, read only as far as the audit line needs:
//! the images stay raw JSON text until [`crate::record::audit_line`] rewrites them.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A DynamoDB stream batch as Lambda delivers it. Only what the audit line needs is read; the
/// images stay raw JSON text until [`audit_line`] rewrites them.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

/// One change (the `aws_lambda_events` field names and meanings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    #[serde(default)]
    pub user_identity: Option<UserIdentity>,
    #[serde(rename = "dynamodb")]
    pub change: Change,
}

/// Who made the change: DynamoDB itself for a TTL deletion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub principal_id: String,
}

/// The `dynamodb` part of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    /// Epoch seconds; may carry a fraction, may be missing.
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<f64>,
    #[serde(rename = "Keys", default)]
    pub keys: Option<Box<RawValue>>,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<Box<RawValue>>,
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<Box<RawValue>>,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
    #[serde(rename = "StreamViewType", default)]
    pub stream_view_type: Option<String>,
}

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Insert,
    Modify,
    Remove,
}

impl EventName {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "INSERT" => Some(EventName::Insert),
            "MODIFY" => Some(EventName::Modify),
            "REMOVE" => Some(EventName::Remove),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }
}

/// The table name inside a stream (or table) ARN: `arn:aws:dynamodb:r:a:table/<name>/stream/<ts>`.
pub fn table_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":table/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Whether a REMOVE was DynamoDB's TTL process rather than a caller.
pub fn is_ttl_deletion(record: &StreamRecord) -> bool {
    record.event_name == "REMOVE"
        && record.user_identity.as_ref().is_some_and(|identity| {
            identity.type_ == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
        })
}
