//! Cold start: tracing first, then the function's configuration, or a clean stop.
//!
//! A configuration problem must stop the cold start rather than fail every invocation with a
//! confusing error. [`init`] logs one line naming the variable, reports it to the Lambda
//! Runtime API's `/runtime/init/error` (so `Invoke` answers `Runtime.InitError` with that
//! message instead of a bare exit status), and exits non-zero.

use crate::config::{ConfigError, Env};
use crate::telemetry;
use lambda_runtime::Diagnostic;

/// Installs tracing and loads the function's configuration from the process environment.
/// Never returns on a configuration error.
pub async fn init<T>(load: impl FnOnce(&Env) -> Result<T, ConfigError>) -> T {
    let env = Env::from_process();
    let outcome = match telemetry::log_filter(&env) {
        Ok(filter) => {
            telemetry::init(filter);
            load(&env)
        }
        Err(error) => {
            telemetry::init(tracing_subscriber::EnvFilter::new("info"));
            Err(error)
        }
    };
    require(outcome).await
}

/// The value, or the same clean stop as [`init`] for a configuration problem found later in
/// the cold start (e.g. no region once the SDK configuration is loaded).
pub async fn require<T>(outcome: Result<T, ConfigError>) -> T {
    match outcome {
        Ok(value) => value,
        Err(error) => {
            tracing::error!(variable = error.variable(), "{error}");
            report_init_error(&Env::from_process(), &error).await;
            std::process::exit(1);
        }
    }
}

async fn report_init_error(env: &Env, error: &ConfigError) {
    if env.get("AWS_LAMBDA_RUNTIME_API").is_none() {
        return; // not under Lambda (a CLI run): the log line is the report
    }
    let diagnostic = Diagnostic {
        error_type: "Runtime.ConfigurationError".to_owned(),
        error_message: error.to_string(),
    };
    let sent = async {
        let client = lambda_runtime_api_client::Client::builder().build()?;
        let request = lambda_runtime_api_client::build_request()
            .method("POST")
            .uri("/2018-06-01/runtime/init/error")
            .header(
                "lambda-runtime-function-error-type",
                "Runtime.ConfigurationError",
            )
            .body(lambda_runtime_api_client::body::Body::from(
                serde_json::to_vec(&diagnostic)?,
            ))?;
        client.call(request).await?;
        Ok::<_, lambda_runtime::Error>(())
    };
    if let Err(e) = sent.await {
        tracing::error!("could not report the init error to the Runtime API: {e}");
    }
}
