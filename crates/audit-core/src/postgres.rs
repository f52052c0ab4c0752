//! Where the database is and how to reach it: a `DATABASE_URL`, a Secrets Manager secret in
//! the RDS shape, or IAM authentication tokens; TLS with libpq's `sslmode` semantics, verified
//! against the RDS CA bundle compiled into the binary (or `sslrootcert`).
//!
//! tokio-postgres only knows `disable`/`prefer`/`require` and never checks certificates
//! itself, so the TLS modes are read here and enforced by the rustls verifier.

use crate::{ConfigError, Env};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::config::SslMode as WireSslMode;

/// The RDS CA bundle (every region, 2019 and 2024 roots): see `certs/README.md`.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SslMode::Disable,
            // `allow` tries without TLS first; we try with it first, which is never weaker.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn wire(self) -> WireSslMode {
        wire_mode(self)
    }
}

/// What tokio-postgres is told: whether to ask for TLS and whether to insist on it.
pub fn wire_mode(mode: SslMode) -> WireSslMode {
    match mode {
        SslMode::Disable => WireSslMode::Disable,
        SslMode::Prefer => WireSslMode::Prefer,
        _ => WireSslMode::Require,
    }
}

/// Replaces the password with an IAM authentication token (SigV4-presigned, valid 15
/// minutes, enough to open this run's connections) and insists on TLS that verifies the
/// server (`verify-full`): a token sent to an unverified server can be replayed by whoever
/// answered. `allow_unverified` (`DB_ALLOW_UNVERIFIED_TLS`) accepts a weaker mode the target
/// names; TLS itself is never optional.
pub async fn use_iam_token(
    target: &mut Target,
    sdk: &aws_config::SdkConfig,
    allow_unverified: bool,
) -> Result<(), TargetError> {
    if target.ssl_mode_given && target.ssl_mode < SslMode::VerifyFull && !allow_unverified {
        return Err(TargetError(format!(
            "IAM authentication sends a token: sslmode must be verify-full (the target says {}; \
             set DB_ALLOW_UNVERIFIED_TLS=true to accept it)",
            target.ssl_mode.name()
        )));
    }
    if target.ssl_mode < SslMode::Require {
        return Err(TargetError(
            "IAM authentication needs TLS: sslmode must be verify-full".to_owned(),
        ));
    }
    let host = match target.config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => {
            return Err(TargetError(
                "IAM authentication needs a TCP host name".to_owned(),
            ));
        }
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    let user = target
        .config
        .get_user()
        .ok_or_else(|| TargetError("IAM authentication needs a user name".to_owned()))?
        .to_owned();
    let generator = aws_sdk_rds::auth_token::AuthTokenGenerator::new(
        aws_sdk_rds::auth_token::Config::builder()
            .hostname(&host)
            .port(u64::from(port))
            .username(&user)
            .build()
            .map_err(|e| TargetError(format!("IAM token: {e}")))?,
    );
    let token = generator
        .auth_token(sdk)
        .await
        .map_err(|e| TargetError(format!("IAM token: {e}")))?;
    target.config.password(token.as_str());
    Ok(())
}

/// A database to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    /// Whether `ssl_mode` was named (in the URL or `DB_SSLMODE`) rather than defaulted.
    pub ssl_mode_given: bool,
    /// PEM roots from `sslrootcert`; the RDS bundle when `None`.
    pub root_cert: Option<std::path::PathBuf>,
}

impl Target {
    /// Sets the TLS mode, as named by the user.
    pub fn set_ssl_mode(&mut self, mode: SslMode) {
        self.ssl_mode = mode;
        self.ssl_mode_given = true;
        self.config.ssl_mode(wire_mode(mode));
    }
}

/// A connection string that cannot be used. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

/// Parses a libpq URL (`postgresql://user:pass@host:port/db?sslmode=verify-full`) or
/// key/value string (`host=... sslmode=...`), taking out the TLS settings tokio-postgres
/// does not understand.
pub fn parse_target(connection: &str) -> Result<Target, TargetError> {
    let connection = connection.trim();
    let mut ssl_mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, TargetError> {
        match key {
            "sslmode" => {
                ssl_mode = Some(SslMode::parse(value).ok_or_else(|| {
                    TargetError(format!(
                        "sslmode={value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ))
                })?);
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(std::path::PathBuf::from(value));
                Ok(true)
            }
            "sslcert" | "sslkey" | "sslpassword" => Err(TargetError(format!(
                "{key}: client certificates are not supported"
            ))),
            _ => Ok(false),
        }
    };
    let rest = if let Some((base, query)) = connection
        .starts_with("postgres")
        .then(|| connection.split_once('?'))
        .flatten()
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // libpq's decoding: `%XX` only; a `+` is a plus sign, not a space.
            let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            if !take(key, &decoded)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if connection.starts_with("postgres") {
        connection.to_owned()
    } else {
        let mut kept = Vec::new();
        for pair in connection.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        // tokio-postgres's parse errors name the part, never echo the input.
        TargetError(format!("not a PostgreSQL connection string: {e}"))
    })?;
    let ssl_mode_given = ssl_mode.is_some();
    let ssl_mode = ssl_mode.unwrap_or(SslMode::Prefer);
    config.ssl_mode(ssl_mode.wire());
    Ok(Target {
        config,
        ssl_mode,
        ssl_mode_given,
        root_cert,
    })
}

/// The fields of an RDS-managed (or RDS-shaped) Secrets Manager secret.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RdsSecret {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    pub host: String,
    #[serde(default, deserialize_with = "port_number")]
    pub port: Option<u16>,
    #[serde(default)]
    pub dbname: Option<String>,
}

fn port_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    Ok(match Option::<Port>::deserialize(d)? {
        None => None,
        Some(Port::Number(n)) => Some(n),
        Some(Port::Text(s)) => Some(s.parse().map_err(serde::de::Error::custom)?),
    })
}
use serde::Deserialize as _;

/// A target from a secret's JSON. TLS defaults to `verify-full`: a secret means AWS, and AWS
/// means the RDS CA.
pub fn target_from_secret(json: &str, ssl_mode: Option<SslMode>) -> Result<Target, TargetError> {
    let secret: RdsSecret = serde_json::from_str(json).map_err(|e| {
        TargetError(format!(
            "the secret is not RDS-shaped JSON ({{username, password, host, port, dbname}}): {}",
            // serde_json's message names the field, never the value.
            e
        ))
    })?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&secret.host)
        .port(secret.port.unwrap_or(5432))
        .user(&secret.username)
        .dbname(secret.dbname.as_deref().unwrap_or("postgres"));
    if let Some(password) = &secret.password {
        config.password(password);
    }
    let ssl_mode_given = ssl_mode.is_some();
    let ssl_mode = ssl_mode.unwrap_or(SslMode::VerifyFull);
    config.ssl_mode(ssl_mode.wire());
    Ok(Target {
        config,
        ssl_mode,
        ssl_mode_given,
        root_cert: None,
    })
}

/// The rustls configuration for a mode. `Prefer`/`Require` without a root file encrypt
/// without verifying, as libpq does; `Require` with `sslrootcert` verifies the chain (libpq:
/// "if a root CA file exists, behaves like verify-ca").
pub fn tls_config(target: &Target) -> Result<rustls::ClientConfig, TargetError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = root_store(target)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetError(format!("TLS: {e}")))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TargetError(format!("TLS roots: {e}")))?;
    let check = match (target.ssl_mode, &target.root_cert) {
        (SslMode::VerifyFull, _) => Check::Full,
        (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::ChainOnly,
        _ => Check::None,
    };
    let verifier = Arc::new(Verifier {
        webpki,
        check,
        provider,
    });
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn root_store(target: &Target) -> Result<RootCertStore, TargetError> {
    let pem = match &target.root_cert {
        Some(path) => std::fs::read(path)
            .map_err(|e| TargetError(format!("sslrootcert {}: {e}", path.display())))?,
        None => RDS_CA_BUNDLE.to_vec(),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TargetError(format!("sslrootcert: not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TargetError(format!("sslrootcert: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TargetError("sslrootcert: no certificates".to_owned()));
    }
    Ok(roots)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    ChainOnly,
    Full,
}

#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    check: Check,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::None {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::ChainOnly => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens one connection; its driver task runs on the runtime until the client is dropped.
pub async fn connect(
    target: &Target,
    tls: &rustls::ClientConfig,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    connect_with_task(target, tls).await.map(|c| c.client)
}

/// An open session.
#[derive(Debug)]
pub struct Connected {
    pub client: tokio_postgres::Client,
    /// The driver task: it ends when the connection does.
    pub task: tokio::task::JoinHandle<()>,
    /// Whether the session runs over TLS.
    pub encrypted: bool,
}

/// [`connect`], also returning the driver task (a pool watches it to tell a dead connection).
/// A session that ends up unencrypted (`disable`, or `prefer` against a server without TLS)
/// is logged at WARN: libpq's semantics are kept, but nobody should find out by accident.
pub async fn connect_with_task(
    target: &Target,
    tls: &rustls::ClientConfig,
) -> Result<Connected, tokio_postgres::Error> {
    let (client, task, encrypted) = if target.ssl_mode == SslMode::Disable {
        let (client, connection) = target.config.connect(tokio_postgres::NoTls).await?;
        (client, tokio::spawn(drive(connection)), false)
    } else {
        let observed = ObservedTls::new(tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()));
        let encrypted = Arc::clone(&observed.encrypted);
        let (client, connection) = target.config.connect(observed).await?;
        let encrypted = encrypted.load(std::sync::atomic::Ordering::Relaxed);
        (client, tokio::spawn(drive(connection)), encrypted)
    };
    if !encrypted {
        let host = match target.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        };
        tracing::warn!(
            host,
            sslmode = target.ssl_mode.name(),
            "the database session is not encrypted: credentials and data cross the network in \
             clear; set sslmode=verify-full"
        );
    }
    Ok(Connected {
        client,
        task,
        encrypted,
    })
}

/// Whether the server accepted TLS: tokio-postgres calls the connector only after the server
/// agreed, and `prefer` falls back to plaintext without saying so.
struct ObservedTls<T> {
    inner: T,
    encrypted: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> ObservedTls<T> {
    fn new(inner: T) -> Self {
        ObservedTls {
            inner,
            encrypted: Arc::default(),
        }
    }
}

struct ObservedConnect<T> {
    inner: T,
    encrypted: Arc<std::sync::atomic::AtomicBool>,
}

impl<S, T: tokio_postgres::tls::MakeTlsConnect<S>> tokio_postgres::tls::MakeTlsConnect<S>
    for ObservedTls<T>
{
    type Stream = T::Stream;
    type TlsConnect = ObservedConnect<T::TlsConnect>;
    type Error = T::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(ObservedConnect {
            inner: self.inner.make_tls_connect(domain)?,
            encrypted: Arc::clone(&self.encrypted),
        })
    }
}

impl<S, T: tokio_postgres::tls::TlsConnect<S>> tokio_postgres::tls::TlsConnect<S>
    for ObservedConnect<T>
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: S) -> Self::Future {
        self.encrypted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.connect(stream)
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!("database connection closed: {e}");
    }
}

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
                let mut target = parse_target(url).map_err(|TargetError(why)| {
                    // The value may hold a password: never echo it.
                    ConfigError::invalid("DATABASE_URL", "(hidden)", why)
                })?;
                if let Some(mode) = ssl_mode {
                    target.set_ssl_mode(mode);
                }
                if iam_auth {
                    let named_in = if ssl_mode.is_some() {
                        "DB_SSLMODE"
                    } else {
                        "DATABASE_URL"
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
                    check_verified(mode, "DB_SSLMODE", allow_unverified_tls, "DB_SECRET_ARN")?;
                }
                ConnectionSource::Secret {
                    arn: arn.to_owned(),
                    ssl_mode,
                }
            }
        };
        Ok(DatabaseConfig {
            source,
            iam_auth,
            allow_unverified_tls,
            application_name,
        })
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
