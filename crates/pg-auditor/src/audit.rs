//! The audit run against a live database: one read-only repeatable-read snapshot, exported to
//! a few more connections that read the tables in parallel; every per-table statement under
//! its own savepoint, so one failure (a timeout, a lock, a permission) is recorded in that
//! table's entry and the rest of the report is complete.

use crate::catalog::{
    CATALOG_SQL, COLUMN_STATISTICS_SQL, Catalog, CatalogColumn, ColumnStatistics,
};
use crate::connect::{Target, connect};
use crate::plan::{self, CountPlan, TableProbe};
use crate::report::{
    AuditReport, ExactFigures, QueryFailure, Readings, SampleFigures, TableReading,
    VERSIONING_TABLES, VersioningReading, assemble,
};
use crate::settings::Settings;
use futures_util::future::{BoxFuture, join_all};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Why an audit produced no report at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("cannot open the read-only snapshot: {0}")]
    Snapshot(String),
    #[error("cannot read the catalog: {0}")]
    Catalog(String),
    #[error("the database connection failed during the audit: {0}")]
    Connection(String),
}

/// Describes a driver error with its SQLSTATE and the server's message (never the SQL).
pub fn failure(step: &str, error: &tokio_postgres::Error) -> QueryFailure {
    match error.as_db_error() {
        Some(db) => QueryFailure {
            step: step.to_owned(),
            sqlstate: Some(db.code().code().to_owned()),
            message: db.message().to_owned(),
        },
        None => QueryFailure {
            step: step.to_owned(),
            sqlstate: None,
            message: error.to_string(),
        },
    }
}

/// The statements that open the audit transaction. `READ ONLY` refuses every write; the
/// timeouts bound each statement and each lock wait.
pub fn begin_sql(settings: &Settings, snapshot: Option<&str>) -> String {
    let import = snapshot
        .map(|id| format!("SET TRANSACTION SNAPSHOT '{}';", id.replace('\'', "")))
        .unwrap_or_default();
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {import} \
         SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; \
         SET LOCAL idle_in_transaction_session_timeout = {};",
        settings.statement_timeout.as_millis(),
        settings.lock_timeout.as_millis(),
        // A worker left idle (its process killed mid-audit) must not hold locks for long.
        settings.statement_timeout.as_millis().max(60_000)
    )
}

/// Opens a connection in the audit's read-only snapshot.
pub async fn open_session(
    target: &Target,
    tls: &rustls::ClientConfig,
    settings: &Settings,
    snapshot: Option<&str>,
) -> Result<Client, AuditError> {
    let client = connect(target, tls)
        .await
        .map_err(|e| AuditError::Connect(failure("connect", &e).message))?;
    client
        .batch_execute(&begin_sql(settings, snapshot))
        .await
        .map_err(|e| AuditError::Snapshot(failure("begin", &e).message))?;
    Ok(client)
}

/// Runs `sql` under a savepoint: its failure leaves the transaction usable. The savepoint,
/// the statement and the rollback are pipelined (one round trip); rolling back (rather than
/// releasing) also frees the locks the statement took, so a long audit holds none.
async fn guarded(client: &Client, step: &str, sql: &str) -> GuardedResult {
    let statement = format!("SAVEPOINT probe; {sql}");
    let futures: Vec<BoxFuture<'_, Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>>> = vec![
        Box::pin(client.simple_query(&statement)),
        Box::pin(client.simple_query("ROLLBACK TO SAVEPOINT probe; RELEASE SAVEPOINT probe")),
    ];
    // join_all polls in order, so the messages go out in order.
    let mut results = join_all(futures).await.into_iter();
    let outcome = results.next().unwrap_or_else(|| Ok(Vec::new()));
    let cleanup = results.next().unwrap_or_else(|| Ok(Vec::new()));
    if let Err(e) = cleanup {
        return Err(Fatal(failure("rollback", &e).message));
    }
    Ok(outcome.map_err(|e| failure(step, &e)).map(|messages| {
        messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .collect()
    }))
}

/// The connection itself broke: no later statement can run on it.
struct Fatal(String);

type Rows = Vec<Vec<Option<String>>>;
type GuardedResult = Result<Result<Rows, QueryFailure>, Fatal>;

fn first_row(rows: Rows) -> Vec<Option<String>> {
    rows.into_iter().next().unwrap_or_default()
}

async fn read_table(client: &Client, probe: &TableProbe) -> Result<TableReading, Fatal> {
    let mut reading = TableReading::default();
    if let Some(sql) = &probe.exact {
        reading.exact = Some(guarded(client, "count", sql).await?.map(|rows| {
            let mut row = first_row(rows).into_iter();
            ExactFigures {
                count: row
                    .next()
                    .flatten()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                created_at_range: row.next().flatten(),
                created_by_values: row.next().flatten(),
            }
        }));
    }
    reading.sample = Some(
        guarded(client, "sample_records", &probe.sample)
            .await?
            .map(|rows| {
                let mut row = first_row(rows).into_iter();
                SampleFigures {
                    bytes: row.next().flatten().and_then(|n| n.parse().ok()),
                    rows: row.next().flatten().unwrap_or_else(|| "[]".to_owned()),
                }
            }),
    );
    if let Some(sql) = &probe.emptiness {
        reading.emptiness = Some(
            guarded(client, "emptiness", sql)
                .await?
                .map(|rows| first_row(rows).first().cloned().flatten().as_deref() == Some("t")),
        );
    }
    Ok(reading)
}

/// Reads tables from the shared queue until it is empty.
async fn drain(
    client: &Client,
    queue: &Mutex<VecDeque<usize>>,
    probes: &[TableProbe],
    readings: &Mutex<Vec<TableReading>>,
) -> Result<(), Fatal> {
    loop {
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some(index) = next else { return Ok(()) };
        let reading = read_table(client, &probes[index]).await?;
        if let Ok(mut all) = readings.lock() {
            all[index] = reading;
        }
    }
}

/// The whole audit. `timestamp` is the report's `audit_timestamp`.
pub async fn run(
    target: &Target,
    tls: &rustls::ClientConfig,
    settings: &Settings,
    timestamp: String,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let main = open_session(target, tls, settings, None).await?;
    // Workers share the snapshot. A server that cannot export one (some poolers) gets a
    // single-connection audit rather than an inconsistent one.
    let snapshot = match main.simple_query("SELECT pg_export_snapshot()").await {
        Ok(messages) => messages.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        }),
        Err(e) => {
            tracing::warn!(
                "cannot export the snapshot ({}); reading with one connection",
                failure("snapshot", &e).message
            );
            None
        }
    };
    let parallel = if snapshot.is_some() {
        settings.parallelism
    } else {
        1
    };
    let workers = async {
        let opened = join_all(
            (1..parallel).map(|_| open_session(target, tls, settings, snapshot.as_deref())),
        )
        .await;
        opened
            .into_iter()
            .filter_map(|outcome| match outcome {
                Ok(client) => Some(client),
                Err(e) => {
                    tracing::warn!("a parallel connection could not join the snapshot: {e}");
                    None
                }
            })
            .collect::<Vec<_>>()
    };
    let catalog = async {
        let rows = main
            .query(
                CATALOG_SQL,
                &[&settings.include_schemas, &settings.exclude_schemas],
            )
            .await
            .map_err(|e| AuditError::Catalog(failure("catalog", &e).message))?;
        let json: String = rows
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| AuditError::Catalog("no row".to_owned()))?;
        serde_json::from_str::<Catalog>(&json)
            .map_err(|e| AuditError::Catalog(format!("unexpected catalog shape: {e}")))
    };
    let (workers, catalog) = tokio::join!(workers, catalog);
    let catalog = catalog?;

    // Pure planning.
    let mut columns_of: HashMap<u32, Vec<&CatalogColumn>> = HashMap::new();
    for column in &catalog.columns {
        columns_of.entry(column.table_oid).or_default().push(column);
    }
    let empty = Vec::new();
    let plans: Vec<CountPlan> = catalog
        .tables
        .iter()
        .map(|t| plan::count_plan(t, settings.count_mode, settings.exact_count_threshold))
        .collect();
    let probes: Vec<TableProbe> = catalog
        .tables
        .iter()
        .zip(&plans)
        .map(|(table, &count)| {
            let columns = columns_of.get(&table.oid).unwrap_or(&empty);
            plan::probe(
                table,
                columns,
                count,
                plan::is_listed(table, &settings.expected_seed_tables),
                settings,
            )
        })
        .collect();
    let estimated_oids: Vec<i64> = catalog
        .tables
        .iter()
        .zip(&plans)
        .filter(|(_, p)| !matches!(p, CountPlan::Exact))
        .map(|(t, _)| i64::from(t.oid))
        .collect();
    let weights: Vec<f64> = catalog
        .tables
        .iter()
        .zip(&plans)
        .map(|(t, p)| match p {
            // An estimated table costs one cheap sample read.
            CountPlan::Exact => plan::catalog_estimate(t).map_or(1e9, |(rows, _)| rows),
            _ => 0.0,
        })
        .collect();
    let queue = Mutex::new(
        plan::read_order(&weights)
            .into_iter()
            .collect::<VecDeque<_>>(),
    );
    let readings = Mutex::new(vec![TableReading::default(); probes.len()]);

    // The main connection first reads what only it needs, then joins the table readers.
    let main_part = async {
        let statistics = if estimated_oids.is_empty() {
            Vec::new()
        } else {
            let names = vec!["created_by", "created_at"];
            let json: String = main
                .query(COLUMN_STATISTICS_SQL, &[&estimated_oids, &names])
                .await
                .ok()
                .and_then(|rows| rows.first().map(|r| r.get(0)))
                .unwrap_or_else(|| "[]".to_owned());
            serde_json::from_str::<Vec<ColumnStatistics>>(&json).unwrap_or_default()
        };
        let mut versioning = Vec::new();
        for name in VERSIONING_TABLES {
            let found = catalog
                .tables
                .iter()
                .find(|t| t.schema == settings.default_schema && t.table == name);
            let reading = match found {
                None => VersioningReading::Missing,
                Some(table) => {
                    let columns = columns_of.get(&table.oid).unwrap_or(&empty);
                    let sql = plan::contents_sql(table, columns, settings);
                    match guarded(&main, "contents", &sql).await? {
                        Ok(rows) => {
                            let mut row = first_row(rows).into_iter();
                            VersioningReading::Read {
                                count: row
                                    .next()
                                    .flatten()
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(0),
                                rows: row.next().flatten().unwrap_or_else(|| "[]".to_owned()),
                            }
                        }
                        Err(failure) => VersioningReading::Failed(failure),
                    }
                }
            };
            versioning.push(reading);
        }
        drain(&main, &queue, &probes, &readings).await?;
        Ok::<_, Fatal>((statistics, versioning))
    };
    let worker_parts = join_all(
        workers
            .iter()
            .map(|client| drain(client, &queue, &probes, &readings)),
    );
    let (main_outcome, worker_outcomes) = tokio::join!(main_part, worker_parts);
    let (statistics, versioning) =
        main_outcome.map_err(|Fatal(message)| AuditError::Connection(message))?;
    if let Some(Err(Fatal(message))) = worker_outcomes.into_iter().find(Result::is_err) {
        return Err(AuditError::Connection(message));
    }
    // Nothing was written (nothing could be): end the transactions quietly.
    let _ = main.batch_execute("ROLLBACK").await;
    for worker in &workers {
        let _ = worker.batch_execute("ROLLBACK").await;
    }
    let connections = 1 + workers.len();
    drop(workers);
    let readings = Readings {
        tables: readings.into_inner().unwrap_or_default(),
        statistics,
        versioning,
        connections,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(assemble(catalog, readings, settings, timestamp))
}
