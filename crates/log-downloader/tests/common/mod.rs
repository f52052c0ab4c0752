//! What the downloader's integration tests share: a `Copier` wired to a `BackupStack`.

use devstack::backup::BackupStack;
use log_downloader::Config;
use log_downloader::download::RestDownloader;
use log_downloader::handler::Copier;

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
