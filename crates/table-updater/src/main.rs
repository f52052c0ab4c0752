use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use table_updater::Config;
use table_updater::updater::Updater;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let updater = audit_core::startup::require(Updater::connect(config, &sdk).await).await;
    let updater = &updater;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        updater.handle(event)
    }))
    .await
}
