use digest_writer::Config;
use digest_writer::handler::DigestWriter;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let writer = DigestWriter::new(config, &sdk);
    let writer = &writer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        writer.handle(event)
    }))
    .await
}
