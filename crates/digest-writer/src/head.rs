//! The chain head item (DynamoDB): the newest committed digest, and the claim of the run
//! writing the next one. Every write is conditional, so the sequence only ever rises by one,
//! and only the run holding the claim can commit it.

use crate::DigestError;
use audit_core::digest::{ChainHead, head_attr};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Deserialize;

const PENDING_SEQUENCE: &str = "pending_sequence";
const PENDING_KEY: &str = "pending_key";
const PENDING_SINCE: &str = "pending_since";

/// The item as stored: the committed head (absent before the first digest) and a claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HeadItem {
    pub sequence: Option<u64>,
    pub digest_bucket: Option<String>,
    pub digest_key: Option<String>,
    pub signature: Option<String>,
    pub covered_until: Option<i64>,
    pub pending_sequence: Option<u64>,
    pub pending_key: Option<String>,
    pub pending_since: Option<i64>,
}

impl HeadItem {
    pub fn committed(&self, chain: &str) -> Option<ChainHead> {
        Some(ChainHead {
            chain: chain.to_owned(),
            sequence: self.sequence?,
            digest_bucket: self.digest_bucket.clone()?,
            digest_key: self.digest_key.clone()?,
            signature: self.signature.clone()?,
            covered_until: self.covered_until?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct HeadTable {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
    pub chain: String,
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl HeadTable {
    pub async fn load(&self) -> Result<HeadItem, DigestError> {
        let got = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(head_attr::CHAIN, s(&self.chain))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DigestError::aws("GetItem", &e))?;
        match got.item {
            None => Ok(HeadItem::default()),
            Some(item) => serde_dynamo::from_item(item).map_err(|e| {
                DigestError::Chain(format!(
                    "the head item of {} is unreadable: {e}",
                    self.chain
                ))
            }),
        }
    }

    /// Claims `sequence` for the digest at `key`. False when the head moved since `expected`
    /// was read, or another run holds a claim made after `stale_before`.
    pub async fn claim(
        &self,
        expected: Option<u64>,
        sequence: u64,
        key: &str,
        now_ms: i64,
        stale_before: i64,
    ) -> Result<bool, DigestError> {
        let head_unchanged = match expected {
            None => "attribute_not_exists(#seq)",
            Some(_) => "#seq = :expected",
        };
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(head_attr::CHAIN, s(&self.chain))
            .update_expression("SET #psq = :sequence, #pk = :key, #ps = :now")
            .condition_expression(format!(
                "{head_unchanged} AND (attribute_not_exists(#pk) OR #ps < :stale)"
            ))
            .expression_attribute_names("#seq", head_attr::SEQUENCE)
            .expression_attribute_names("#psq", PENDING_SEQUENCE)
            .expression_attribute_names("#pk", PENDING_KEY)
            .expression_attribute_names("#ps", PENDING_SINCE)
            .expression_attribute_values(":sequence", n(sequence))
            .expression_attribute_values(":key", s(key))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":stale", n(stale_before));
        if let Some(expected) = expected {
            update = update.expression_attribute_values(":expected", n(expected));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(DigestError::aws("UpdateItem (claim)", &e)),
        }
    }

    /// Makes the claimed digest the head. Fails when this run no longer holds the claim.
    pub async fn commit(&self, head: &ChainHead) -> Result<(), DigestError> {
        let sent = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(head_attr::CHAIN, s(&self.chain))
            .update_expression(
                "SET #seq = :sequence, #db = :bucket, #dk = :key, #sig = :signature, #cu = :covered \
                 REMOVE #psq, #pk, #ps",
            )
            .condition_expression("#pk = :key AND #psq = :sequence")
            .expression_attribute_names("#seq", head_attr::SEQUENCE)
            .expression_attribute_names("#db", head_attr::DIGEST_BUCKET)
            .expression_attribute_names("#dk", head_attr::DIGEST_KEY)
            .expression_attribute_names("#sig", head_attr::SIGNATURE)
            .expression_attribute_names("#cu", head_attr::COVERED_UNTIL)
            .expression_attribute_names("#psq", PENDING_SEQUENCE)
            .expression_attribute_names("#pk", PENDING_KEY)
            .expression_attribute_names("#ps", PENDING_SINCE)
            .expression_attribute_values(":sequence", n(head.sequence))
            .expression_attribute_values(":bucket", s(&head.digest_bucket))
            .expression_attribute_values(":key", s(&head.digest_key))
            .expression_attribute_values(":signature", s(&head.signature))
            .expression_attribute_values(":covered", n(head.covered_until))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(DigestError::Chain(format!(
                    "lost the claim on sequence {} ({}) before committing it",
                    head.sequence, head.digest_key
                )))
            }
            Err(e) => Err(DigestError::aws("UpdateItem (commit)", &e)),
        }
    }

    /// Drops a claim whose digest was never written.
    pub async fn release(&self, key: &str) -> Result<(), DigestError> {
        let sent = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(head_attr::CHAIN, s(&self.chain))
            .update_expression("REMOVE #psq, #pk, #ps")
            .condition_expression("#pk = :key")
            .expression_attribute_names("#psq", PENDING_SEQUENCE)
            .expression_attribute_names("#pk", PENDING_KEY)
            .expression_attribute_names("#ps", PENDING_SINCE)
            .expression_attribute_values(":key", s(key))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(DigestError::aws("UpdateItem (release)", &e)),
        }
    }
}
