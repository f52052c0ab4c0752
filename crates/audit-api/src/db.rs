//! The PostgreSQL adapter: the connection pool, embedded migrations, the catalog, inserts and
//! event queries. Every statement is parameterised; identifiers are never built from input.

use crate::event::{Catalog, NewEvent};
use crate::search::{EventRecord, Page};
use crate::sql::{self, Statement};
use audit_core::postgres::{DatabaseConfig, Target, tls_config};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::BoxFuture;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_postgres::Row;

/// The embedded migrations, applied in order, each once.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (
        2,
        "event_chain",
        include_str!("../migrations/0002_event_chain.sql"),
    ),
    (
        3,
        "message_hours",
        include_str!("../migrations/0003_message_hours.sql"),
    ),
    (
        4,
        "qualified_calls",
        include_str!("../migrations/0004_qualified_calls.sql"),
    ),
];

/// Any two processes migrating or maintaining at once serialise on these advisory locks.
const MIGRATION_LOCK: i64 = 0x6175_6469_7461_7069; // "auditapi"
pub const MAINTENANCE_LOCK: i64 = 0x6175_6469_746d_6e74; // "auditmnt"
pub const PARTITION_LOCK: i64 = 0x6175_6469_7470_7274; // "auditprt"

/// Session settings of every connection.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `LOCAL_TIMEZONE`: how timestamps without an offset are read.
    pub local_timezone: String,
    /// `STATEMENT_TIMEOUT_MS`.
    pub statement_timeout_ms: u64,
}

/// A resolved target and its TLS configuration, replaced when credentials are refreshed.
#[derive(Debug)]
struct Resolved {
    target: Target,
    tls: rustls::ClientConfig,
}

/// deadpool's connector: connects with the current credentials (a rotated secret or a new
/// IAM token is picked up without restarting the pool).
struct CurrentTarget(Arc<RwLock<Arc<Resolved>>>);

impl deadpool_postgres::Connect for CurrentTarget {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let current = self
            .0
            .read()
            .map(|guard| Arc::clone(&guard))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        Box::pin(async move {
            let connected =
                audit_core::postgres::connect_with_task(&current.target, &current.tls).await?;
            Ok((connected.client, connected.task))
        })
    }
}

/// The pool and what it needs to refresh its credentials.
#[derive(Clone)]
pub struct Database {
    pub pool: Pool,
    current: Arc<RwLock<Arc<Resolved>>>,
    settings: SessionSettings,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Why the pool could not be set up over a target.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Resolve(#[from] audit_core::postgres::ResolveError),
    #[error(transparent)]
    Tls(#[from] audit_core::postgres::TargetError),
    #[error("connection pool: {0}")]
    Pool(String),
}

fn prepare(mut target: Target, settings: &SessionSettings) -> Result<Resolved, SetupError> {
    // JIT off: it compiles plans estimated as expensive (a trigram search over twelve
    // partitions is), which costs tens of milliseconds a request and saves nothing on queries
    // that stop after one page.
    target.config.options(format!(
        "-c TimeZone={} -c statement_timeout={} -c jit=off",
        settings.local_timezone, settings.statement_timeout_ms
    ));
    target.config.connect_timeout(Duration::from_secs(5));
    let tls = tls_config(&target)?;
    Ok(Resolved { target, tls })
}

impl Database {
    /// A pool of at most `max_size` connections over `target`. Connections open lazily.
    pub fn new(
        target: Target,
        settings: SessionSettings,
        max_size: usize,
    ) -> Result<Self, SetupError> {
        let current = Arc::new(RwLock::new(Arc::new(prepare(target, &settings)?)));
        let manager = Manager::from_connect(
            tokio_postgres::Config::new(),
            CurrentTarget(Arc::clone(&current)),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| SetupError::Pool(e.to_string()))?;
        Ok(Database {
            pool,
            current,
            settings,
        })
    }

    /// Every `every`, resolves the credentials again (secret rotation, IAM tokens live 15
    /// minutes). A failed refresh keeps the previous credentials and says so.
    pub fn refresh_every(
        &self,
        config: DatabaseConfig,
        aws: Option<(aws_config::SdkConfig, aws_sdk_secretsmanager::Client)>,
        every: Duration,
    ) {
        let current = Arc::clone(&self.current);
        let settings = self.settings.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let resolved = config
                    .resolve(aws.as_ref().map(|(sdk, secrets)| (sdk, secrets)))
                    .await
                    .map_err(SetupError::from)
                    .and_then(|target| prepare(target, &settings));
                match resolved {
                    Ok(resolved) => {
                        if let Ok(mut guard) = current.write() {
                            *guard = Arc::new(resolved);
                        }
                    }
                    Err(e) => tracing::warn!("cannot refresh database credentials: {e}"),
                }
            }
        });
    }

    /// A connection outside the pool, with the pool's current credentials and session
    /// settings (the healthcheck's own, see [`crate::health`]).
    pub async fn dedicated_connection(&self) -> Result<tokio_postgres::Client, String> {
        let current = self
            .current
            .read()
            .map(|guard| Arc::clone(&guard))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        audit_core::postgres::connect_with_task(&current.target, &current.tls)
            .await
            .map(|connected| connected.client)
            .map_err(|e| e.to_string())
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }
}

/// A database failure, classified for the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had: 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The event's month has no partition (too old, or beyond the months made ahead).
    #[error("no partition for the event's month")]
    NoPartition,
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
}

fn classify(e: tokio_postgres::Error) -> DbError {
    // 23514 is check_violation; routing a row to no partition raises it with this text.
    if e.as_db_error().is_some_and(|d| {
        d.code() == &tokio_postgres::error::SqlState::CHECK_VIOLATION
            && d.message().starts_with("no partition of relation")
    }) {
        return DbError::NoPartition;
    }
    if e.is_closed() || e.as_db_error().is_none() {
        return DbError::Unavailable(e.to_string());
    }
    DbError::Query(e)
}

/// Applies the pending migrations under an advisory lock (two instances starting at once
/// apply each migration once), then returns how many were applied. With nothing pending it
/// only reads: the application's role (which may not create anything) starts on a migrated
/// database.
pub async fn migrate(db: &Database) -> Result<usize, DbError> {
    migrate_to(db, i32::MAX).await
}

/// [`migrate`], up to and including `last` (a test starts from an older schema).
pub async fn migrate_to(db: &Database, last: i32) -> Result<usize, DbError> {
    let mut client = db.client().await?;
    let wanted = || MIGRATIONS.iter().filter(|(v, _, _)| *v <= last);
    if applied_migrations(&client)
        .await?
        .is_some_and(|applied| wanted().all(|(version, _, _)| applied.contains(version)))
    {
        return Ok(0);
    }
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(classify)?;
    // A migration builds indexes over every stored event (0003: ~2 minutes at 5,000,000):
    // the requests' statement timeout is not its limit.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(classify)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS audit_api_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(classify)?;
    let applied = applied_migrations(&tx).await?.unwrap_or_default();
    let mut count = 0;
    for (version, name, sql) in wanted() {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(classify)?;
        tx.execute(
            "INSERT INTO audit_api_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(classify)?;
        count += 1;
    }
    tx.commit().await.map_err(classify)?;
    Ok(count)
}

/// The applied migrations, `None` before the first.
async fn applied_migrations(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<Vec<i32>>, DbError> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('audit_api_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(classify)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(Some(
        client
            .query("SELECT version FROM audit_api_migrations", &[])
            .await
            .map_err(classify)?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    ))
}

/// The functionalities and event types.
pub async fn load_catalog(db: &Database) -> Result<Catalog, DbError> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT f.id, f.name::text, t.id, t.name::text FROM auditfunctionalities f \
             LEFT JOIN auditeventtypes t ON t.functionalityid = f.id ORDER BY f.id, t.id",
            &[],
        )
        .await
        .map_err(classify)?;
    Ok(Catalog::from_rows(rows.iter().map(|r| {
        let type_id: Option<i32> = r.get(2);
        let type_name: Option<String> = r.get(3);
        (r.get(0), r.get(1), type_id.zip(type_name))
    })))
}

/// How common each trigram is among stored messages, from a block sample of about
/// `sample_rows` of them (all of a small table), split into trigrams by pg_trgm itself. Two
/// statements: the table's estimated size, then the sample.
pub async fn trigram_frequencies(
    db: &Database,
    sample_rows: i64,
) -> Result<crate::trigram::TrigramFrequencies, DbError> {
    let client = db.client().await?;
    let estimated: f64 = client
        .query_one(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 \
             FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'public.auditevents'::pg_catalog.regclass",
            &[],
        )
        .await
        .map_err(classify)?
        .try_get(0)?;
    // Never analysed (0): read everything, up to the limit.
    let percent = if estimated < 1.0 {
        100.0
    } else {
        (100.0 * sample_rows as f64 / estimated).clamp(0.0001, 100.0) as f32
    };
    let rows = client
        .query(
            "WITH s AS (SELECT e.message FROM public.auditevents e TABLESAMPLE SYSTEM ($1) \
                        WHERE e.message IS NOT NULL LIMIT $2) \
             SELECT t.trigram, count(*), (SELECT count(*) FROM s) \
             FROM s, LATERAL pg_catalog.unnest(public.show_trgm(s.message)) AS t (trigram) \
             GROUP BY t.trigram HAVING count(*) * 100 >= (SELECT count(*) FROM s)",
            &[&percent, &(sample_rows * 4)],
        )
        .await
        .map_err(classify)?;
    let sampled = rows.first().map_or(Ok(0), |r| r.try_get(2))?;
    let counts = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, i64)>, DbError>>()?;
    Ok(crate::trigram::TrigramFrequencies::from_counts(
        counts, sampled,
    ))
}

/// Stores events in one statement (the append function): all or none, one round trip for a
/// batch, each event a link of its company's chain. Returns the stored rows in input order.
pub async fn insert_events(
    db: &Database,
    events: &[NewEvent],
) -> Result<Vec<EventRecord>, DbError> {
    let mut timestamps = Vec::with_capacity(events.len());
    let mut functionalities = Vec::with_capacity(events.len());
    let mut event_types = Vec::with_capacity(events.len());
    let mut stores = Vec::with_capacity(events.len());
    let mut companies = Vec::with_capacity(events.len());
    let mut users = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    let mut statuses = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    for e in events {
        timestamps.push(e.timestamp.as_ref().map(|t| t.0.as_str()));
        functionalities.push(e.functionality_id);
        event_types.push(e.event_type_id);
        stores.push(e.store_id);
        companies.push(e.company_id);
        users.push(e.user.as_deref());
        messages.push(e.message.as_deref());
        statuses.push(e.status.as_str());
        data.push(e.additional_data.as_ref().map(|d| d.as_str()));
    }
    let client = db.client().await?;
    let statement = client
        .prepare_cached(INSERT_EVENTS)
        .await
        .map_err(classify)?;
    let rows = client
        .query(
            &statement,
            &[
                &timestamps,
                &functionalities,
                &event_types,
                &stores,
                &companies,
                &users,
                &messages,
                &statuses,
                &data,
            ],
        )
        .await
        .map_err(classify)?;
    rows.iter().map(event_record).collect()
}

/// The append function (migration 0002) numbers, hashes and stores the events in input
/// order, extending each company's chain under its head's row lock; it answers the stored
/// rows with the catalog's names, in input order.
const INSERT_EVENTS: &str = "SELECT * FROM audit_api_append_events($1::text[], $2::int[], \
    $3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[])";

/// One row of [`crate::sql::EVENT_SELECT`] (or the insert's answer).
pub fn event_record(row: &Row) -> Result<EventRecord, DbError> {
    Ok(EventRecord {
        id: row.try_get(0)?,
        event_timestamp: row.try_get(1)?,
        functionality: row.try_get(2)?,
        event_type: row.try_get(3)?,
        store_id: row.try_get(4)?,
        company_id: row.try_get(5)?,
        user: row.try_get(6)?,
        message: row.try_get(7)?,
        status: row.try_get(8)?,
        // jsonb as text: numbers exactly as stored.
        additional_data: row
            .try_get::<_, Option<String>>(9)?
            .as_deref()
            .and_then(crate::json_text::JsonText::compact),
    })
}

/// A pooled connection and `sql` prepared on it (cached per connection: each search shape
/// is parsed and planned once per connection).
async fn prepared(
    db: &Database,
    sql: &str,
) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), DbError> {
    let client = db.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    Ok((client, statement))
}

/// Runs an event query and returns its rows.
pub async fn query_events(
    db: &Database,
    statement: &Statement,
) -> Result<Vec<EventRecord>, DbError> {
    let (client, prepared) = prepared(db, &statement.sql).await?;
    let rows = client
        .query(&prepared, &statement.param_refs())
        .await
        .map_err(classify)?;
    rows.iter().map(event_record).collect()
}

/// A search for a pattern of common words ([`crate::trigram::PatternLookup::ByHour`]): the
/// newest rows first ([`sql::walk_events`]), and when they hold too few matches (a burst of
/// rows that do not match), newest hour first ([`sql::select_events_by_hour`]). Either
/// statement alone has a case it is slow in (the walk: a burst that does not match; the
/// hours: one that does); one after the other, neither's. `budget`: the rows the walk reads
/// ([`sql::walk_budget`]).
pub async fn search_common_pattern(
    db: &Database,
    selection: &sql::Selection,
    trigrams: &[String],
    page: &Page,
    limit: i64,
    budget: i64,
) -> Result<Vec<EventRecord>, DbError> {
    let client = db.client().await?;
    let run = async |statement: &Statement| {
        let prepared = client
            .prepare_cached(&statement.sql)
            .await
            .map_err(classify)?;
        client
            .query(&prepared, &statement.param_refs())
            .await
            .map_err(classify)
    };
    let found = run(&sql::walk_events(selection, page, limit, budget))
        .await?
        .iter()
        .map(event_record)
        .collect::<Result<Vec<_>, _>>()?;
    if !sql::walk_fell_short(found.len(), limit) {
        return Ok(found);
    }
    // The hours from the top again rather than from where the walk stopped: the rows it
    // found are a few index probes to find again, and knowing where it stopped would cost a
    // second pass over every row it read.
    let hours = sql::select_events_by_hour(selection, trigrams, page, limit);
    run(&hours).await?.iter().map(event_record).collect()
}

/// The count a [`crate::sql::count_events`] statement returns.
pub async fn count_events(db: &Database, statement: &Statement) -> Result<i64, DbError> {
    let (client, prepared) = prepared(db, &statement.sql).await?;
    let row = client
        .query_one(&prepared, &statement.param_refs())
        .await
        .map_err(classify)?;
    Ok(row.try_get(0)?)
}

/// Streams an event query's rows into `sink` as they arrive (the export), without holding
/// the result. Stops early when `sink` refuses more.
pub async fn stream_events(
    db: &Database,
    statement: &Statement,
    sink: tokio::sync::mpsc::Sender<EventRecord>,
) -> Result<u64, DbError> {
    use futures_util::StreamExt as _;
    let (client, prepared) = prepared(db, &statement.sql).await?;
    let rows = client
        .query_raw(&prepared, statement.param_refs())
        .await
        .map_err(classify)?;
    let mut rows = std::pin::pin!(rows);
    let mut count = 0;
    while let Some(row) = rows.next().await {
        let record = event_record(&row.map_err(classify)?)?;
        if sink.send(record).await.is_err() {
            break;
        }
        count += 1;
    }
    Ok(count)
}
