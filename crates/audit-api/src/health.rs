//! The healthcheck's view of the database: a liveness probe (`SELECT 1`) on a connection of
//! its own, never one of the pool's, so a saturated pool (every connection busy with searches)
//! does not make a healthy instance look dead to its load balancer.
//!
//! A result younger than [`FRESH`] is answered at once; the server keeps one fresh with a
//! probe every [`PROBE_EVERY`], so under any load the healthcheck is a read of memory. While a
//! probe is running, the previous result answers if it is younger than [`STALE`]; otherwise the
//! caller waits for the probe, which gives up after [`PROBE_TIMEOUT`]: a dead or unresponsive
//! database is reported within that time.

use crate::db::Database;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A result this recent is answered without probing.
pub const FRESH: Duration = Duration::from_secs(1);
/// While a probe runs, a result this recent still answers.
pub const STALE: Duration = Duration::from_secs(5);
/// A probe that takes longer says the database is unresponsive.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `serve` probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alive {
    Yes,
    No(String),
}

#[derive(Debug)]
pub struct Liveness {
    /// The dedicated connection, opened on first use and again after a failure.
    connection: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    last: Mutex<Option<(Instant, Alive)>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            connection: tokio::sync::Mutex::new(None),
            last: Mutex::new(None),
        }
    }
}

impl Liveness {
    fn last_within(&self, age: Duration) -> Option<Alive> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < age)
            .map(|(_, alive)| alive.clone())
    }

    /// Whether the database answers, from a recent probe or a new one.
    pub async fn check(&self, db: &Database) -> Alive {
        if let Some(alive) = self.last_within(FRESH) {
            return alive;
        }
        let connection = match self.connection.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A probe is running: a recent result answers for now.
                if let Some(alive) = self.last_within(STALE) {
                    return alive;
                }
                let guard = self.connection.lock().await;
                if let Some(alive) = self.last_within(FRESH) {
                    return alive;
                }
                guard
            }
        };
        self.probe(db, connection).await
    }

    /// Probes now (the server's background task).
    pub async fn refresh(&self, db: &Database) -> Alive {
        let connection = self.connection.lock().await;
        self.probe(db, connection).await
    }

    async fn probe(
        &self,
        db: &Database,
        mut connection: tokio::sync::MutexGuard<'_, Option<tokio_postgres::Client>>,
    ) -> Alive {
        let attempt = async {
            // A connection that failed or hung is not put back: the next probe opens another.
            let client = match connection.take().filter(|c| !c.is_closed()) {
                Some(client) => client,
                None => db.dedicated_connection().await?,
            };
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            *connection = Some(client);
            Ok::<(), String>(())
        };
        let alive = match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(())) => Alive::Yes,
            Ok(Err(e)) => Alive::No(e),
            Err(_) => Alive::No(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), alive.clone()));
        alive
    }
}
