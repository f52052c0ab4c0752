//! The Aurora audit-log backup's AWS side on the local stack, for tests and the demo: a
//! tracking table with a NEW_AND_OLD_IMAGES stream, a backup bucket, a scan queue, and the RDS
//! log-file double in front of moto. Names are unique, so tests run in parallel.

use crate::moto::{AwsEnv, moto};
use crate::rds_logs::RdsLogDouble;
use crate::{scratch_dir, unique_name};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

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
}

impl BackupStack {
    pub async fn start() -> Result<Self, String> {
        let aws = moto().isolated();
        let logs_root: PathBuf = scratch_dir("rds-logs")?;
        let rds_logs = RdsLogDouble::start(logs_root, &aws.endpoint).await?;
        let sdk = aws.sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
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
        let mut create = s3.create_bucket().bucket(&bucket);
        if aws.region != "us-east-1" {
            // Outside us-east-1, S3 wants the region stated.
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        aws.region.as_str(),
                    ))
                    .build(),
            );
        }
        create.send().await.map_err(|x| e(&x))?;
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
