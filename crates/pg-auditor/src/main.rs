use lambda_runtime::{LambdaEvent, service_fn};
use pg_auditor::Config;
use pg_auditor::handler::Auditor;

// One thread: the client only waits on its connections and writes files, and one thread keeps
// every allocation in one malloc arena (at 100,000 tables the multi-threaded runtime's arenas
// held 10-20 MiB more at the peak).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The same binary is the CLI outside Lambda.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let code = pg_auditor::cli::main(std::env::args().skip(1).collect()).await;
        std::process::exit(code);
    }
    let config = audit_core::startup::init(Config::from_env).await;
    let auditor = Auditor::new(config, audit_core::aws::sdk_config().await);
    let auditor = &auditor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        auditor.handle(event)
    }))
    .await
}
