use audit_api::{Clients, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The same binary is the server and the CLI outside Lambda.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        std::process::exit(audit_api::cli::main(std::env::args().skip(1).collect()).await);
    }
    let config = audit_core::startup::init(Config::from_env).await;
    let clients = Clients::new(audit_core::aws::sdk_config().await);
    let app = audit_api::handler::LambdaApp::new(&config, &clients).await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| app.handle(event))).await
}
