//! The Aurora audit-log backup's AWS side on the local stack, for tests and the demo: a
//! tracking table with a NEW_AND_OLD_IMAGES stream, a backup bucket, a scan queue, and the RDS
//! log-file double in front of moto. Names are unique, so tests run in parallel.

use crate::event_sources::{SqsSource, StreamSource};
use crate::function_binary;
use crate::moto::{AwsEnv, moto};
use crate::rds_logs::RdsLogDouble;
use crate::runtime_api::LocalLambda;
use crate::unique_name;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use serde_json::Value;
use std::io::Read;

/// One object in the backup bucket.
#[derive(Debug, Clone)]
pub struct BackupObject {
    pub key: String,
    pub metadata: std::collections::HashMap<String, String>,
    /// The object's bytes, gunzipped when the key ends in `.gz`.
    pub content: Vec<u8>,
}

/// The resources of one backup pipeline.
#[derive(Debug)]
pub struct BackupStack {
    pub aws: AwsEnv,
    pub rds_logs: RdsLogDouble,
    pub table: String,
    pub stream_arn: String,
    pub bucket: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The double's log files: removed when the stack is dropped.
    _logs_root: tempfile::TempDir,
}

impl BackupStack {
    pub async fn start() -> Result<Self, String> {
        let aws = moto().isolated();
        let logs_root = tempfile::Builder::new()
            .prefix("auditkit-rds-logs-")
            .tempdir()
            .map_err(|e| format!("a scratch directory for the RDS log files: {e}"))?;
        let rds_logs = RdsLogDouble::start(logs_root.path(), &aws.endpoint).await?;
        let sdk = aws.sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = aws.s3_client().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let e = |e: &dyn std::fmt::Debug| format!("{e:?}");

        let table = unique_name("tracking");
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let created = dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("instance_id", KeyType::Hash).map_err(|x| e(&x))?)
            .key_schema(key("log_file", KeyType::Range).map_err(|x| e(&x))?)
            .attribute_definitions(attr("instance_id").map_err(|x| e(&x))?)
            .attribute_definitions(attr("log_file").map_err(|x| e(&x))?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|x| e(&x))?,
            )
            .send()
            .await
            .map_err(|x| e(&x))?;
        let stream_arn = created
            .table_description()
            .and_then(|t| t.latest_stream_arn())
            .ok_or("no stream ARN")?
            .to_owned();
        let bucket = unique_name("backups");
        aws.create_bucket(&s3, &bucket).await?;
        // Versioned, as the stack's Object-Locked bucket is: a second write to a key shows as
        // a second version, which is how the tests see that every key is written once.
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|x| e(&x))?;
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("scan"))
            .send()
            .await
            .map_err(|x| e(&x))?
            .queue_url
            .unwrap_or_default();
        let queue_arn = format!(
            "arn:aws:sqs:{}:123456789012:{}",
            aws.region,
            queue_url.rsplit('/').next().unwrap_or_default()
        );
        Ok(BackupStack {
            aws,
            rds_logs,
            table,
            stream_arn,
            bucket,
            queue_url,
            queue_arn,
            dynamodb,
            s3,
            sqs,
            _logs_root: logs_root,
        })
    }

    /// SDK variables with RDS pointed at the log-file double.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut vars = self.aws.vars();
        vars.push((
            "AWS_ENDPOINT_URL_RDS".into(),
            self.rds_logs.endpoint().to_owned(),
        ));
        vars
    }

    /// The scan-queue message for `instance`, as db-scanner writes it.
    pub fn scan_message(instance: &str, cluster: Option<&str>, engine: &str) -> Value {
        serde_json::json!({"version": 1, "instance_id": instance, "cluster_id": cluster,
            "engine": engine, "scanned_at": "2026-11-22T10:00:00Z"})
    }

    /// Starts the log-detector binary against this stack (`extra` adds or overrides settings).
    pub async fn start_detector(&self, extra: &[(&str, &str)]) -> Result<LocalLambda, String> {
        LocalLambda::builder(function_binary("log-detector")?)
            .envs(self.function_env())
            .env("TRACKING_TABLE", &self.table)
            .envs(extra.iter().copied())
            .start()
            .await
    }

    /// Starts the log-downloader binary against this stack (`extra` adds or overrides settings).
    pub async fn start_downloader(&self, extra: &[(&str, &str)]) -> Result<LocalLambda, String> {
        LocalLambda::builder(function_binary("log-downloader")?)
            .envs(self.function_env())
            .env("TRACKING_TABLE", &self.table)
            .env("BACKUP_BUCKET", &self.bucket)
            .envs(extra.iter().copied())
            .start()
            .await
    }

    /// The scan queue as an event source (failed messages come back after one second).
    pub fn scan_queue_source(&self) -> SqsSource {
        SqsSource {
            sqs: self.sqs.clone(),
            queue_url: self.queue_url.clone(),
            queue_arn: self.queue_arn.clone(),
            region: self.aws.region.clone(),
            visibility_timeout: 1,
        }
    }

    /// The tracking table's stream as an event source, from its oldest record.
    pub async fn tracking_stream_source(&self) -> Result<StreamSource, String> {
        StreamSource::new(&self.aws, &self.stream_arn).await
    }

    /// Writes a tracking row given as a DynamoDB-JSON image (see [`due_image`]).
    pub async fn put_row(&self, image: &Value) -> Result<(), String> {
        let item: serde_dynamo::Item =
            serde_json::from_value(image.clone()).map_err(|e| e.to_string())?;
        let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            item.into();
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }

    /// Every row of the tracking table, as plain JSON.
    pub async fn rows(&self) -> Result<Vec<Value>, String> {
        let out = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        out.items()
            .iter()
            .map(|item| serde_dynamo::from_item(item.clone()).map_err(|e| e.to_string()))
            .collect()
    }

    /// Every object in the backup bucket with its metadata and (gunzipped) content.
    /// How many versions each key of the bucket has.
    pub async fn version_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, usize>, String> {
        let listed = self
            .s3
            .list_object_versions()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let mut counts = std::collections::BTreeMap::new();
        for v in listed.versions() {
            *counts
                .entry(v.key().unwrap_or_default().to_owned())
                .or_insert(0) += 1;
        }
        Ok(counts)
    }

    pub async fn objects(&self) -> Result<Vec<BackupObject>, String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let mut objects = Vec::new();
        for object in listed.contents() {
            let key = object.key().unwrap_or_default().to_owned();
            let got = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let metadata = got.metadata().cloned().unwrap_or_default();
            let raw = got
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes()
                .to_vec();
            let content = if key.ends_with(".gz") {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(raw.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| format!("{key}: not gzip: {e}"))?;
                out
            } else {
                raw
            };
            objects.push(BackupObject {
                key,
                metadata,
                content,
            });
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }
}

/// A tracking row, in DynamoDB JSON, that orders generation `generation` of a file version
/// (what log-detector writes when a copy is due).
pub fn due_image(
    instance: &str,
    file: &str,
    size: i64,
    last_written: i64,
    generation: i64,
) -> Value {
    let s = |v: &str| serde_json::json!({"S": v});
    let n = |v: i64| serde_json::json!({"N": v.to_string()});
    serde_json::json!({
        "instance_id": s(instance), "log_file": s(file), "engine": s("aurora-mysql"),
        "cluster_id": s("orders"), "size": n(size), "last_written": n(last_written), "first_seen": n(1),
        "state": s("due"), "due_generation": n(generation), "due_size": n(size),
        "due_last_written": n(last_written), "due_at": n(1), "expires_at": n(0)
    })
}

/// A DynamoDB stream record of the tracking table, as Lambda delivers it.
pub fn stream_record(sequence_number: &str, new_image: &Value, old_image: Option<&Value>) -> Value {
    let mut change = serde_json::json!({
        "ApproximateCreationDateTime": 1_795_000_000.0,
        "Keys": {"instance_id": new_image["instance_id"], "log_file": new_image["log_file"]},
        "NewImage": new_image,
        "SequenceNumber": sequence_number, "SizeBytes": 300, "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    if let Some(old) = old_image {
        change["OldImage"] = old.clone();
    }
    serde_json::json!({
        "eventID": sequence_number,
        "eventName": if old_image.is_some() { "MODIFY" } else { "INSERT" },
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tracking/stream/2026",
        "dynamodb": change
    })
}

/// A file's size and last-written time (epoch ms), as `DescribeDBLogFiles` would list it.
pub fn listed_version(path: &std::path::Path) -> Result<(i64, i64), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let written = meta
        .modified()
        .map_err(|e| e.to_string())?
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    Ok((
        i64::try_from(meta.len()).unwrap_or(i64::MAX),
        i64::try_from(written.as_millis()).unwrap_or(i64::MAX),
    ))
}
