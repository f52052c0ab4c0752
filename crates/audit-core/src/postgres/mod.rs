//! Where the database is and how to reach it: a `DATABASE_URL`, a Secrets Manager secret in
//! the RDS shape, or IAM authentication tokens; TLS with libpq's `sslmode` semantics, verified
//! against the RDS CA bundle compiled into the binary (or `sslrootcert`).
//!
//! tokio-postgres only knows `disable`/`prefer`/`require` and never checks certificates
//! itself, so the TLS modes are read here and enforced by the rustls verifier.
//!
//! Layout: [`target`] (connection strings and secrets), [`tls`] (the verifier), [`iam`] (IAM
//! tokens), [`session`] (connecting); this module reads the configuration
//! ([`DatabaseConfig`]) and resolves it into a [`Target`] when a connection is due.

mod iam;
mod session;
mod target;
mod tls;

pub use iam::use_iam_token;
pub use session::{Connected, connect, connect_with_task};
pub use target::{
    RdsSecret, SslMode, Target, TargetError, parse_target, target_from_secret, wire_mode,
};
pub use tls::{RDS_CA_BUNDLE, tls_config};

use crate::{ConfigError, Env};

/// The variables [`DatabaseConfig::from_env`] reads.
pub const DATABASE_VARIABLES: [&str; 5] = [
    "DATABASE_URL",
    "DB_SECRET_ARN",
    "DB_SSLMODE",
    "DB_IAM_AUTH",
    "DB_ALLOW_UNVERIFIED_TLS",
];

/// AWS credentials (`because`: an IAM token, a secret's password) go only to a verified
/// server: `verify-full`, or with `allow` (`DB_ALLOW_UNVERIFIED_TLS`) a weaker mode (one that
/// still encrypts, for an IAM token).
fn check_verified(
    mode: SslMode,
    variable: &str,
    allow: bool,
    because: &str,
) -> Result<(), ConfigError> {
    // An IAM token over plaintext is refused by RDS anyway; a secret's password to a local
    // test server without TLS is the override's purpose.
    let acceptable = mode == SslMode::VerifyFull
        || allow && (mode >= SslMode::Require || because != "DB_IAM_AUTH");
    if acceptable {
        return Ok(());
    }
    let expected = if mode >= SslMode::Require {
        format!(
            "verify-full: with {because} credentials must not go to an unverified server \
             (DB_ALLOW_UNVERIFIED_TLS=true accepts {})",
            mode.name()
        )
    } else if because == "DB_IAM_AUTH" {
        format!("verify-full: with {because} the token must not travel unencrypted")
    } else {
        format!(
            "verify-full: with {because} credentials must not travel unencrypted \
             (DB_ALLOW_UNVERIFIED_TLS=true accepts {}, for a test server)",
            mode.name()
        )
    };
    let shown = if variable == "DATABASE_URL" {
        format!("(hidden; sslmode={})", mode.name())
    } else {
        mode.name().to_owned()
    };
    Err(ConfigError::invalid(variable, &shown, expected))
}

/// Where the database credentials come from.
#[derive(Debug, Clone)]
pub enum ConnectionSource {
    /// `DATABASE_URL`: a libpq URL or key/value string.
    Url(Box<Target>),
    /// `DB_SECRET_ARN`: a Secrets Manager secret in the RDS shape, read whenever a connection
    /// target is resolved (so a rotated password is picked up).
    Secret {
        arn: String,
        ssl_mode: Option<SslMode>,
    },
}

/// How a function reaches its database: `DATABASE_URL` or `DB_SECRET_ARN`, `DB_SSLMODE`,
/// `DB_IAM_AUTH`, `DB_ALLOW_UNVERIFIED_TLS`.
///
/// Credentials from AWS (an IAM token, a Secrets Manager password) never travel to a server
/// that was not verified: with `DB_IAM_AUTH` or `DB_SECRET_ARN` the TLS mode defaults to
/// `verify-full`, and a weaker one named in `DB_SSLMODE` or the URL is refused unless
/// `DB_ALLOW_UNVERIFIED_TLS=true`. A bare `DATABASE_URL` keeps libpq's semantics (`prefer`
/// by default); a session that ends up unencrypted is logged at WARN ([`connect`]).
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub source: ConnectionSource,
    /// `DB_IAM_AUTH`: connect with a 15-minute IAM token instead of a password.
    pub iam_auth: bool,
    /// `DB_ALLOW_UNVERIFIED_TLS`: accept a TLS mode weaker than `verify-full` for AWS
    /// credentials (a test database with a self-signed certificate, say).
    pub allow_unverified_tls: bool,
    /// `application_name` of the sessions (what `pg_stat_activity` shows), unless the URL
    /// names one.
    pub application_name: &'static str,
}

impl DatabaseConfig {
    /// Reads the variables; `application_name` names the function's sessions.
    pub fn from_env(env: &Env, application_name: &'static str) -> Result<Self, ConfigError> {
        Self::from_env_named(env, application_name, "DATABASE_URL", "DB_SECRET_ARN")?.ok_or_else(
            || ConfigError::Missing {
                variable: "DATABASE_URL".to_owned(),
                expected: "a PostgreSQL connection URL, or DB_SECRET_ARN naming an RDS secret"
                    .to_owned(),
            },
        )
    }

    /// The same, with the URL and the secret in other variables (a second database role);
    /// `None` when neither is set. `DB_SSLMODE`, `DB_IAM_AUTH` and `DB_ALLOW_UNVERIFIED_TLS`
    /// are shared.
    pub fn from_env_named(
        env: &Env,
        application_name: &'static str,
        url_variable: &'static str,
        secret_variable: &'static str,
    ) -> Result<Option<Self>, ConfigError> {
        let allow_unverified_tls = env.bool_or("DB_ALLOW_UNVERIFIED_TLS", false)?;
        let iam_auth = env.bool_or("DB_IAM_AUTH", false)?;
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
        let source = match (env.get(url_variable), env.get(secret_variable)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    secret_variable,
                    "(set)",
                    format!("only one of {url_variable} and {secret_variable}"),
                ));
            }
            (None, None) => return Ok(None),
            (Some(url), None) => {
                let mut target = parse_target(url).map_err(|TargetError(why)| {
                    // The value may hold a password: never echo it.
                    ConfigError::invalid(url_variable, "(hidden)", why)
                })?;
                if let Some(mode) = ssl_mode {
                    target.set_ssl_mode(mode);
                }
                if iam_auth {
                    let named_in = if ssl_mode.is_some() {
                        "DB_SSLMODE"
                    } else {
                        url_variable
                    };
                    if !target.ssl_mode_given {
                        target.set_ssl_mode(SslMode::VerifyFull);
                    }
                    check_verified(
                        target.ssl_mode,
                        named_in,
                        allow_unverified_tls,
                        "DB_IAM_AUTH",
                    )?;
                }
                ConnectionSource::Url(Box::new(target))
            }
            (None, Some(arn)) => {
                if let Some(mode) = ssl_mode {
                    check_verified(mode, "DB_SSLMODE", allow_unverified_tls, secret_variable)?;
                }
                ConnectionSource::Secret {
                    arn: arn.to_owned(),
                    ssl_mode,
                }
            }
        };
        Ok(Some(DatabaseConfig {
            source,
            iam_auth,
            allow_unverified_tls,
            application_name,
        }))
    }

    /// Whether resolving a target needs the AWS SDK (a secret or an IAM token).
    pub fn needs_aws(&self) -> bool {
        matches!(self.source, ConnectionSource::Secret { .. }) || self.iam_auth
    }

    /// The connection target now: the secret read now, an IAM token made now. `aws` is the
    /// SDK configuration and Secrets Manager client, needed when [`Self::needs_aws`].
    pub async fn resolve(
        &self,
        aws: Option<(&aws_config::SdkConfig, &aws_sdk_secretsmanager::Client)>,
    ) -> Result<Target, ResolveError> {
        let mut target = match &self.source {
            ConnectionSource::Url(target) => (**target).clone(),
            ConnectionSource::Secret { arn, ssl_mode } => {
                let (_, secrets) = aws.ok_or(ResolveError::NeedsAws("DB_SECRET_ARN"))?;
                let secret = secrets
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| ResolveError::SecretUnreadable(crate::aws::describe(&e)))?;
                let json = secret.secret_string().ok_or(ResolveError::SecretNotText)?;
                target_from_secret(json, *ssl_mode).map_err(ResolveError::SecretInvalid)?
            }
        };
        if target.config.get_application_name().is_none() {
            target.config.application_name(self.application_name);
        }
        if self.iam_auth {
            let (sdk, _) = aws.ok_or(ResolveError::NeedsAws("DB_IAM_AUTH"))?;
            use_iam_token(&mut target, sdk, self.allow_unverified_tls)
                .await
                .map_err(ResolveError::IamToken)?;
        }
        Ok(target)
    }
}

/// Why a connection target could not be resolved now (read the secret, make the IAM token).
/// Each names the variable at fault; none contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0} needs AWS clients")]
    NeedsAws(&'static str),
    #[error("cannot read DB_SECRET_ARN: {0}")]
    SecretUnreadable(String),
    #[error("DB_SECRET_ARN: the secret has no SecretString")]
    SecretNotText,
    #[error("DB_SECRET_ARN: {0}")]
    SecretInvalid(TargetError),
    #[error("DB_IAM_AUTH: {0}")]
    IamToken(TargetError),
}

/// The AWS clients a PostgreSQL-backed function builds once: the SDK configuration (IAM
/// tokens), S3 (its outputs) and Secrets Manager (credentials, keys).
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        Clients {
            s3: crate::aws::s3_client(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Env;

    #[test]
    fn connection_strings_keep_tls_settings_and_never_echo_passwords() {
        let target = parse_target(
            "postgresql://auditor:s3cret@db.example.com:6432/app?sslmode=verify-full&sslrootcert=/tmp/ca.pem&connect_timeout=5",
        )
        .expect("valid");
        assert_eq!(target.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            target.root_cert.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert_eq!(target.config.get_user(), Some("auditor"));
        assert_eq!(target.config.get_ports(), [6432]);
        let kv =
            parse_target("host=db user=a password=p dbname=x sslmode=verify-ca").expect("valid");
        assert_eq!(kv.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            parse_target("postgresql://h/db").expect("valid").ssl_mode,
            SslMode::Prefer
        );

        let bad =
            parse_target("postgresql://a:hunter2@h/db?sslmode=sometimes").expect_err("bad mode");
        assert!(
            bad.0.contains("sslmode") && !bad.0.contains("hunter2"),
            "{bad}"
        );
        let env = Env::from_pairs([("DATABASE_URL", "postgresql://a:hunter2@h:notaport/db")]);
        let error = DatabaseConfig::from_env(&env, "pg-auditor")
            .expect_err("bad port")
            .to_string();
        assert!(
            error.contains("DATABASE_URL") && !error.contains("hunter2"),
            "{error}"
        );
    }

    /// AWS credentials never go to an unverified server unless the deployment says so; a bare URL
    /// keeps libpq's semantics.
    #[test]
    fn aws_credentials_need_verified_tls_unless_explicitly_allowed() {
        let load = |pairs: &[(&str, &str)]| {
            DatabaseConfig::from_env(&Env::from_pairs(pairs.to_vec()), "pg-auditor")
        };
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db";
        for mode in ["require", "verify-ca", "prefer", "disable"] {
            let error = load(&[("DB_SECRET_ARN", secret), ("DB_SSLMODE", mode)])
                .expect_err("weaker than verify-full");
            assert_eq!(error.variable(), "DB_SSLMODE", "{mode}: {error}");
            assert!(
                error.to_string().contains("DB_ALLOW_UNVERIFIED_TLS"),
                "{error}"
            );
            assert!(
                load(&[
                    ("DB_SECRET_ARN", secret),
                    ("DB_SSLMODE", mode),
                    ("DB_ALLOW_UNVERIFIED_TLS", "true")
                ])
                .is_ok(),
                "{mode} allowed explicitly"
            );
        }
        assert!(
            load(&[("DB_SECRET_ARN", secret)]).is_ok(),
            "verify-full by default"
        );

        // IAM tokens: verify-full unless the URL or DB_SSLMODE names a weaker mode, which is
        // refused (and never accepted without TLS).
        let iam = load(&[
            ("DATABASE_URL", "postgresql://u@db.example.com/app"),
            ("DB_IAM_AUTH", "true"),
        ])
        .expect("valid");
        match iam.source {
            ConnectionSource::Url(target) => {
                assert_eq!(target.ssl_mode, SslMode::VerifyFull)
            }
            other => panic!("{other:?}"),
        }
        let error = load(&[
            (
                "DATABASE_URL",
                "postgresql://u:hunter2@db.example.com/app?sslmode=require",
            ),
            ("DB_IAM_AUTH", "true"),
        ])
        .expect_err("require does not verify the server");
        assert_eq!(error.variable(), "DATABASE_URL");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(
            load(&[
                (
                    "DATABASE_URL",
                    "postgresql://u@db.example.com/app?sslmode=require"
                ),
                ("DB_IAM_AUTH", "true"),
                ("DB_ALLOW_UNVERIFIED_TLS", "true"),
            ])
            .is_ok()
        );
        let error = load(&[
            ("DATABASE_URL", "postgresql://u@db.example.com/app"),
            ("DB_IAM_AUTH", "true"),
            ("DB_SSLMODE", "disable"),
            ("DB_ALLOW_UNVERIFIED_TLS", "true"),
        ])
        .expect_err("a token never travels in clear");
        assert_eq!(error.variable(), "DB_SSLMODE");

        // A bare URL: libpq's default, prefer.
        let bare = load(&[("DATABASE_URL", "postgresql://u@h/app")]).expect("valid");
        assert!(matches!(
            bare.source,
            ConnectionSource::Url(ref t) if t.ssl_mode == SslMode::Prefer
        ));
    }

    #[test]
    fn secrets_in_the_rds_shape_default_to_verified_tls() {
        let target = target_from_secret(
            r#"{"username":"u","password":"p","host":"db.x.rds.amazonaws.com","port":"5433","dbname":"app","engine":"postgres"}"#,
            None,
        )
        .expect("valid");
        assert_eq!(target.ssl_mode, SslMode::VerifyFull);
        assert_eq!(target.config.get_ports(), [5433]);
        assert_eq!(target.config.get_dbname(), Some("app"));
        let error =
            target_from_secret(r#"{"password":"p","host":"h"}"#, None).expect_err("no user");
        assert!(error.0.contains("username"), "{error}");
    }

    #[test]
    fn the_rds_bundle_and_every_mode_build_a_tls_configuration() {
        for mode in [
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            let mut target = parse_target("postgresql://h/db").expect("valid");
            target.ssl_mode = mode;
            tls_config(&target).expect("tls config");
        }
        let mut target =
            parse_target("postgresql://h/db?sslrootcert=/nonexistent/ca.pem").expect("valid");
        target.ssl_mode = SslMode::VerifyFull;
        let error = tls_config(&target).expect_err("missing file");
        assert!(error.0.contains("sslrootcert"), "{error}");
    }

    /// `application_name` is the function's, unless the URL names one.
    #[tokio::test]
    async fn sessions_are_named_after_the_function_unless_the_url_names_them() {
        let load = |url: &str, name: &'static str| {
            DatabaseConfig::from_env(&Env::from_pairs([("DATABASE_URL", url)]), name)
                .expect("valid")
        };
        let target = load("postgresql://u@h/app", "audit-api")
            .resolve(None)
            .await
            .expect("resolved");
        assert_eq!(target.config.get_application_name(), Some("audit-api"));
        let target = load("postgresql://u@h/app?application_name=etl", "pg-auditor")
            .resolve(None)
            .await
            .expect("resolved");
        assert_eq!(target.config.get_application_name(), Some("etl"));
    }
}
