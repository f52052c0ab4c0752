//! A connection target: a libpq URL or key/value string, or an RDS-shaped secret, read into
//! tokio-postgres's configuration and libpq's `sslmode`, which tokio-postgres does not know.
//! Errors never contain the password.

use serde::Deserialize as _;
use tokio_postgres::config::SslMode as WireSslMode;

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
