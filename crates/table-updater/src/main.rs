use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use table_updater::Config;
use table_updater::updater::{Updater, key_schema};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // The key schema decides how `id` (and `sort_key`) become the key: without it nothing can be
    // served, so a table that cannot be described stops the cold start.
    let schema =
        audit_core::startup::require(key_schema(&dynamodb, &config.table_name).await.map_err(
            |e| {
                audit_core::ConfigError::invalid(
                    "TABLE_NAME",
                    &config.table_name,
                    format!("a table this function can describe ({e})"),
                )
            },
        ))
        .await;
    let updater = Updater {
        config,
        schema,
        dynamodb,
    };
    let updater = &updater;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        table_updater::handle(updater, event)
    }))
    .await
}
