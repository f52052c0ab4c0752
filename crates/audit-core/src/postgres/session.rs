//! Opening a session: one connection whose driver runs on the runtime, and whether it is
//! encrypted (a session that is not is logged at WARN).

use super::{SslMode, Target};
use std::sync::Arc;

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
