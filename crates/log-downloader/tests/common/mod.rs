//! What the downloader's integration tests share: a `Copier` wired to a `BackupStack`, due
//! rows and source files.

#![allow(dead_code)] // each test binary uses part of it

use devstack::audit_logs::write_exact;
use devstack::backup::{BackupStack, due_image, listed_version};
use log_downloader::download::RestDownloader;
use log_downloader::handler::Copier;
use log_downloader::{Config, CopyOrder};

/// A copier for `stack`: RDS (SDK and REST) through the log-file double, S3 and DynamoDB on
/// moto, 5 MiB parts, gzip on.
pub async fn copier(stack: &BackupStack, prefix: &str, attempts: u32) -> Copier {
    let sdk = stack.aws.sdk_config().await;
    Copier {
        config: Config {
            bucket: stack.bucket.clone(),
            prefix: prefix.to_owned(),
            tracking_table: stack.table.clone(),
            compress: true,
            concurrency: 4,
            part_size: 5 << 20,
            attempts,
            rds_rest_endpoint: Some(stack.rds_logs.endpoint().to_owned()),
        },
        s3: stack.s3.clone(),
        dynamodb: stack.dynamodb.clone(),
        rds: aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&sdk)
                .endpoint_url(stack.rds_logs.endpoint())
                .build(),
        ),
        rest: RestDownloader {
            http: reqwest::Client::new(),
            credentials: sdk
                .credentials_provider()
                .expect("the default chain has a provider"),
            region: stack.aws.region.clone(),
            base_url: stack.rds_logs.endpoint().to_owned(),
        },
        rest_refused: Default::default(),
        metrics: audit_core::metrics::MetricsOut::capture(),
    }
}

/// Puts a `due` row for the file as the detector would, and returns its order.
pub async fn order(stack: &BackupStack, instance: &str, file: &str, generation: i64) -> CopyOrder {
    let (size, last_written) =
        listed_version(&stack.rds_logs.instance_dir(instance).join(file)).unwrap();
    stack
        .put_row(&due_image(instance, file, size, last_written, generation))
        .await
        .unwrap();
    CopyOrder {
        instance_id: instance.into(),
        log_file: file.into(),
        engine: "aurora-mysql".into(),
        cluster_id: Some("orders".into()),
        generation,
        size,
        last_written,
    }
}

/// Writes a source log file of exactly `size` bytes on the instance and returns its path.
pub fn write_source(
    stack: &BackupStack,
    instance: &str,
    file: &str,
    size: usize,
) -> std::path::PathBuf {
    let path = stack.rds_logs.instance_dir(instance).join(file);
    write_exact(&path, instance, size).unwrap();
    path
}
