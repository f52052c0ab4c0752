//! The evidence-integrity stack for tests and the demo: an asymmetric KMS signing key, the
//! chain-head table, Object-Locked and versioned buckets in the emulator, and `export`, which
//! copies buckets to a folder the way `aws s3 sync` does (one folder per bucket, each file's
//! modification time set to the object's `LastModified`).

use crate::AwsEnv;
use crate::unique_name;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use std::path::Path;

#[derive(Debug)]
pub struct EvidenceStack {
    pub aws: AwsEnv,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    /// The ECC_NIST_P256 SIGN_VERIFY key digests are signed with.
    pub key_arn: String,
    pub head_table: String,
}

fn e(context: &str) -> impl Fn(&dyn std::fmt::Debug) -> String + '_ {
    move |error| format!("{context}: {error:?}")
}

impl EvidenceStack {
    pub async fn start(aws: &AwsEnv) -> Result<Self, String> {
        let sdk = aws.sdk_config().await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = kms
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
            .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
            .description("auditkit digest signing key")
            .send()
            .await
            .map_err(|x| e("CreateKey")(&x))?;
        let key_arn = key
            .key_metadata()
            .and_then(|m| m.arn())
            .ok_or("CreateKey returned no ARN")?
            .to_owned();
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let head_table = unique_name("digest-head");
        AwsEnv::create_table(&dynamodb, &head_table, "chain", None).await?;
        Ok(EvidenceStack {
            aws: aws.clone(),
            s3: aws.s3_client().await,
            dynamodb,
            kms,
            key_arn,
            head_table,
        })
    }

    /// The chain head item of digests written to `digest_bucket` under `auditkit-digests/`, as
    /// JSON (`None` before the first claim).
    pub async fn head_item(
        &self,
        digest_bucket: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        let got = self
            .dynamodb
            .get_item()
            .table_name(&self.head_table)
            .key(
                "chain",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "{digest_bucket}/auditkit-digests/"
                )),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|x| e("GetItem")(&x))?;
        got.item
            .map(|item| serde_dynamo::from_item(item).map_err(|x| e("head item")(&x)))
            .transpose()
    }

    /// The keys of the current objects under `prefix` (one page: test-sized buckets).
    pub async fn keys_under(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(|x| e("ListObjectsV2")(&x))?;
        Ok(listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(str::to_owned)
            .collect())
    }

    /// A bucket with Object Lock on and a default GOVERNANCE retention of `days`.
    pub async fn locked_bucket(&self, prefix: &str, days: i32) -> Result<String, String> {
        let name = unique_name(prefix);
        let mut create = self
            .s3
            .create_bucket()
            .bucket(&name)
            .object_lock_enabled_for_bucket(true);
        if self.aws.region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.aws.region.as_str(),
                    ))
                    .build(),
            );
        }
        create.send().await.map_err(|x| e("CreateBucket")(&x))?;
        self.s3
            .put_object_lock_configuration()
            .bucket(&name)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(ObjectLockRetentionMode::Governance)
                                    .days(days)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|x| e("PutObjectLockConfiguration")(&x))?;
        Ok(name)
    }

    /// A bucket with versioning on (no lock).
    pub async fn versioned_bucket(&self, prefix: &str) -> Result<String, String> {
        let name = unique_name(prefix);
        self.aws.create_bucket(&self.s3, &name).await?;
        self.enable_versioning(&name).await?;
        Ok(name)
    }

    pub async fn enable_versioning(&self, bucket: &str) -> Result<(), String> {
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|x| e("PutBucketVersioning")(&x))?;
        Ok(())
    }

    /// digest-writer's environment: digests in `digest_bucket`, `evidence` as
    /// `bucket/prefix` entries, windows of `window_seconds`, completeness from `tracking`
    /// (table, backup bucket) when given.
    pub fn writer_env(
        &self,
        digest_bucket: &str,
        evidence: &[String],
        window_seconds: u32,
        tracking: Option<(&str, &str)>,
    ) -> Vec<(String, String)> {
        let mut env = self.aws.vars();
        let mut set = |k: &str, v: &str| env.push((k.to_owned(), v.to_owned()));
        set("DIGEST_BUCKET", digest_bucket);
        set("EVIDENCE", &evidence.join(","));
        set("SIGNING_KEY_ID", &self.key_arn);
        set("HEAD_TABLE", &self.head_table);
        set("WINDOW_SECONDS", &window_seconds.to_string());
        set("LOG_LEVEL", "warn");
        if let Some((table, bucket)) = tracking {
            set("TRACKING_TABLE", table);
            set("BACKUP_BUCKET", bucket);
        }
        env
    }

    /// Copies the current version of every object in `buckets` to `dir/<bucket>/<key>` with
    /// the object's `LastModified` as the file's modification time; the number of files.
    pub async fn export(&self, buckets: &[&str], dir: &Path) -> Result<usize, String> {
        let mut files = 0;
        for bucket in buckets {
            let mut token = None;
            loop {
                let page = self
                    .s3
                    .list_objects_v2()
                    .bucket(*bucket)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|x| e("ListObjectsV2")(&x))?;
                for object in page.contents() {
                    let key = object.key().unwrap_or_default();
                    let bytes = AwsEnv::object_bytes(&self.s3, bucket, key).await?;
                    let path = dir.join(bucket).join(key);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|x| e("mkdir")(&x))?;
                    }
                    std::fs::write(&path, bytes).map_err(|x| e("write")(&x))?;
                    let modified = object
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0);
                    let time = std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(modified.max(0) as u64);
                    std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(time))
                        .map_err(|x| e("set mtime")(&x))?;
                    files += 1;
                }
                match page.next_continuation_token() {
                    Some(t) => token = Some(t.to_owned()),
                    None => break,
                }
            }
        }
        Ok(files)
    }
}
