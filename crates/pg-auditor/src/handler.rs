//! The Lambda entry: [`Auditor`], built once per cold start, audits the database on each
//! event (a schedule, or a direct invocation with overrides) and writes the reports to S3.

use crate::{
    Clients, Config, InvocationError, RunError, audit, connect, csv_summary, output,
    resolve_target, settings, timestamps,
};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

/// The configuration and the AWS clients a cold start builds once.
#[derive(Debug)]
pub struct Auditor {
    pub config: Config,
    pub clients: Clients,
    pub metrics: audit_core::metrics::MetricsOut,
}

impl Auditor {
    pub fn new(config: Config, sdk: audit_core::aws::SdkConfig) -> Self {
        Auditor {
            config,
            clients: Clients::new(sdk),
            metrics: audit_core::metrics::MetricsOut::stdout(),
        }
    }

    /// The Lambda handler. Success: the original's `{statusCode: 200, body}`. A failed audit of
    /// a direct invoke answers the original's `statusCode: 500`; a scheduled one fails the
    /// invocation, so it counts in the Errors metric and EventBridge retries it.
    pub async fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> Result<Value, audit_core::FunctionError> {
        let (config, clients, event) = (&self.config, &self.clients, event.payload);
        let overrides = settings::Overrides::from_event(&event).map_err(InvocationError::from)?;
        let settings = config
            .settings
            .clone()
            .with_overrides(&overrides)
            .map_err(InvocationError::from)?;
        let bucket = overrides
            .bucket
            .clone()
            .or_else(|| config.bucket.clone())
            .ok_or(InvocationError::NoBucket)?;
        let started = std::time::Instant::now();
        let outcome = async {
            let target = resolve_target(config, Some(clients)).await?;
            let tls = connect::tls_config(&target)?;
            let (timestamp, stamp) = timestamps(chrono::Utc::now());
            let mut streamed = output::StreamedReport::new()?;
            let report =
                audit::run_into(&target, &tls, &settings, timestamp, &mut streamed).await?;
            let files = streamed.finish(&report, &stamp)?;
            let locations = output::write_s3(&clients.s3, &bucket, &config.prefix, &files).await?;
            Ok::<_, RunError>((report, locations))
        }
        .await;
        self.metrics.publish(&crate::run_metrics(
            outcome.as_ref().ok().map(|(report, _)| report),
            started.elapsed().as_secs_f64(),
        ));
        match outcome {
            Ok((report, locations)) => {
                if report.summary.tables_with_errors > 0 {
                    tracing::warn!(
                        tables_with_errors = report.summary.tables_with_errors,
                        "audit completed; some tables could not be read in full"
                    );
                }
                tracing::info!(report = %locations.detailed_json, tables = report.summary.total_tables, "audit written");
                Ok(
                    json!({ "statusCode": 200, "body": csv_summary::response_body(&report, &locations) }),
                )
            }
            Err(error) => {
                tracing::error!("audit failed: {error}");
                if audit_core::aws::is_eventbridge_event(&event) {
                    Err(InvocationError::Failed(error).into())
                } else {
                    Ok(json!({
                        "statusCode": 500,
                        "body": { "message": "Database audit failed", "error": error.to_string() },
                    }))
                }
            }
        }
    }
}
