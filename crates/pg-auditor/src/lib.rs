//! `pg-auditor`: a read-only audit of a PostgreSQL database, written as the seed's JSON report
//! and CSV summary (a contract its users' scripts rely on) plus a self-contained HTML page,
//! to S3 (`database_audits/audit_YYYYMMDD_HHMMSS.json`, `tables_summary_...csv`) or a folder.
//!
//! It stands apart from the other functions' data flow: an EventBridge schedule (or a manual
//! invoke, or the CLI) starts it; it reads the database and writes reports. Its contract:
//! it never writes to the database (one `REPEATABLE READ READ ONLY` snapshot, shared by a few
//! parallel connections, with statement and lock timeouts); one table that cannot be read is
//! recorded in that table's entry and the rest of the report is complete; every figure says
//! whether it is exact, an estimate, or unavailable; sensitive columns never reach a report.
//!
//! Layout: [`catalog`] (the one catalog statement), [`plan`] (pure: counting decisions and
//! statements), [`report`] and [`html`] (pure: assembly and rendering), [`audit`] (the run
//! against the database), [`connect`] (connection strings, secrets, IAM tokens, TLS),
//! [`output`] (folder and S3), [`settings`].

pub mod audit;
pub mod catalog;
pub mod cli;
pub mod connect;
pub mod html;
pub mod output;
pub mod plan;
pub mod report;
pub mod settings;

use audit_core::{ConfigError, Env};
use connect::{SslMode, Target, TargetError};
use serde_json::{Value, json};
pub use settings::{CountMode, Settings};

/// Where the database credentials come from.
#[derive(Debug, Clone)]
pub enum ConnectionSource {
    /// `DATABASE_URL`: a libpq URL or key/value string.
    Url(Box<Target>),
    /// `DB_SECRET_ARN`: a Secrets Manager secret in the RDS shape, read on every run (so a
    /// rotated password is picked up).
    Secret {
        arn: String,
        ssl_mode: Option<SslMode>,
    },
}

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: ConnectionSource,
    /// `DB_IAM_AUTH`: connect with a 15-minute IAM token instead of a password.
    pub iam_auth: bool,
    pub settings: Settings,
    /// `S3_BUCKET`; an event's `bucket` overrides it.
    pub bucket: Option<String>,
    /// `REPORT_PREFIX`, `database_audits/` as in the original.
    pub prefix: String,
    /// `OUTPUT_DIR` (the CLI's `--out`).
    pub output_dir: Option<std::path::PathBuf>,
}

/// What the function's role must allow: the reports, the secret (when `DB_SECRET_ARN` is
/// used) and IAM database authentication (when `DB_IAM_AUTH` is on).
pub const IAM_ACTIONS: &[&str] = &[
    "s3:PutObject",
    "secretsmanager:GetSecretValue",
    "rds-db:connect",
];

/// The variables the function reads besides [`settings::SETTINGS_VARIABLES`].
pub const CONNECTION_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DB_SECRET_ARN",
    "DB_SSLMODE",
    "DB_IAM_AUTH",
    "S3_BUCKET",
    "REPORT_PREFIX",
    "OUTPUT_DIR",
];

/// Every variable the function may be given: what [`Config::from_env`] reads, and logging.
pub static ENVIRONMENT: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut names = config_variables();
    names.extend_from_slice(&["LOG_LEVEL", "RUST_LOG"]);
    names
});

/// Every variable [`Config::from_env`] reads.
pub fn config_variables() -> Vec<&'static str> {
    let mut names = CONNECTION_VARIABLES.to_vec();
    names.extend_from_slice(settings::SETTINGS_VARIABLES);
    names
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ssl_mode = match env.get("DB_SSLMODE") {
            None => None,
            Some(value) => Some(SslMode::parse(value).ok_or_else(|| {
                ConfigError::invalid(
                    "DB_SSLMODE",
                    value,
                    "disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?),
        };
        let source = match (env.get("DATABASE_URL"), env.get("DB_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "DB_SECRET_ARN",
                    "(set)",
                    "only one of DATABASE_URL and DB_SECRET_ARN",
                ));
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    variable: "DATABASE_URL".to_owned(),
                    expected: "a PostgreSQL connection URL, or DB_SECRET_ARN naming an RDS secret"
                        .to_owned(),
                });
            }
            (Some(url), None) => {
                let mut target = connect::parse_target(url).map_err(|TargetError(why)| {
                    // The value may hold a password: never echo it.
                    ConfigError::invalid("DATABASE_URL", "(hidden)", why)
                })?;
                if let Some(mode) = ssl_mode {
                    target.ssl_mode = mode;
                    target.config.ssl_mode(connect::wire_mode(mode));
                }
                ConnectionSource::Url(Box::new(target))
            }
            (None, Some(arn)) => ConnectionSource::Secret {
                arn: arn.to_owned(),
                ssl_mode,
            },
        };
        let iam_auth = env.bool_or("DB_IAM_AUTH", false)?;
        if iam_auth {
            let mode = match &source {
                ConnectionSource::Url(target) => Some(target.ssl_mode),
                ConnectionSource::Secret { ssl_mode, .. } => *ssl_mode,
            };
            if mode.is_some_and(|m| m < SslMode::Require) && env.get("DB_SSLMODE").is_some() {
                return Err(ConfigError::invalid(
                    "DB_SSLMODE",
                    env.get("DB_SSLMODE").unwrap_or_default(),
                    "require, verify-ca or verify-full: IAM authentication needs TLS",
                ));
            }
        }
        Ok(Config {
            source,
            iam_auth,
            settings: Settings::from_env(env)?,
            bucket: env.get("S3_BUCKET").map(str::to_owned),
            prefix: output::normalise_prefix(
                env.get("REPORT_PREFIX").unwrap_or("database_audits/"),
            ),
            output_dir: env.get("OUTPUT_DIR").map(std::path::PathBuf::from),
        })
    }

    /// Whether this configuration needs the AWS SDK (secret, IAM token or S3).
    pub fn needs_aws(&self, bucket: Option<&str>) -> bool {
        matches!(self.source, ConnectionSource::Secret { .. })
            || self.iam_auth
            || bucket.is_some()
            || self.bucket.is_some()
    }
}

/// Clients built once per process.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        Clients {
            s3: audit_core::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
        }
    }
}

/// The connection target for this run: the secret read now, an IAM token made now.
pub async fn resolve_target(config: &Config, clients: Option<&Clients>) -> Result<Target, String> {
    let mut target = match &config.source {
        ConnectionSource::Url(target) => (**target).clone(),
        ConnectionSource::Secret { arn, ssl_mode } => {
            let clients = clients.ok_or("DB_SECRET_ARN needs AWS clients")?;
            let secret = clients
                .secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read DB_SECRET_ARN: {}",
                        audit_core::aws::describe(&e)
                    )
                })?;
            let json = secret
                .secret_string()
                .ok_or("DB_SECRET_ARN: the secret has no SecretString")?;
            connect::target_from_secret(json, *ssl_mode)
                .map_err(|e| format!("DB_SECRET_ARN: {e}"))?
        }
    };
    if config.iam_auth {
        let clients = clients.ok_or("DB_IAM_AUTH needs AWS clients")?;
        connect::use_iam_token(&mut target, &clients.sdk)
            .await
            .map_err(|e| format!("DB_IAM_AUTH: {e}"))?;
    }
    Ok(target)
}

/// The audit's timestamps: the report's `audit_timestamp` and the file-name stamp.
pub fn timestamps(now: chrono::DateTime<chrono::Utc>) -> (String, String) {
    (
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        now.format("%Y%m%d_%H%M%S").to_string(),
    )
}

/// Whether an event is an EventBridge schedule (or any EventBridge event).
pub fn is_scheduled(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.events")
        || event.get("detail-type").is_some()
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("no report destination: set S3_BUCKET or pass `bucket` in the event")]
    NoBucket,
    #[error("{0}")]
    Failed(String),
}

impl audit_core::Classify for InvocationError {
    fn code(&self) -> &'static str {
        match self {
            InvocationError::InvalidEvent(_) => "InvalidEvent",
            InvocationError::NoBucket => "NoBucket",
            InvocationError::Failed(_) => "AuditFailed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, InvocationError::Failed(_))
    }
}

/// The Lambda handler. Success: the original's `{statusCode: 200, body}`. A failed audit of
/// a direct invoke answers the original's `statusCode: 500`; a scheduled one fails the
/// invocation, so it counts in the Errors metric and EventBridge retries it.
pub async fn handle(
    config: &Config,
    clients: &Clients,
    event: Value,
) -> Result<Value, audit_core::FunctionError> {
    let overrides =
        settings::Overrides::from_event(&event).map_err(InvocationError::InvalidEvent)?;
    let settings = config
        .settings
        .clone()
        .with_overrides(&overrides)
        .map_err(InvocationError::InvalidEvent)?;
    let bucket = overrides
        .bucket
        .clone()
        .or_else(|| config.bucket.clone())
        .ok_or(InvocationError::NoBucket)?;
    let outcome = async {
        let target = resolve_target(config, Some(clients)).await?;
        let tls = connect::tls_config(&target).map_err(|e| e.to_string())?;
        let (timestamp, stamp) = timestamps(chrono::Utc::now());
        let report = audit::run(&target, &tls, &settings, timestamp)
            .await
            .map_err(|e| e.to_string())?;
        let files = output::render(&report, &stamp).map_err(|e| e.to_string())?;
        let locations = output::write_s3(&clients.s3, &bucket, &config.prefix, &files).await?;
        Ok::<_, String>((report, locations))
    }
    .await;
    match outcome {
        Ok((report, locations)) => {
            if report.summary.tables_with_errors > 0 {
                tracing::warn!(
                    tables_with_errors = report.summary.tables_with_errors,
                    "audit completed; some tables could not be read in full"
                );
            }
            tracing::info!(report = %locations.detailed_json, tables = report.summary.total_tables, "audit written");
            Ok(json!({ "statusCode": 200, "body": report::response_body(&report, &locations) }))
        }
        Err(error) => {
            tracing::error!("audit failed: {error}");
            if is_scheduled(&event) {
                Err(InvocationError::Failed(error).into())
            } else {
                Ok(json!({
                    "statusCode": 500,
                    "body": { "message": "Database audit failed", "error": error },
                }))
            }
        }
    }
}
