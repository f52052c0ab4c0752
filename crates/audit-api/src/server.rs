//! `audit-api serve`: HTTP/1.1 on a plain socket, bounded against slow and numerous clients.
//!
//! A client that sends its headers a byte at a time, or announces a body and never sends it,
//! must not hold a connection (and a task, and maybe a database connection) for ever; nor may
//! ten thousand idle sockets. So:
//! - headers must arrive within `HEADER_READ_TIMEOUT_MS` (hyper closes the connection);
//! - a body must arrive whole within `BODY_TIMEOUT_MS` (408, [`crate::http`]);
//! - at most `MAX_CONNECTIONS` connections are served at once; further clients wait in the
//!   listen backlog until one ends.
//!
//! It also keeps the month partitions ahead of time ([`keep_partitions`]): a server that runs
//! for months without `audit-api maintain` must not run out of partitions.
//!
//! On Lambda none of this applies (the function URL or API Gateway holds the client, and the
//! maintenance schedule makes partitions).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// The server's bounds (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish
/// (up to 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then accept: clients beyond the cap wait in the kernel's backlog
        // instead of being accepted and left unserved.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {DRAIN:?}: closing them");
    }
}

/// Every `every`, probes the database on the healthcheck's own connection, so the
/// healthcheck always finds a fresh result and never waits (see [`crate::health`]).
pub fn keep_liveness(app: Arc<crate::state::App>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let crate::health::Alive::No(e) = app.liveness.refresh(&app.db).await {
                tracing::warn!("database liveness: {e}");
            }
        }
    })
}

/// Every `every`, writes the metrics the handlers recorded (see [`crate::metrics`]).
pub fn flush_metrics(app: Arc<crate::state::App>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate: nothing recorded yet
        loop {
            ticks.tick().await;
            app.metrics.flush();
        }
    })
}

/// How often `serve` makes sure this month's partition and the ones ahead exist.
pub const PARTITION_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Every `every`, creates the month partitions that are due (one catalog query when there
/// are none). A failure is logged and tried again at the next tick: inserts fail only once
/// the months prepared ahead have run out.
pub fn keep_partitions(
    app: Arc<crate::state::App>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match crate::maintain::ensure_partitions(
                &app.owner_db,
                &app.maintenance,
                chrono::Utc::now(),
            )
            .await
            {
                Ok(created) if !created.is_empty() => {
                    tracing::info!(?created, "month partitions created");
                }
                Ok(_) => {}
                Err(e) => tracing::error!("month partitions not checked: {e}"),
            }
        }
    })
}
