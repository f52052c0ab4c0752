//! Partial batch responses, so no handler builds them by hand.
//!
//! With `ReportBatchItemFailures` on the event source mapping, a handler that returns success
//! with a list of failed items makes Lambda redeliver only those. Getting the identifiers wrong
//! is silent data loss (an SQS message id that does not match deletes the message; a stream
//! sequence number past the real failure checkpoints over it), so both shapes are built here.

use aws_lambda_events::sqs::SqsBatchResponse;

/// What a DynamoDB stream event source mapping needs on its function's role: reading the stream,
/// and sending the batches it gives up on to an SQS on-failure destination.
pub const DYNAMODB_STREAM_SOURCE_ACTIONS: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
];
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::cmp::Ordering;

/// The SQS response for the given failed message ids (empty: the whole batch succeeded).
pub fn sqs_response<I, S>(failed_message_ids: I) -> SqsBatchResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed_message_ids);
    response
}

/// The DynamoDB stream response for the given failed sequence numbers, lowest first.
///
/// Lambda checkpoints a stream shard at the lowest reported sequence number and retries
/// from there, so every record after the first failure is redelivered; the order here makes
/// the first entry that checkpoint. Sequence numbers are decimal strings of varying length,
/// compared numerically.
pub fn stream_response<I, S>(failed_sequence_numbers: I) -> DynamoDbEventResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut sequence_numbers: Vec<String> = failed_sequence_numbers
        .into_iter()
        .map(Into::into)
        .collect();
    sequence_numbers.sort_by(|a, b| compare_sequence_numbers(a, b));
    sequence_numbers.dedup();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = sequence_numbers
        .into_iter()
        .map(|sequence_number| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            failure
        })
        .collect();
    response
}

/// Numeric order of two stream sequence numbers (decimal strings without leading zeros).
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_response_lists_exactly_the_failed_ids() {
        let json = serde_json::to_value(sqs_response(["m-2", "m-5"])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "m-2"}, {"itemIdentifier": "m-5"}
            ]})
        );
        let empty = serde_json::to_value(sqs_response(Vec::<String>::new())).unwrap();
        assert_eq!(empty, serde_json::json!({"batchItemFailures": []}));
    }

    #[test]
    fn stream_response_puts_the_numerically_lowest_sequence_number_first() {
        // "900" < "1000" numerically although it sorts after it as text.
        let response = stream_response(["1000", "900", "25000000000000000000", "900"]);
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(ids, ["900", "1000", "25000000000000000000"]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "900");
    }
}
