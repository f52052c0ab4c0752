//! Event source mappings, as Lambda runs them, for the demo and end-to-end tests.
//!
//! [`SqsSource`] receives from a queue, invokes the function with an SQS event, and deletes
//! the messages the function did not report in `batchItemFailures` (nothing when the
//! invocation failed), so failed messages come back after their visibility timeout.
//! [`StreamSource`] reads a DynamoDB stream from moto and invokes the function with the
//! records; on a partial failure it checkpoints at the lowest reported sequence number and
//! redelivers from there, on an invocation error it redelivers the whole batch, up to
//! `max_retries` times, after which the batch goes to `dropped` (Lambda's on-failure
//! destination).

use crate::moto::AwsEnv;
use crate::runtime_api::LocalLambda;
use serde_json::{Value, json};
use std::collections::VecDeque;

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub records: usize,
    pub failed: usize,
    pub invocation_error: Option<String>,
}

/// The item identifiers of a partial batch response, in the order reported.
fn reported_failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The sequence numbers a stream handler reported as failed, in the order reported (an empty
/// identifier, which fails the whole batch, stays visible as "").
pub fn stream_failures(
    response: &aws_lambda_events::streams::DynamoDbEventResponse,
) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

/// An SQS queue feeding a function.
#[derive(Debug, Clone)]
pub struct SqsSource {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// How long a failed message stays invisible before redelivery.
    pub visibility_timeout: i32,
}

impl SqsSource {
    /// Receives up to 10 messages and delivers them once; `None` when the queue was empty.
    pub async fn poll_once(&self, function: &LocalLambda) -> Result<Option<Delivery>, String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(self.visibility_timeout)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {e:?}"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(None);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                    "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": self.region,
                })
            })
            .collect();
        let mut delivery = Delivery {
            records: messages.len(),
            ..Delivery::default()
        };
        let failed: Vec<String> = match function.invoke(&json!({"Records": records})).await {
            Ok(response) => reported_failures(&response),
            Err(e) => {
                delivery.invocation_error = Some(e.to_string());
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        delivery.failed = failed.len();
        for m in &messages {
            if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| format!("DeleteMessage: {e:?}"))?;
            }
        }
        Ok(Some(delivery))
    }
}

/// A DynamoDB stream (one shard, as moto serves it) feeding a function.
#[derive(Debug)]
pub struct StreamSource {
    aws: AwsEnv,
    http: reqwest::Client,
    stream_arn: String,
    iterator: Option<String>,
    /// Records read from the stream and not yet checkpointed.
    pending: VecDeque<Value>,
    retries: u32,
    pub batch_size: usize,
    pub max_retries: u32,
    /// Batches given up on (Lambda's on-failure destination).
    pub dropped: Vec<Vec<Value>>,
}

impl StreamSource {
    /// Starts at the oldest record of the stream's first shard.
    pub async fn new(aws: &AwsEnv, stream_arn: &str) -> Result<Self, String> {
        let mut source = StreamSource {
            aws: aws.clone(),
            http: reqwest::Client::new(),
            stream_arn: stream_arn.to_owned(),
            iterator: None,
            pending: VecDeque::new(),
            retries: 0,
            batch_size: 100,
            max_retries: 3,
            dropped: Vec::new(),
        };
        let described = source
            .call("DescribeStream", json!({"StreamArn": stream_arn}))
            .await?;
        let shard = described["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .ok_or("stream has no shard")?
            .to_owned();
        let iterator = source
            .call(
                "GetShardIterator",
                json!({"StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await?;
        source.iterator = iterator["ShardIterator"].as_str().map(str::to_owned);
        Ok(source)
    }

    async fn call(&self, action: &str, body: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.aws.endpoint)
            .header("x-amz-target", format!("DynamoDBStreams_20120810.{action}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20261122/{}/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                    self.aws.region
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{action}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{action}: {e}: {text}"))
    }

    async fn fetch(&mut self) -> Result<(), String> {
        let Some(iterator) = self.iterator.clone() else {
            return Ok(());
        };
        let out = self
            .call(
                "GetRecords",
                json!({"ShardIterator": iterator, "Limit": 1000}),
            )
            .await?;
        self.iterator = out["NextShardIterator"].as_str().map(str::to_owned);
        for mut record in out["Records"].as_array().cloned().unwrap_or_default() {
            record["eventSourceARN"] = json!(self.stream_arn);
            self.pending.push_back(record);
        }
        Ok(())
    }

    /// Delivers the next batch once; `None` when there was nothing new.
    pub async fn poll_once(&mut self, function: &LocalLambda) -> Result<Option<Delivery>, String> {
        if self.pending.is_empty() {
            self.fetch().await?;
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let batch: Vec<Value> = self.pending.iter().take(self.batch_size).cloned().collect();
        let mut delivery = Delivery {
            records: batch.len(),
            ..Delivery::default()
        };
        // The index of the first record to redeliver, or None to checkpoint the whole batch.
        let retry_from = match function.invoke(&json!({"Records": batch})).await {
            Ok(response) => {
                let failed = reported_failures(&response);
                delivery.failed = failed.len();
                failed.first().and_then(|seq| {
                    batch
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"] == json!(seq))
                })
            }
            Err(e) => {
                delivery.invocation_error = Some(e.to_string());
                delivery.failed = batch.len();
                Some(0)
            }
        };
        match retry_from {
            None => {
                self.pending.drain(..batch.len());
                self.retries = 0;
            }
            Some(index) => {
                self.pending.drain(..index);
                self.retries += 1;
                if self.retries > self.max_retries {
                    let rest = batch.len() - index;
                    self.dropped.push(self.pending.drain(..rest).collect());
                    self.retries = 0;
                }
            }
        }
        Ok(Some(delivery))
    }
}
