use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use log_detector::Config;
use log_detector::detector::Detector;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let detector = Detector {
        config,
        rds: aws_sdk_rds::Client::new(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
    };
    let detector = &detector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        detector.handle(event)
    }))
    .await
}
