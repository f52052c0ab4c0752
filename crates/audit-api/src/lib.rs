//! `audit-api`: the original FastAPI audit-event service rebuilt on axum and PostgreSQL.
//!
//! It stands beside the pipelines rather than in them: applications post audit events to it
//! and people search and export them. Its contract is the original service's HTTP interface, which
//! existing clients depend on: the paths under `BASE_PATH` (`/pyaudit`), the `CSIQ-APIKEY`
//! header, the create payload, the search parameters and FastAPI's error bodies (`{"detail":
//! "..."}`, 422 with `{loc, msg, type}` lists). What it adds keeps that contract: batch
//! create (all or nothing), keyset paging (`cursor`, `X-Next-Cursor`), CSV export, company-
//! scoped keys, an OpenAPI document and an offline docs page. Nothing a client sends can
//! produce a 500: every input problem is a 4xx naming its field, and nothing is stored unless
//! the whole request is valid.
//!
//! Layout: the pure core is [`event`] (validation against the catalog), [`json_text`] (exact
//! `additional_data`), [`search`] (filters, cursors, pages, export requests), [`trigram`]
//! (how a message pattern's rows are found: by its rare word, or hour by hour) and [`sql`]
//! (the statements they become); then [`keys`] (API keys), [`db`] (pool, migrations, queries), [`http`] (the router, shared by
//! the server and the Lambda), [`export`] (xlsx/CSV files), [`chain`] (verification), [`anchor`]
//! (published chain heads), [`maintain`] (partitions and
//! archival), [`openapi`], [`server`] (`serve`'s socket loop: timeouts, a connection cap).

pub mod anchor;
pub mod append;
pub mod chain;
pub mod cli;
pub mod db;
pub mod error;
pub mod event;
pub mod export;
pub mod handler;
pub mod health;
pub mod http;
pub mod json_text;
pub mod keys;
pub mod maintain;
pub mod metrics;
pub mod openapi;
pub mod schema;
pub mod search;
pub mod server;
pub mod sql;
pub mod state;
pub mod trigram;

use audit_core::postgres::DatabaseConfig;
use audit_core::{ConfigError, Env};
use keys::ApiKeys;
use std::time::Duration;

/// Where the API keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `API_KEYS`.
    Inline(ApiKeys),
    /// `API_KEYS_SECRET_ARN`: read once at cold start.
    Secret(String),
}

/// The service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub keys: KeySource,
    /// `BASE_PATH`: `/pyaudit` as the original service.
    pub base_path: String,
    /// `CORS_ALLOWED_ORIGINS`: exact origins; none (no CORS headers) by default.
    pub cors_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `RETENTION_MONTHS` (12): months kept in `auditevents`.
    pub retention_months: i32,
    /// `PREMAKE_MONTHS` (5): months created ahead of the current one.
    pub premake_months: i32,
    /// `ARCHIVE_BUCKET`, `ARCHIVE_PREFIX`: retired events as gzip JSON lines in S3 instead
    /// of the archive table.
    pub archive_bucket: Option<String>,
    pub archive_prefix: String,
    /// `MAINTENANCE_DATABASE_URL` or `MAINTENANCE_DB_SECRET_ARN`: the schema owner, for
    /// migrations and maintenance, so that `DATABASE_URL` can be a role that may append
    /// events and not change them (`audit_api_writer`). Unset: the one role does both.
    pub owner_database: Option<DatabaseConfig>,
    /// `CHAIN_ANCHOR_BUCKET`, `CHAIN_ANCHOR_PREFIX`: where every maintenance run publishes
    /// the chains' heads (the evidence bucket the signed digests cover), and where
    /// verification reads the newest.
    pub anchor_bucket: Option<String>,
    pub anchor_prefix: String,
    /// `LOCAL_TIMEZONE`: how timestamps without an offset are read (the original service stored Central
    /// Time).
    pub local_timezone: String,
    /// `POOL_SIZE`: connections per process.
    pub pool_size: usize,
    /// `APPEND_WORKERS` (4): appends of one process at a time, each worker serving the
    /// companies that hash to it (see [`append`]).
    pub append_workers: usize,
    /// `STATEMENT_TIMEOUT_MS`.
    pub statement_timeout: Duration,
    /// `EXPORT_MAX_ROWS`: a larger export is refused (narrow the filters) rather than cut.
    pub export_max_rows: u64,
    /// `EXPORT_TMPDIR`: where exports are built before they are sent (unnamed files; the
    /// system's temporary directory by default, `/tmp` on Lambda).
    pub export_dir: std::path::PathBuf,
    /// `BODY_TIMEOUT_MS` (30 s): a request body must arrive whole within this (else 408).
    pub body_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_MS` (10 s) and `MAX_CONNECTIONS` (256): `serve`'s bounds.
    pub server: server::ServerLimits,
    /// `RESPONSE_STREAMING` (false): on Lambda, stream HTTP responses (a function URL or API
    /// Gateway integration in `RESPONSE_STREAM` mode must front it), so exports are not
    /// capped by the 6 MB of a buffered response. Unset, responses are buffered, which every
    /// front door accepts.
    pub response_streaming: bool,
}

/// Every variable [`Config::from_env`] reads, plus logging.
pub const ENVIRONMENT: &[&str] = &[
    "DATABASE_URL",
    "DB_SECRET_ARN",
    "DB_SSLMODE",
    "DB_IAM_AUTH",
    "DB_ALLOW_UNVERIFIED_TLS",
    "MAINTENANCE_DATABASE_URL",
    "MAINTENANCE_DB_SECRET_ARN",
    "API_KEYS",
    "API_KEYS_SECRET_ARN",
    "BASE_PATH",
    "CORS_ALLOWED_ORIGINS",
    "MAX_BODY_BYTES",
    "RETENTION_MONTHS",
    "PREMAKE_MONTHS",
    "ARCHIVE_BUCKET",
    "ARCHIVE_PREFIX",
    "CHAIN_ANCHOR_BUCKET",
    "CHAIN_ANCHOR_PREFIX",
    "LOCAL_TIMEZONE",
    "POOL_SIZE",
    "APPEND_WORKERS",
    "STATEMENT_TIMEOUT_MS",
    "EXPORT_MAX_ROWS",
    "EXPORT_TMPDIR",
    "BODY_TIMEOUT_MS",
    "HEADER_READ_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "RESPONSE_STREAMING",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// What the function's role must allow: the key and database secrets, IAM database
/// authentication, archive uploads (with the existence check of a repeated run), and the
/// chain heads (written once, the newest found by listing and read back).
pub const IAM_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "rds-db:connect",
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    // Every version of every published chain head (crate::anchor::history).
    "s3:GetObjectVersion",
    "s3:ListBucketVersions",
];

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database = DatabaseConfig::from_env(env, "audit-api")?;
        let owner_database = DatabaseConfig::from_env_named(
            env,
            "audit-api-maintenance",
            "MAINTENANCE_DATABASE_URL",
            "MAINTENANCE_DB_SECRET_ARN",
        )?;
        let keys = match (env.get("API_KEYS"), env.get("API_KEYS_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "API_KEYS_SECRET_ARN",
                    "(set)",
                    "only one of API_KEYS and API_KEYS_SECRET_ARN",
                ));
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    variable: "API_KEYS".to_owned(),
                    expected: "comma-separated API keys (key or key:company:company), or \
                               API_KEYS_SECRET_ARN naming a secret holding them"
                        .to_owned(),
                });
            }
            (Some(text), None) => KeySource::Inline(
                // The value is secret: the error names the entry, never its text.
                ApiKeys::parse(text)
                    .map_err(|e| ConfigError::invalid("API_KEYS", "(hidden)", e))?,
            ),
            (None, Some(arn)) => KeySource::Secret(arn.to_owned()),
        };
        let base_path = env.get("BASE_PATH").unwrap_or("/pyaudit").to_owned();
        let valid_base = base_path.starts_with('/')
            && !base_path.ends_with('/')
            && base_path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !valid_base {
            return Err(ConfigError::invalid(
                "BASE_PATH",
                &base_path,
                "a path like /pyaudit: starts with /, no trailing /",
            ));
        }
        let cors_origins = env.list("CORS_ALLOWED_ORIGINS");
        for origin in &cors_origins {
            if origin == "*" || axum::http::HeaderValue::from_str(origin).is_err() {
                return Err(ConfigError::invalid(
                    "CORS_ALLOWED_ORIGINS",
                    origin,
                    "exact origins such as https://app.example.com (no wildcard)",
                ));
            }
        }
        let local_timezone = env
            .get("LOCAL_TIMEZONE")
            .unwrap_or("America/Chicago")
            .to_owned();
        if local_timezone.is_empty()
            || !local_timezone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        {
            return Err(ConfigError::invalid(
                "LOCAL_TIMEZONE",
                &local_timezone,
                "an IANA zone name such as America/Chicago or UTC",
            ));
        }
        Ok(Config {
            database,
            owner_database,
            keys,
            base_path,
            cors_origins,
            max_body_bytes: env.int_in_range("MAX_BODY_BYTES", 2 << 20, 1024..=(6 << 20))?,
            retention_months: env.int_in_range("RETENTION_MONTHS", 12, 1..=1200)?,
            premake_months: env.int_in_range("PREMAKE_MONTHS", 5, 1..=24)?,
            archive_bucket: env.get("ARCHIVE_BUCKET").map(str::to_owned),
            archive_prefix: audit_core::aws::s3_key_prefix(
                env.get("ARCHIVE_PREFIX").unwrap_or("auditevents-archive/"),
            ),
            anchor_bucket: env.get("CHAIN_ANCHOR_BUCKET").map(str::to_owned),
            anchor_prefix: audit_core::aws::s3_key_prefix(
                env.get("CHAIN_ANCHOR_PREFIX")
                    .unwrap_or("audit-api/chain-heads/"),
            ),
            local_timezone,
            pool_size: env.int_in_range("POOL_SIZE", 10, 1..=200)?,
            append_workers: env.int_in_range("APPEND_WORKERS", 4, 1..=64)?,
            statement_timeout: Duration::from_millis(env.int_in_range(
                "STATEMENT_TIMEOUT_MS",
                30_000,
                100..=900_000,
            )?),
            export_max_rows: env.int_in_range("EXPORT_MAX_ROWS", 5_000_000, 1..=100_000_000)?,
            export_dir: env
                .get("EXPORT_TMPDIR")
                .map_or_else(std::env::temp_dir, std::path::PathBuf::from),
            body_timeout: Duration::from_millis(env.int_in_range(
                "BODY_TIMEOUT_MS",
                30_000,
                100..=900_000,
            )?),
            server: server::ServerLimits {
                header_read_timeout: Duration::from_millis(env.int_in_range(
                    "HEADER_READ_TIMEOUT_MS",
                    10_000,
                    100..=300_000,
                )?),
                max_connections: env.int_in_range("MAX_CONNECTIONS", 256, 1..=100_000)?,
            },
            response_streaming: env.bool_or("RESPONSE_STREAMING", false)?,
        })
    }

    /// Whether the AWS SDK is needed (secrets, IAM tokens, the archive bucket).
    pub fn needs_aws(&self) -> bool {
        self.database.needs_aws()
            || self.owner_database.as_ref().is_some_and(|d| d.needs_aws())
            || matches!(self.keys, KeySource::Secret(_))
            || self.archive_bucket.is_some()
            || self.anchor_bucket.is_some()
    }
}

pub use audit_core::postgres::Clients;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] db::SetupError),
    #[error("API_KEYS_SECRET_ARN: {0}")]
    Keys(String),
}

/// The whole HTTP interface of `app`: the API under its base path, the OpenAPI document and
/// the docs page. The server, the Lambda and the tests serve this.
pub fn router(app: std::sync::Arc<state::App>) -> axum::Router {
    let docs = openapi::docs_router(&app.base_path);
    http::router(app, docs)
}

/// Builds what every request shares: the pool (connections open on first use), the keys.
pub async fn build_app(
    config: &Config,
    clients: Option<&Clients>,
) -> Result<state::App, StartError> {
    let settings = db::SessionSettings {
        local_timezone: config.local_timezone.clone(),
        statement_timeout_ms: config.statement_timeout.as_millis() as u64,
    };
    let database = pool(&config.database, &settings, config.pool_size, clients).await?;
    // Migrations and maintenance use one connection at a time, and an export-sized pool
    // of owner connections would only widen what the owner's credentials reach.
    let owner_database = match &config.owner_database {
        Some(owner) => Some(pool(owner, &settings, 2, clients).await?),
        None => None,
    };
    let keys = match &config.keys {
        KeySource::Inline(keys) => keys.clone(),
        KeySource::Secret(arn) => {
            let secrets = &clients
                .ok_or_else(|| StartError::Keys("needs AWS clients".to_owned()))?
                .secrets;
            let secret = secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| StartError::Keys(audit_core::aws::describe(&e)))?;
            let text = secret
                .secret_string()
                .ok_or_else(|| StartError::Keys("the secret has no SecretString".to_owned()))?;
            ApiKeys::parse(text).map_err(|e| StartError::Keys(e.to_string()))?
        }
    };
    Ok(state::App::new(
        config,
        database,
        owner_database,
        keys,
        clients.map(|c| c.s3.clone()),
    ))
}

/// A pool over `database`, its credentials refreshed when they come from AWS.
async fn pool(
    database: &DatabaseConfig,
    settings: &db::SessionSettings,
    size: usize,
    clients: Option<&Clients>,
) -> Result<db::Database, StartError> {
    let aws = clients.map(|c| (&c.sdk, &c.secrets));
    let target = database.resolve(aws).await.map_err(db::SetupError::from)?;
    let pool = db::Database::new(target, settings.clone(), size)?;
    if let (true, Some(c)) = (database.needs_aws(), clients) {
        pool.refresh_every(
            database.clone(),
            Some((c.sdk.clone(), c.secrets.clone())),
            Duration::from_secs(600),
        );
    }
    Ok(pool)
}

/// The maintenance settings of this configuration.
pub fn maintenance_settings(
    config: &Config,
    s3: Option<aws_sdk_s3::Client>,
) -> maintain::MaintenanceSettings {
    maintain::MaintenanceSettings {
        premake_months: config.premake_months,
        retention_months: config.retention_months,
        archive: match (&config.archive_bucket, s3.clone()) {
            (Some(bucket), Some(client)) => maintain::ArchiveTarget::S3 {
                client,
                bucket: bucket.clone(),
                prefix: config.archive_prefix.clone(),
            },
            _ => maintain::ArchiveTarget::Table,
        },
        anchor: anchor_target(config, s3),
    }
}

/// Where the chains' heads are published, when configured.
pub fn anchor_target(
    config: &Config,
    s3: Option<aws_sdk_s3::Client>,
) -> Option<anchor::AnchorTarget> {
    match (&config.anchor_bucket, s3) {
        (Some(bucket), Some(client)) => Some(anchor::AnchorTarget::new(
            client,
            bucket.clone(),
            config.anchor_prefix.clone(),
        )),
        _ => None,
    }
}

/// A failed maintenance invocation: retryable (EventBridge retries, the alarm counts it).
#[derive(Debug, thiserror::Error)]
#[error("maintenance failed: {0}")]
pub struct MaintenanceFailed(pub String);

impl audit_core::Classify for MaintenanceFailed {
    fn code(&self) -> &'static str {
        "MaintenanceFailed"
    }
    fn retryable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://u:secret-pw@db/audit");
    const KEYS: (&str, &str) = ("API_KEYS", "key-aaaaaaaaaaaaaaaa");

    #[test]
    fn a_missing_or_bad_setting_names_its_variable_and_hides_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[KEYS], "DATABASE_URL"),
            (&[URL], "API_KEYS"),
            (
                &[URL, ("API_KEYS", "key-aaaaaaaaaaaaaaaa:acme")],
                "API_KEYS",
            ),
            (&[URL, KEYS, ("BASE_PATH", "pyaudit/")], "BASE_PATH"),
            (
                &[URL, KEYS, ("CORS_ALLOWED_ORIGINS", "*")],
                "CORS_ALLOWED_ORIGINS",
            ),
            (&[URL, KEYS, ("RETENTION_MONTHS", "0")], "RETENTION_MONTHS"),
            (
                &[URL, KEYS, ("LOCAL_TIMEZONE", "Central Time; DROP")],
                "LOCAL_TIMEZONE",
            ),
            (
                &[URL, KEYS, ("MAX_BODY_BYTES", "100000000")],
                "MAX_BODY_BYTES",
            ),
            (
                &[URL, KEYS, ("API_KEYS_SECRET_ARN", "arn:x")],
                "API_KEYS_SECRET_ARN",
            ),
            (
                &[
                    URL,
                    KEYS,
                    ("MAINTENANCE_DATABASE_URL", "postgres://owner:pw@db/audit"),
                    ("MAINTENANCE_DB_SECRET_ARN", "arn:x"),
                ],
                "MAINTENANCE_DB_SECRET_ARN",
            ),
            (
                &[
                    URL,
                    KEYS,
                    (
                        "MAINTENANCE_DATABASE_URL",
                        "postgres://owner:pw@db:notaport/x",
                    ),
                ],
                "MAINTENANCE_DATABASE_URL",
            ),
        ];
        for (pairs, variable) in cases {
            let error = load(pairs).expect_err(variable);
            assert_eq!(error.variable(), *variable, "{error}");
            let text = error.to_string();
            assert!(
                !text.contains("secret-pw") && !text.contains("key-aaaa"),
                "{text}"
            );
        }
    }

    #[test]
    fn defaults_are_the_original_services() {
        let config = load(&[URL, KEYS]).expect("config");
        assert_eq!(config.base_path, "/pyaudit");
        assert_eq!(config.retention_months, 12);
        assert_eq!(config.local_timezone, "America/Chicago");
        assert!(config.cors_origins.is_empty());
        assert!(!config.needs_aws());
        let config = load(&[
            URL,
            KEYS,
            ("ARCHIVE_BUCKET", "b"),
            ("ARCHIVE_PREFIX", "/x/y/"),
        ])
        .expect("config");
        assert!(config.needs_aws());
        assert_eq!(config.archive_prefix, "x/y/");
    }
}
