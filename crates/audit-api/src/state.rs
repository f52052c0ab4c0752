//! [`App`]: what every request shares, built once per process: the database pool, the API
//! keys, the settings, and the catalog of functionalities and event types, cached and read
//! again (at most once per [`CATALOG_REREAD_INTERVAL`]) when a request names something new,
//! and a sample of how common each trigram of the messages is, for message patterns.
//! The schema is made ready (migrations, this month's partitions) by the first request that
//! needs it, not at cold start.

use crate::db::{self, Database, DbError};
use crate::error::ApiError;
use crate::event::Catalog;
use crate::keys::ApiKeys;
use crate::trigram::TrigramFrequencies;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The shortest time between two catalog reads caused by unknown names: a new functionality
/// is known to every process within this time.
pub const CATALOG_REREAD_INTERVAL: Duration = Duration::from_secs(1);

/// What every request shares.
#[derive(Debug)]
pub struct App {
    pub db: Database,
    /// The schema owner's connections (`MAINTENANCE_DATABASE_URL` or
    /// `MAINTENANCE_DB_SECRET_ARN`) for migrations, partitions and maintenance; the same pool
    /// as `db` when none is configured.
    pub owner_db: Database,
    /// Single creates, appended together (see [`crate::append`]).
    pub(crate) appender: crate::append::Appender,
    pub(crate) keys: ApiKeys,
    catalog: RwLock<Arc<Catalog>>,
    /// When the catalog was last read; held while it is read, so concurrent requests that
    /// name something unknown wait for one read instead of each making their own.
    catalog_read_at: tokio::sync::Mutex<Option<Instant>>,
    catalog_reads: AtomicU64,
    /// Migrations and this month's partitions, checked once per process before the first
    /// request that touches the tables (a Lambda does not wait for them at cold start).
    ready: tokio::sync::OnceCell<()>,
    pub base_path: String,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) export_max_rows: u64,
    pub(crate) export_dir: std::path::PathBuf,
    pub maintenance: crate::maintain::MaintenanceSettings,
    /// Where verification reads every published chain head (and what it has read).
    pub anchor: Option<crate::anchor::AnchorTarget>,
    /// What the handlers count (written per invocation, or every minute by the server).
    pub metrics: crate::metrics::ApiMetrics,
    /// The healthcheck's probe of the database, on a connection of its own.
    pub liveness: crate::health::Liveness,
    /// How common each trigram of the stored messages is, and when that was sampled (`None`:
    /// the sample failed; patterns are then looked up whole until the next try).
    trigrams: RwLock<Option<(Instant, Option<Arc<TrigramFrequencies>>)>>,
    /// Held while sampling, so concurrent searches wait for one sample.
    trigrams_sampling: tokio::sync::Mutex<()>,
    /// One permit per verification the endpoint runs at once: a verification holds a pool
    /// connection for its whole chain, so unbounded ones would take the pool from writers.
    pub verifications: tokio::sync::Semaphore,
}

/// Verifications the endpoint runs at once per process.
pub const VERIFY_CONCURRENCY: usize = 2;
/// How long a verification waits for a permit before it is refused (429, `Retry-After`).
pub const VERIFY_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// How long one verification by the endpoint may run (5,000,000 events take about 20 s);
/// `audit-api verify` has no limit.
pub const VERIFY_TIME_LIMIT: Duration = Duration::from_secs(60);

/// How long a trigram sample serves, and how soon a failed one is tried again. Messages'
/// vocabulary changes slowly; a sample costs a few milliseconds.
const TRIGRAM_SAMPLE_INTERVAL: Duration = Duration::from_secs(3600);
const TRIGRAM_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Messages per sample: a trigram in 1% of them is seen about 50 times.
const TRIGRAM_SAMPLE_ROWS: i64 = 5000;

impl App {
    pub fn new(
        config: &crate::Config,
        db: Database,
        owner_db: Option<Database>,
        keys: ApiKeys,
        s3: Option<aws_sdk_s3::Client>,
    ) -> Self {
        App {
            owner_db: owner_db.unwrap_or_else(|| db.clone()),
            appender: crate::append::Appender::start(
                db.clone(),
                config.append_workers.min(config.pool_size),
            ),
            db,
            keys,
            catalog: RwLock::default(),
            catalog_read_at: tokio::sync::Mutex::new(None),
            catalog_reads: AtomicU64::new(0),
            ready: tokio::sync::OnceCell::new(),
            base_path: config.base_path.clone(),
            cors_origins: config.cors_origins.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            export_max_rows: config.export_max_rows,
            export_dir: config.export_dir.clone(),
            anchor: crate::anchor_target(config, s3.clone()),
            maintenance: crate::maintenance_settings(config, s3),
            metrics: crate::metrics::ApiMetrics::new(audit_core::metrics::MetricsOut::stdout()),
            liveness: crate::health::Liveness::default(),
            trigrams: RwLock::default(),
            trigrams_sampling: tokio::sync::Mutex::new(()),
            verifications: tokio::sync::Semaphore::new(VERIFY_CONCURRENCY),
        }
    }

    /// Shared appends that failed and were appended again request by request
    /// ([`crate::append::Appender::shared_appends_failed`]).
    pub fn shared_appends_failed(&self) -> u64 {
        self.appender.shared_appends_failed()
    }

    /// How the trigram indexes should find `pattern`'s rows ([`crate::trigram::lookup`]),
    /// from a sample of the stored messages refreshed hourly; without one, the whole pattern
    /// as the one predicate.
    pub async fn message_lookup(&self, pattern: &str) -> crate::trigram::PatternLookup {
        match self.trigram_frequencies().await {
            Some(frequencies) => crate::trigram::lookup(pattern, &frequencies),
            None => crate::trigram::PatternLookup::Whole,
        }
    }

    async fn trigram_frequencies(&self) -> Option<Arc<TrigramFrequencies>> {
        let current = || {
            let sample = self.trigrams.read().ok()?.clone()?;
            let interval = if sample.1.is_some() {
                TRIGRAM_SAMPLE_INTERVAL
            } else {
                TRIGRAM_RETRY_INTERVAL
            };
            (sample.0.elapsed() < interval).then_some(sample.1)
        };
        if let Some(frequencies) = current() {
            return frequencies;
        }
        let _sampling = self.trigrams_sampling.lock().await;
        if let Some(frequencies) = current() {
            return frequencies; // sampled by the request this one waited for
        }
        let sampled = match db::trigram_frequencies(&self.db, TRIGRAM_SAMPLE_ROWS).await {
            Ok(frequencies) => Some(Arc::new(frequencies)),
            Err(e) => {
                // Searches stay correct, only slower for rare words: a warning, not a failure.
                tracing::warn!(error = %e, "sampling message trigrams failed; patterns are looked up whole");
                None
            }
        };
        if let Ok(mut guard) = self.trigrams.write() {
            *guard = Some((Instant::now(), sampled.clone()));
        }
        sampled
    }

    /// Applies pending migrations and creates the partitions due, once per process.
    pub async fn ensure_ready(&self) -> Result<(), ApiError> {
        self.ready
            .get_or_try_init(|| async {
                db::migrate(&self.owner_db).await?;
                let partitions = crate::maintain::ensure_partitions(
                    &self.owner_db,
                    &self.maintenance,
                    chrono::Utc::now(),
                )
                .await;
                match partitions {
                    Ok(_) => {}
                    // The application's role (audit_api_writer) may not create tables: the
                    // owner's `audit-api maintain` makes the months ahead, and the months
                    // that exist take events meanwhile.
                    Err(e) if e.is_insufficient_privilege() => tracing::warn!(
                        "cannot create partitions under this role ({e}); \
                         run `audit-api maintain` with the owner's credentials"
                    ),
                    Err(e) => return Err(DbError::Unavailable(e.to_string())),
                }
                self.reload_catalog().await?;
                Ok::<(), DbError>(())
            })
            .await
            .map(|_| ())
            .map_err(ApiError::from)
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    async fn reload_catalog(&self) -> Result<Arc<Catalog>, DbError> {
        let mut read_at = self.catalog_read_at.lock().await;
        self.read_catalog(&mut read_at).await
    }

    async fn read_catalog(&self, read_at: &mut Option<Instant>) -> Result<Arc<Catalog>, DbError> {
        let fresh = Arc::new(db::load_catalog(&self.db).await?);
        if let Ok(mut guard) = self.catalog.write() {
            *guard = Arc::clone(&fresh);
        }
        *read_at = Some(Instant::now());
        self.catalog_reads.fetch_add(1, Ordering::Relaxed);
        Ok(fresh)
    }

    /// How many times this process has read the catalog.
    pub fn catalog_reads(&self) -> u64 {
        self.catalog_reads.load(Ordering::Relaxed)
    }

    /// The catalog, read again when a request names something it does not hold (a type
    /// added by another deployment since this process read it), but at most once per
    /// [`CATALOG_REREAD_INTERVAL`]: a client sending unknown names cannot make every request
    /// a catalog read.
    pub(crate) async fn catalog_knowing<'a>(
        &self,
        names: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Arc<Catalog>, DbError> {
        let catalog = self.catalog();
        if names.into_iter().all(|(f, t)| catalog.knows(f, t)) {
            return Ok(catalog);
        }
        let mut read_at = self.catalog_read_at.lock().await;
        if read_at.is_some_and(|at| at.elapsed() < CATALOG_REREAD_INTERVAL) {
            // Read moments ago (perhaps by the request this one waited for): the name is
            // unknown, not new.
            return Ok(self.catalog());
        }
        self.read_catalog(&mut read_at).await
    }
}
