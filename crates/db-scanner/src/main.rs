use db_scanner::Config;
use db_scanner::handler::Scanner;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let scanner = Scanner::new(config, &sdk);
    let scanner = &scanner;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        scanner.handle(event)
    }))
    .await
}
