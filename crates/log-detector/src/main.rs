use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use log_detector::Config;
use log_detector::handler::Detector;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let detector = Detector::new(config, &sdk);
    let detector = &detector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        detector.handle(event)
    }))
    .await
}
