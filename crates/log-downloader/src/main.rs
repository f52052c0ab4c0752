use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use log_downloader::Config;
use log_downloader::copier::Copier;
use log_downloader::download::RestDownloader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let region = audit_core::startup::require(audit_core::aws::region(&sdk)).await;
    let rest = RestDownloader {
        // No overall timeout (a large file takes as long as it takes), but a stalled connection
        // must fail the attempt rather than hang until the function times out.
        http: audit_core::startup::require(
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| {
                    audit_core::ConfigError::invalid(
                        "HTTPS client",
                        &e.to_string(),
                        "a usable TLS setup",
                    )
                }),
        )
        .await,
        credentials: sdk
            .credentials_provider()
            .expect("the default chain always has a provider"),
        base_url: config
            .rds_rest_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://rds.{region}.amazonaws.com")),
        region,
    };
    let copier = Copier {
        config,
        s3: audit_core::aws::s3_client(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        rds: aws_sdk_rds::Client::new(&sdk),
        rest,
        rest_refused: Default::default(),
        metrics: audit_core::metrics::MetricsOut::stdout(),
    };
    let copier = &copier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        copier.handle(event)
    }))
    .await
}
