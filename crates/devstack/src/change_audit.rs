//! The DynamoDB change audit trail's AWS side on the local stack, for tests, the demo and the
//! benchmark: an audit bucket, a Firehose delivery stream into it (moto writes every
//! `PutRecordBatch` straight to S3 as one object under `dynamodb-changes/YYYY/MM/DD/HH/`,
//! uncompressed), audited tables with streams, and the stream-to-firehose binary.

use crate::event_sources::StreamSource;
use crate::function_binary;
use crate::moto::AwsEnv;
use crate::runtime_api::LocalLambda;
use crate::unique_name;
use aws_sdk_dynamodb::types::StreamViewType;
use aws_sdk_firehose::types::{
    CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use serde_json::Value;

/// Where Firehose writes (the stack's prefix without its `!{timestamp}` part, which moto
/// does not evaluate; moto adds `YYYY/MM/DD/HH/` itself).
pub const CHANGES_PREFIX: &str = "dynamodb-changes/";

/// One delivered object and its lines.
#[derive(Debug, Clone)]
pub struct DeliveredObject {
    pub key: String,
    pub lines: Vec<Value>,
    /// The object's bytes (serde_json's `Value` would round a 38-digit number).
    pub raw: Vec<u8>,
    /// Whether the object's bytes end with a newline (Firehose concatenates records as-is).
    pub ends_with_newline: bool,
}

/// An audit bucket with a delivery stream into it.
#[derive(Debug)]
pub struct ChangeAuditStack {
    pub aws: AwsEnv,
    pub bucket: String,
    pub delivery_stream: String,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl ChangeAuditStack {
    /// Creates the bucket and the delivery stream (names start with `name`).
    pub async fn create(aws: &AwsEnv, name: &str) -> Result<Self, String> {
        let sdk = aws.sdk_config().await;
        let s3 = aws.s3_client().await;
        let bucket = unique_name(&format!("{name}-audit"));
        aws.create_bucket(&s3, &bucket).await?;
        let delivery_stream = unique_name(&format!("{name}-changes"));
        let firehose = aws_sdk_firehose::Client::new(&sdk);
        let destination = ExtendedS3DestinationConfiguration::builder()
            .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
            .bucket_arn(format!("arn:aws:s3:::{bucket}"))
            .prefix(CHANGES_PREFIX)
            .error_output_prefix("dynamodb-changes-errors/")
            .compression_format(CompressionFormat::Uncompressed)
            .build()
            .map_err(|e| e.to_string())?;
        firehose
            .create_delivery_stream()
            .delivery_stream_name(&delivery_stream)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(destination)
            .send()
            .await
            .map_err(|e| format!("CreateDeliveryStream: {e:?}"))?;
        Ok(ChangeAuditStack {
            aws: aws.clone(),
            bucket,
            delivery_stream,
            s3,
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        })
    }

    /// Creates a table with a string partition key `key` and a stream of `view`; returns the
    /// stream ARN.
    pub async fn create_audited_table(
        &self,
        table: &str,
        key: &str,
        view: StreamViewType,
    ) -> Result<String, String> {
        AwsEnv::create_table(&self.dynamodb, table, key, Some(view))
            .await?
            .ok_or_else(|| format!("{table}: no stream ARN"))
    }

    /// The original change-audit lab's Orders example, written to `table` (key `orderId`):
    /// order 101 put OPEN, then moved to PICKEDUP, DELIVERED and RETURNED (each with its
    /// `lastUpdatedDate`); order 102 put and deleted. Returns what was done, a line each.
    pub async fn write_orders_example(&self, table: &str) -> Result<Vec<String>, String> {
        use aws_sdk_dynamodb::types::AttributeValue as Av;
        let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
        let s = |v: &str| Av::S(v.to_owned());
        let n = |v: i64| Av::N(v.to_string());
        let db = &self.dynamodb;
        let mut done = Vec::new();
        for (id, at) in [("101", 1705337067), ("102", 1705337100)] {
            db.put_item()
                .table_name(table)
                .item("orderId", s(id))
                .item("state", s("OPEN"))
                .item("lastUpdatedDate", n(at))
                .send()
                .await
                .map_err(|x| e(&x))?;
            done.push(format!("put order {id}: state OPEN"));
        }
        for (state, at) in [
            ("PICKEDUP", 1705340667),
            ("DELIVERED", 1705351467),
            ("RETURNED", 1705430667),
        ] {
            db.update_item()
                .table_name(table)
                .key("orderId", s("101"))
                .update_expression("SET #s = :s, lastUpdatedDate = :t")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":s", s(state))
                .expression_attribute_values(":t", n(at))
                .send()
                .await
                .map_err(|x| e(&x))?;
            done.push(format!("update order 101: state {state}"));
        }
        db.delete_item()
            .table_name(table)
            .key("orderId", s("102"))
            .send()
            .await
            .map_err(|x| e(&x))?;
        done.push("delete order 102".into());
        Ok(done)
    }

    /// Starts the stream-to-firehose binary against this stack.
    pub async fn start_forwarder(&self, extra: &[(&str, &str)]) -> Result<LocalLambda, String> {
        LocalLambda::builder(function_binary("stream-to-firehose")?)
            .envs(self.aws.vars())
            .env("DELIVERY_STREAM_NAME", &self.delivery_stream)
            .envs(extra.iter().copied())
            .start()
            .await
    }

    /// A table's stream as an event source, from its oldest record.
    pub async fn stream_source(&self, stream_arn: &str) -> Result<StreamSource, String> {
        StreamSource::new(&self.aws, stream_arn).await
    }

    /// Every object Firehose delivered, oldest key first, with its lines parsed.
    pub async fn delivered(&self) -> Result<Vec<DeliveredObject>, String> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let listed = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(CHANGES_PREFIX)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| format!("ListObjectsV2: {e:?}"))?;
            for object in listed.contents() {
                let key = object.key().unwrap_or_default().to_owned();
                let bytes = AwsEnv::object_bytes(&self.s3, &self.bucket, &key).await?;
                let lines = bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        serde_json::from_slice(l).map_err(|e| {
                            format!(
                                "{key}: a line is not JSON ({e}): {}",
                                String::from_utf8_lossy(l)
                            )
                        })
                    })
                    .collect::<Result<Vec<Value>, String>>()?;
                objects.push(DeliveredObject {
                    key,
                    lines,
                    ends_with_newline: bytes.last() == Some(&b'\n'),
                    raw: bytes,
                });
            }
            token = listed.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }
}
