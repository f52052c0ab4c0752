use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use log_downloader::Config;
use log_downloader::handler::Copier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let copier = audit_core::startup::require(Copier::new(config, &sdk)).await;
    let copier = &copier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        copier.handle(event)
    }))
    .await
}
