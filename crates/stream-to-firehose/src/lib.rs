//! `stream-to-firehose`: the DynamoDB change audit trail (table stream → Firehose → S3 → Athena).
//!
//! An event source mapping delivers batches from the stream of any audited table, of any view
//! type (NEW_AND_OLD_IMAGES gives the most: both images and the diff). Each stream record
//! becomes one [`record::AuditLine`]: a newline-terminated JSON object with the keys, the
//! images as plain JSON (every digit of a number kept, binary as base64, sets as arrays), the
//! names of the attributes a MODIFY added, removed or changed, and whether a REMOVE was a TTL
//! expiry. A line over Firehose's 1,000 KiB record limit leaves out the old image, then the
//! new one, says so in `images_omitted`, and is still delivered.
//!
//! The event reaches the handler as the invocation's bytes ([`raw_payload`]) and is read once,
//! record by record, each image rewritten as it is reached ([`event::BatchReader`]); a
//! malformed event fails the invocation naming the field, and nothing of it is delivered.
//!
//! Lines go to `DELIVERY_STREAM_NAME` with `PutRecordBatch` in stream order, in [`chunks`] of
//! at most 500 records and 4 MiB. Entries Firehose rejects are resent alone, with jittered
//! exponential backoff, while the invocation has time left ([`delivery`]).
//!
//! Contract: a record counts as delivered only when Firehose accepted it. Everything else is
//! reported as a batch item failure, lowest sequence number first, so Lambda retries from the
//! first undelivered record; when no record of a batch was delivered the invocation fails, so
//! the error shows in the function's metrics. Firehose and retries can deliver a record more
//! than once: every line carries the stream's `event_id`, and the stack's Athena queries keep
//! one row per `event_id`.

pub mod delivery;
pub mod diff;
pub mod dynamo_json;
pub mod event;
pub mod handler;
pub mod raw_payload;
pub mod record;

use audit_core::backoff::Backoff;
use audit_core::{ConfigError, Env};
use std::ops::Range;
use std::time::Duration;

/// Every environment variable the function reads besides the `AWS_*` ones (the stack's
/// template must set these and no others; a test checks the loader against this list).
pub const ENVIRONMENT: &[&str] = &[
    "DELIVERY_STREAM_NAME",
    "PUT_MAX_ATTEMPTS",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// Every IAM action the code calls.
pub const IAM_ACTIONS: &[&str] = &["firehose:PutRecordBatch"];

/// The metrics each invocation writes (EMF, namespace `auditkit`, `function=stream-to-firehose`).
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::{Bytes, Count};
    &[
        ("RecordsDelivered", Count),
        ("RecordsFailed", Count),
        ("ImagesOmitted", Count),
        ("BytesDelivered", Bytes),
        ("RecordsResent", Count),
    ]
};

/// What the DynamoDB stream event source mappings need on the function's role: reading the
/// audited tables' streams, and sending what they give up on to the on-failure queue.
pub const EVENT_SOURCE_ACTIONS: &[&str] = audit_core::batch::DYNAMODB_STREAM_SOURCE_ACTIONS;

/// Firehose's `PutRecordBatch` limits: records per call and bytes per call.
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub delivery_stream: String,
    /// Retries of rejected entries: attempts per chunk and their delays.
    pub backoff: Backoff,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let delivery_stream = env.required(
            "DELIVERY_STREAM_NAME",
            "the name of the Firehose delivery stream",
        )?;
        let valid_name = (1..=64).contains(&delivery_stream.len())
            && delivery_stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name {
            return Err(ConfigError::invalid(
                "DELIVERY_STREAM_NAME",
                &delivery_stream,
                "a delivery stream name: 1 to 64 letters, digits, '_', '.' or '-'",
            ));
        }
        let attempts: u32 = env.int_in_range("PUT_MAX_ATTEMPTS", 8, 1..=20)?;
        Ok(Config {
            delivery_stream,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5), attempts),
        })
    }
}

/// Splits records of the given sizes, in order, into `PutRecordBatch` calls: at most
/// `max_records` records and `max_bytes` bytes each. A single record larger than `max_bytes`
/// gets a call of its own (Firehose then rejects it by itself; none is, as lines are capped
/// far below the call limit).
pub fn chunks(sizes: &[usize], max_records: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::with_capacity(sizes.len() / max_records.max(1) + 1);
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == max_records || (i > start && bytes + size > max_bytes);
        if full {
            ranges.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MAX_RECORD_BYTES;

    #[test]
    fn chunks_hold_at_most_500_records() {
        let sizes = vec![100; 1001];
        let ranges = chunks(&sizes, MAX_BATCH_RECORDS, MAX_BATCH_BYTES);
        assert_eq!(ranges, vec![0..500, 500..1000, 1000..1001]);
        assert_eq!(chunks(&[100; 500], 500, MAX_BATCH_BYTES), vec![0..500]);
        assert!(chunks(&[], 500, MAX_BATCH_BYTES).is_empty());
    }

    #[test]
    fn chunks_hold_at_most_4_mib() {
        // Five records of 1,000 KiB: four fit in 4 MiB (4,096,000 <= 4,194,304), the fifth does not.
        let sizes = vec![MAX_RECORD_BYTES; 5];
        assert_eq!(chunks(&sizes, 500, MAX_BATCH_BYTES), vec![0..4, 4..5]);
        // Exactly 4 MiB fits; one byte more starts a new call.
        let sizes = [MAX_BATCH_BYTES / 2, MAX_BATCH_BYTES / 2, 1];
        assert_eq!(chunks(&sizes, 500, MAX_BATCH_BYTES), vec![0..2, 2..3]);
        // Order is kept: every index appears once, ascending.
        let sizes: Vec<usize> = (0..3000).map(|i| 1 + (i * 7919) % 40_000).collect();
        let ranges = chunks(&sizes, 500, MAX_BATCH_BYTES);
        let flat: Vec<usize> = ranges.iter().flat_map(Clone::clone).collect();
        assert_eq!(flat, (0..3000).collect::<Vec<_>>());
        for r in ranges {
            assert!(r.len() <= 500 && sizes[r].iter().sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn the_declared_environment_is_exactly_what_the_loader_reads() {
        let env = audit_core::Env::from_pairs([("DELIVERY_STREAM_NAME", "audit")]);
        let read = audit_core::environment_read(&env, Config::from_env).unwrap();
        let declared: std::collections::BTreeSet<String> =
            ENVIRONMENT.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(read, declared);
    }

    #[test]
    fn configuration_names_each_bad_variable() {
        let ok = Config::from_env(&audit_core::Env::from_pairs([
            ("DELIVERY_STREAM_NAME", "auditkit-changes"),
            ("PUT_MAX_ATTEMPTS", "3"),
        ]))
        .unwrap();
        assert_eq!(ok.delivery_stream, "auditkit-changes");
        assert_eq!(ok.backoff.max_attempts, 3);
        assert_eq!(
            Config::from_env(&audit_core::Env::default())
                .unwrap_err()
                .variable(),
            "DELIVERY_STREAM_NAME"
        );
        for (var, value) in [
            ("DELIVERY_STREAM_NAME", "has space"),
            ("DELIVERY_STREAM_NAME", &"x".repeat(65)),
            ("PUT_MAX_ATTEMPTS", "0"),
            ("PUT_MAX_ATTEMPTS", "many"),
        ] {
            let pairs = if var == "DELIVERY_STREAM_NAME" {
                vec![(var, value)]
            } else {
                vec![("DELIVERY_STREAM_NAME", "s"), (var, value)]
            };
            let err = Config::from_env(&audit_core::Env::from_pairs(pairs)).unwrap_err();
            assert_eq!(err.variable(), var, "{value}");
        }
    }
}
