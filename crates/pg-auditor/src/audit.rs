//! The audit run against a live database: one read-only repeatable-read snapshot, exported to
//! a few more connections that read the tables in parallel; every statement under its own
//! savepoint, so one failure (a timeout, a lock, a permission) is recorded in that table's
//! entry and the rest of the report is complete. The catalog is read a few schemas at a time
//! by whichever connection is free, and each part's tables are read as soon as its catalog is;
//! small tables are read many to a statement (the empty ones found first, with one more), and
//! a batch that fails is read again table by table, so its failure still lands on one table.

use crate::catalog::{
    CATALOG_SQL, CHUNKS_SQL, COLUMN_STATISTICS_SQL, Catalog, CatalogChunk, CatalogColumn,
    CatalogPart, ColumnStatistics, LOCKED_RELATIONS_SQL, LockedRelation, catalog_parts,
};
use crate::connect::{Target, connect};
use crate::output::PartSink;
use crate::plan::{self, CountPlan, TableProbe};
use crate::reading::{ExactFigures, QueryFailure, SampleFigures, TableReading};
use crate::report::{AuditReport, RunFacts, Totals, assemble_part};
use crate::settings::Settings;
use crate::versioning::{VERSIONING_TABLES, VersioningReading};
use futures_util::future::join_all;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Notify;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

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
    #[error("cannot write the report: {0}")]
    Report(#[from] crate::output::OutputError),
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

/// The statements that open the audit transaction, each sent alone. `READ ONLY` refuses
/// every write; the timeouts bound each statement and each lock wait; `search_path` holds only
/// `pg_catalog` (and `pg_temp`, last, which is never searched for functions), so no function
/// or operator a database user created can stand in for a built-in one.
pub fn begin_sql(settings: &Settings, snapshot: Option<&str>) -> Vec<String> {
    let mut statements = vec![
        "SET search_path = pg_catalog, pg_temp".to_owned(),
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned(),
    ];
    if let Some(id) = snapshot.filter(|id| is_snapshot_id(id)) {
        statements.push(format!("SET TRANSACTION SNAPSHOT '{id}'"));
    }
    statements.extend([
        format!(
            "SET LOCAL statement_timeout = {}",
            settings.statement_timeout.as_millis()
        ),
        format!(
            "SET LOCAL lock_timeout = {}",
            settings.lock_timeout.as_millis()
        ),
        format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}",
            // A worker left idle (its process killed mid-audit) must not hold locks for long.
            settings.statement_timeout.as_millis().max(60_000)
        ),
    ]);
    statements
}

/// A snapshot id is hex digits and dashes (`00000003-0000001B-1`): anything else is not one,
/// and is never put into a statement.
pub fn is_snapshot_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Every statement of the audit runs after this savepoint and is rolled back to it
/// ([`guarded_rows`]); a rollback keeps the savepoint, so it is made once per session, after
/// the snapshot is exported (PostgreSQL exports none from a subtransaction).
const SAVEPOINT: &str = "SAVEPOINT probe";

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
    if snapshot.is_some_and(|id| !is_snapshot_id(id)) {
        return Err(AuditError::Snapshot(
            "the exported snapshot id is malformed".to_owned(),
        ));
    }
    let mut statements = begin_sql(settings, snapshot);
    if snapshot.is_some() {
        // A worker exports nothing: its savepoint can be made at once.
        statements.push(SAVEPOINT.to_owned());
    }
    for statement in statements {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| AuditError::Snapshot(failure("begin", &e).message))?;
    }
    Ok(client)
}

/// Runs `sql` under the session's savepoint: its failure leaves the transaction usable. `sql`
/// is one statement, sent through the extended protocol (Parse, Bind, Execute: PostgreSQL
/// refuses a second statement there), followed by the constant `ROLLBACK TO SAVEPOINT`; both
/// are pipelined (one round trip). Rolling back also frees the locks the statement took, so a
/// long audit holds none, and keeps the savepoint for the next statement.
async fn guarded_rows(
    client: &Client,
    step: &str,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Result<Vec<Row>, QueryFailure>, Fatal> {
    // tokio::join! polls in order, and each call sends its messages on its first poll: the
    // messages go out in this order.
    let (outcome, cleanup) = tokio::join!(
        client.query_typed(sql, params),
        client.batch_execute("ROLLBACK TO SAVEPOINT probe"),
    );
    if let Err(e) = cleanup {
        return Err(Fatal(failure("rollback", &e).message));
    }
    Ok(outcome.map_err(|e| failure(step, &e)))
}

/// [`guarded_rows`] for the per-table statements, whose columns are all text.
async fn guarded(client: &Client, step: &str, sql: &str) -> GuardedResult {
    Ok(guarded_rows(client, step, sql, &[]).await?.map(|rows| {
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, Option<String>>(i).ok().flatten())
                    .collect()
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

/// SQLSTATE `lock_not_available`: `lock_timeout` expired.
const LOCK_NOT_AVAILABLE: &str = "55P03";

fn is_lock_timeout(failure: &QueryFailure) -> bool {
    failure.sqlstate.as_deref() == Some(LOCK_NOT_AVAILABLE)
}

/// Relations held (or awaited) ACCESS EXCLUSIVE by other sessions now.
async fn locked_relations(client: &Client) -> Result<Vec<LockedRelation>, Fatal> {
    Ok(
        match guarded_rows(client, "locks", LOCKED_RELATIONS_SQL, &[]).await? {
            Ok(rows) => rows
                .first()
                .and_then(|row| row.try_get::<_, String>(0).ok())
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            Err(failure) => {
                tracing::warn!(
                    "cannot read pg_locks ({}); deparsing every table",
                    failure.message
                );
                Vec::new()
            }
        },
    )
}

/// Adds "locked by pid N" to a lock-timeout failure when another session holds the table.
async fn name_the_holder(
    client: &Client,
    oid: u32,
    mut failure: QueryFailure,
) -> Result<QueryFailure, Fatal> {
    if is_lock_timeout(&failure) {
        let holders: Vec<i32> = locked_relations(client)
            .await?
            .iter()
            .filter(|l| l.oid == oid && l.granted)
            .map(|l| l.pid)
            .collect();
        if !holders.is_empty() {
            failure.message = format!(
                "{} (locked by pid {})",
                failure.message,
                join_pids(&holders)
            );
        }
    }
    Ok(failure)
}

fn join_pids(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The exact statement's row: count, creation range, creators.
fn exact_figures(row: Vec<Option<String>>) -> ExactFigures {
    let mut row = row.into_iter();
    ExactFigures {
        count: row
            .next()
            .flatten()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        created_at_range: row.next().flatten(),
        created_by_values: row.next().flatten(),
    }
}

/// The sample statement's row: size, sample rows.
fn sample_figures(row: Vec<Option<String>>, patterns: &[String]) -> SampleFigures {
    let mut row = row.into_iter();
    SampleFigures {
        bytes: row.next().flatten().and_then(|n| n.parse().ok()),
        // Keys inside json/jsonb values are redacted here: the select list can only replace
        // whole columns.
        rows: row
            .next()
            .flatten()
            .map(|rows| plan::redact_json_keys(&rows, patterns))
            .unwrap_or_else(|| "[]".to_owned()),
    }
}

/// Reads small tables: the empty ones found with one statement ([`plan::EMPTY_TABLES_SQL`]),
/// the others read with one more ([`plan::batch_sql`]). If that fails, or does not answer one
/// row per table, each of them is read alone, so a failure lands on its own table and names
/// it as a single read would.
async fn read_batch(
    client: &Client,
    tables: &[(u32, TableProbe)],
    patterns: &[String],
    statements: &AtomicU64,
) -> Result<Vec<TableReading>, Fatal> {
    let mut readings: Vec<Option<TableReading>> = tables.iter().map(|_| None).collect();
    // Empty tables first: their figures are known without reading them.
    let oids: Vec<i64> = tables.iter().map(|(oid, _)| i64::from(*oid)).collect();
    statements.fetch_add(1, Ordering::Relaxed);
    if let Ok(rows) = guarded_rows(
        client,
        "emptiness",
        plan::EMPTY_TABLES_SQL,
        &[(&oids, Type::INT8_ARRAY)],
    )
    .await?
    {
        for row in rows {
            let Ok(oid) = row.try_get::<_, i64>(0) else {
                continue;
            };
            if let Some(position) = oids.iter().position(|&o| o == oid) {
                readings[position] = Some(TableReading::of_empty_table());
            }
        }
    }
    let unread: Vec<usize> = (0..tables.len())
        .filter(|&p| readings[p].is_none())
        .collect();
    let probes: Vec<&TableProbe> = unread.iter().map(|&p| &tables[p].1).collect();
    if let Some(sql) = plan::batch_sql(&probes).filter(|_| !probes.is_empty()) {
        statements.fetch_add(1, Ordering::Relaxed);
        if let Ok(rows) = guarded(client, "batch", &sql).await? {
            let mut read: Vec<Option<TableReading>> = unread.iter().map(|_| None).collect();
            for row in rows {
                let mut row = row.into_iter();
                let position = row.next().flatten().and_then(|i| i.parse::<usize>().ok());
                let Some(slot) = position.and_then(|i| read.get_mut(i)) else {
                    continue;
                };
                let exact: Vec<Option<String>> = row.by_ref().take(3).collect();
                *slot = Some(TableReading {
                    exact: Some(Ok(exact_figures(exact))),
                    sample: Some(Ok(sample_figures(row.collect(), patterns))),
                    ..TableReading::default()
                });
            }
            // All or nothing: a batch that did not answer one row per table is read again.
            if read.iter().all(Option::is_some) {
                for (&p, reading) in unread.iter().zip(read) {
                    readings[p] = reading;
                }
            }
        }
    }
    let mut all = Vec::with_capacity(tables.len());
    for (reading, (oid, probe)) in readings.into_iter().zip(tables) {
        all.push(match reading {
            Some(reading) => reading,
            None => read_table(client, *oid, probe, patterns, statements).await?,
        });
    }
    Ok(all)
}

/// Reads one table. After a lock timeout the table's other statements would only wait as
/// long again: they are skipped, and the failure names the lock's holder.
async fn read_table(
    client: &Client,
    oid: u32,
    probe: &TableProbe,
    patterns: &[String],
    statements: &AtomicU64,
) -> Result<TableReading, Fatal> {
    let mut reading = TableReading::default();
    let step = async |name: &str, sql: &str| -> Result<Result<Rows, QueryFailure>, Fatal> {
        statements.fetch_add(1, Ordering::Relaxed);
        Ok(match guarded(client, name, sql).await? {
            Ok(rows) => Ok(rows),
            Err(failure) => Err(name_the_holder(client, oid, failure).await?),
        })
    };
    let locked =
        |outcome: &Result<Rows, QueryFailure>| outcome.as_ref().is_err_and(is_lock_timeout);
    if let Some(sql) = &probe.exact {
        let outcome = step("count", sql).await?;
        let stop = locked(&outcome);
        reading.exact = Some(outcome.map(|rows| exact_figures(first_row(rows))));
        if stop {
            return Ok(reading);
        }
    }
    let outcome = step("sample_records", &probe.sample).await?;
    let stop = locked(&outcome);
    reading.sample = Some(outcome.map(|rows| sample_figures(first_row(rows), patterns)));
    if stop {
        return Ok(reading);
    }
    if let Some(sql) = &probe.emptiness {
        reading.emptiness = Some(
            step("emptiness", sql)
                .await?
                .map(|rows| first_row(rows).first().cloned().flatten().as_deref() == Some("true")),
        );
    }
    Ok(reading)
}

/// How many times a catalog part is read again when a table was locked between the look at
/// `pg_locks` and the catalog statement.
const CATALOG_ATTEMPTS: usize = 3;

/// What one connection does next: read a part's catalog (a few schemas, [`catalog_parts`]),
/// or some of a part's tables.
enum Unit {
    Catalog(usize),
    Tables(usize, Vec<usize>),
}

/// One catalog part, planned, and what its tables' statements returned so far.
struct Part {
    catalog: Catalog,
    probes: Vec<(u32, TableProbe)>,
    readings: Vec<TableReading>,
    statistics: Vec<ColumnStatistics>,
}

/// What the connections share. A part's tables go to the front of the queue as soon as its
/// catalog is read, so every connection reads catalog and tables alike and none waits for
/// the whole catalog (at 100,000 tables, 50 catalog statements of about half a second each).
/// A part whose tables are all read is assembled and handed to the sink at once: at most a
/// few parts are held at any time, whatever the size of the database.
struct Work<'s> {
    queue: VecDeque<Unit>,
    parts: Vec<Option<Part>>,
    /// Batches of each part not yet read.
    pending: Vec<usize>,
    /// Catalog statements running now: their tables are still to come.
    reading_catalog: usize,
    failed: bool,
    /// Developer names for the page's rows (the versioning tables are read first).
    names: HashMap<String, String>,
    totals: Totals,
    sink: &'s mut dyn PartSink,
}

impl Work<'_> {
    /// Assembles a part whose tables are all read and hands it over.
    fn finish_part(
        &mut self,
        index: usize,
        part: Part,
        settings: &Settings,
    ) -> Result<(), AuditError> {
        let report = assemble_part(part.catalog, part.readings, &part.statistics, settings);
        self.totals.add(index, &report, settings);
        self.sink.part(index, report, &self.names)?;
        Ok(())
    }
}

/// Runs the catalog statement for `part` (only the tables named in `only`, when given),
/// reading it again when a table was locked between the look at `pg_locks` and the statement.
async fn read_catalog(
    client: &Client,
    part: &CatalogPart,
    only: Option<Vec<String>>,
    settings: &Settings,
) -> Result<(Catalog, Vec<LockedRelation>), AuditError> {
    let fatal = |Fatal(message)| AuditError::Connection(message);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let locked = locked_relations(client).await.map_err(fatal)?;
        let oids: Vec<i64> = locked.iter().map(|l| i64::from(l.oid)).collect();
        let outcome = guarded_rows(
            client,
            "catalog",
            CATALOG_SQL,
            &[
                (&part.schemas, Type::TEXT_ARRAY),
                (&settings.exclude_schemas, Type::TEXT_ARRAY),
                (&oids, Type::INT8_ARRAY),
                (&part.from, Type::TEXT),
                (&part.to, Type::TEXT),
                (&only, Type::TEXT_ARRAY),
            ],
        )
        .await
        .map_err(fatal)?;
        let rows = match outcome {
            Ok(rows) => rows,
            Err(failure) if is_lock_timeout(&failure) && attempt < CATALOG_ATTEMPTS => {
                tracing::warn!("a table was locked while the catalog was read; reading it again");
                continue;
            }
            Err(failure) => return Err(AuditError::Catalog(failure.message)),
        };
        // Parsed where the driver received it: the text is a few megabytes per part.
        let json: &str = rows
            .first()
            .and_then(|row| row.try_get(0).ok())
            .ok_or_else(|| AuditError::Catalog("no row".to_owned()))?;
        let catalog = serde_json::from_str::<Catalog>(json)
            .map_err(|e| AuditError::Catalog(format!("unexpected catalog shape: {e}")))?;
        return Ok((catalog, locked));
    }
}

/// Reads one part's catalog, retrying when a table was locked in between, and plans it: the
/// statements for each table, the tables another session holds, the column statistics of the
/// tables whose counts are estimated.
async fn read_part(
    client: &Client,
    part: &CatalogPart,
    settings: &Settings,
) -> Result<(Part, Vec<Vec<usize>>), AuditError> {
    let fatal = |Fatal(message)| AuditError::Connection(message);
    let (catalog, locked) = read_catalog(client, part, None, settings).await?;

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
    let probes: Vec<(u32, TableProbe)> = catalog
        .tables
        .iter()
        .zip(&plans)
        .map(|(table, &count)| {
            let columns = columns_of.get(&table.oid).unwrap_or(&empty);
            let probe = plan::probe(
                table,
                columns,
                count,
                plan::is_listed(&table.schema, &table.table, &settings.expected_seed_tables),
                settings,
            );
            (table.oid, probe)
        })
        .collect();
    drop(columns_of);
    // A table another session holds ACCESS EXCLUSIVE is reported from its catalog rows, with
    // the lock as its error: reading it would wait `lock_timeout` per statement.
    let mut readings = vec![TableReading::default(); probes.len()];
    for (reading, table) in readings.iter_mut().zip(&catalog.tables) {
        let holders: Vec<i32> = locked
            .iter()
            .filter(|l| l.oid == table.oid)
            .map(|l| l.pid)
            .collect();
        if !holders.is_empty() {
            reading.describe = Some(QueryFailure {
                step: "describe".to_owned(),
                sqlstate: Some(LOCK_NOT_AVAILABLE.to_owned()),
                message: format!(
                    "locked by pid {} (ACCESS EXCLUSIVE): column defaults, index definitions, \
                     counts and samples not read",
                    join_pids(&holders)
                ),
            });
        }
    }
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
    let order: Vec<usize> = plan::read_order(&weights)
        .into_iter()
        .filter(|&i| readings[i].describe.is_none())
        .collect();
    let batches = plan::batches(&order, |i| plan::batchable(&probes[i].1));

    let estimated_oids: Vec<i64> = catalog
        .tables
        .iter()
        .zip(&plans)
        .filter(|(_, p)| !matches!(p, CountPlan::Exact))
        .map(|(t, _)| i64::from(t.oid))
        .collect();
    let statistics = if estimated_oids.is_empty() {
        Vec::new()
    } else {
        let names = vec!["created_by", "created_at"];
        let outcome = guarded_rows(
            client,
            "statistics",
            COLUMN_STATISTICS_SQL,
            &[
                (&estimated_oids, Type::INT8_ARRAY),
                (&names, Type::TEXT_ARRAY),
            ],
        )
        .await
        .map_err(fatal)?;
        let json = match outcome {
            Ok(rows) => rows.first().and_then(|r| r.try_get::<_, String>(0).ok()),
            Err(failure) => {
                tracing::warn!("column statistics not read: {}", failure.message);
                None
            }
        };
        json.and_then(|json| serde_json::from_str::<Vec<ColumnStatistics>>(&json).ok())
            .unwrap_or_default()
    };
    let part = Part {
        catalog,
        probes,
        readings,
        statistics,
    };
    Ok((part, batches))
}

/// One connection's share: units from the shared queue until none is left and no catalog
/// statement still running can add more. The first failure stops every connection.
async fn work(
    client: &Client,
    shared: &Mutex<Work<'_>>,
    wake: &Notify,
    parts: &[CatalogPart],
    settings: &Settings,
    statements: &AtomicU64,
) -> Result<(), AuditError> {
    loop {
        // Made before the queue is looked at: a wake-up in between is not missed.
        let woken = wake.notified();
        let unit = {
            let mut work = lock(shared)?;
            if work.failed {
                return Ok(());
            }
            match work.queue.pop_front() {
                Some(Unit::Catalog(part)) => {
                    work.reading_catalog += 1;
                    Some(Unit::Catalog(part))
                }
                Some(unit) => Some(unit),
                None if work.reading_catalog == 0 => return Ok(()),
                None => None,
            }
        };
        let Some(unit) = unit else {
            woken.await;
            continue;
        };
        let outcome = run_unit(client, shared, unit, parts, settings, statements).await;
        if outcome.is_err()
            && let Ok(mut work) = shared.lock()
        {
            work.failed = true;
        }
        // A part's batches may have joined the queue, or the audit failed: either way the
        // connections waiting for work look again.
        wake.notify_waiters();
        outcome?;
    }
}

fn lock<'a, 's>(
    shared: &'a Mutex<Work<'s>>,
) -> Result<std::sync::MutexGuard<'a, Work<'s>>, AuditError> {
    shared
        .lock()
        .map_err(|_| AuditError::Connection("a connection's task panicked".to_owned()))
}

/// Does one unit: reads a part's catalog and queues its batches, or reads a batch and, when
/// it was the part's last, hands the part over.
async fn run_unit(
    client: &Client,
    shared: &Mutex<Work<'_>>,
    unit: Unit,
    parts: &[CatalogPart],
    settings: &Settings,
    statements: &AtomicU64,
) -> Result<(), AuditError> {
    let patterns = &settings.sensitive_column_patterns;
    let fatal = |Fatal(message)| AuditError::Connection(message);
    match unit {
        Unit::Catalog(index) => {
            let (part, batches) = read_part(client, &parts[index], settings).await?;
            let mut work = lock(shared)?;
            work.reading_catalog -= 1;
            work.pending[index] = batches.len();
            if batches.is_empty() {
                return work.finish_part(index, part, settings);
            }
            for batch in batches.into_iter().rev() {
                work.queue.push_front(Unit::Tables(index, batch));
            }
            work.parts[index] = Some(part);
        }
        Unit::Tables(index, batch) => {
            let tables: Vec<(u32, TableProbe)> = {
                let work = lock(shared)?;
                let part = work.parts[index].as_ref().ok_or_else(|| {
                    AuditError::Connection("a part was read before its catalog".to_owned())
                })?;
                batch.iter().map(|&i| part.probes[i].clone()).collect()
            };
            let read = match tables.as_slice() {
                [(oid, probe)] if !plan::batchable(probe) => vec![
                    read_table(client, *oid, probe, patterns, statements)
                        .await
                        .map_err(fatal)?,
                ],
                _ => read_batch(client, &tables, patterns, statements)
                    .await
                    .map_err(fatal)?,
            };
            let mut work = lock(shared)?;
            if let Some(part) = work.parts[index].as_mut() {
                for (i, reading) in batch.into_iter().zip(read) {
                    part.readings[i] = reading;
                }
            }
            work.pending[index] -= 1;
            if work.pending[index] == 0
                && let Some(part) = work.parts[index].take()
            {
                return work.finish_part(index, part, settings);
            }
        }
    }
    Ok(())
}

/// The versioning tables' contents, read before any part: the developer names they hold go
/// into every table's row of the page. `catalog` holds the versioning tables' catalog rows.
async fn read_versioning(
    client: &Client,
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Vec<VersioningReading>, Fatal> {
    let patterns = &settings.sensitive_column_patterns;
    let mut versioning = Vec::new();
    for name in VERSIONING_TABLES {
        let found = catalog
            .tables
            .iter()
            .find(|t| t.schema == settings.default_schema && t.table == name);
        let reading = match found {
            None => VersioningReading::Missing,
            Some(table) => {
                let columns: Vec<&CatalogColumn> = catalog
                    .columns
                    .iter()
                    .filter(|c| c.table_oid == table.oid)
                    .collect();
                let sql = plan::contents_sql(table, &columns, settings);
                match guarded(client, "contents", &sql).await? {
                    Ok(rows) => {
                        let mut row = first_row(rows).into_iter();
                        VersioningReading::Read {
                            count: row
                                .next()
                                .flatten()
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0),
                            rows: row
                                .next()
                                .flatten()
                                .map(|rows| plan::redact_json_keys(&rows, patterns))
                                .unwrap_or_else(|| "[]".to_owned()),
                        }
                    }
                    Err(failure) => VersioningReading::Failed(failure),
                }
            }
        };
        versioning.push(reading);
    }
    Ok(versioning)
}

/// The audited schemas in chunks of tables ([`CHUNKS_SQL`], for the catalog parts).
async fn catalog_chunks(
    client: &Client,
    settings: &Settings,
) -> Result<Vec<CatalogChunk>, AuditError> {
    let outcome = guarded_rows(
        client,
        "schemas",
        CHUNKS_SQL,
        &[
            (&settings.include_schemas, Type::TEXT_ARRAY),
            (&settings.exclude_schemas, Type::TEXT_ARRAY),
            (&settings.tables_per_catalog_statement.max(1), Type::INT8),
        ],
    )
    .await
    .map_err(|Fatal(message)| AuditError::Connection(message))?;
    match outcome {
        Ok(rows) => rows
            .iter()
            .map(|row| {
                Ok(CatalogChunk {
                    schema: row.try_get(0)?,
                    first_table: row.try_get(1)?,
                    tables: row.try_get(2)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| AuditError::Catalog(format!("schema names: {e}"))),
        Err(failure) => Err(AuditError::Catalog(failure.message)),
    }
}

/// The whole audit, held in memory. `timestamp` is the report's `audit_timestamp`.
pub async fn run(
    target: &Target,
    tls: &rustls::ClientConfig,
    settings: &Settings,
    timestamp: String,
) -> Result<AuditReport, AuditError> {
    let mut parts = crate::output::Collected::default();
    let head = run_into(target, tls, settings, timestamp, &mut parts).await?;
    Ok(head.with_parts(parts.into_parts()))
}

/// The whole audit, each part of the report handed to `sink` as soon as it is read. Returns
/// the report without its parts ([`Totals::finish`]).
pub async fn run_into(
    target: &Target,
    tls: &rustls::ClientConfig,
    settings: &Settings,
    timestamp: String,
    sink: &mut dyn PartSink,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let main = open_session(target, tls, settings, None).await?;
    // Workers share the snapshot. A server that cannot export one (some poolers) gets a
    // single-connection audit rather than an inconsistent one.
    let snapshot = match main
        .query_typed("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
    {
        Ok(rows) => rows
            .first()
            .and_then(|row| row.try_get::<_, String>(0).ok()),
        Err(e) => {
            tracing::warn!(
                "cannot export the snapshot ({}); reading with one connection",
                failure("snapshot", &e).message
            );
            // The failed statement aborted the transaction: start it again.
            let _ = main.batch_execute("ROLLBACK").await;
            for statement in begin_sql(settings, None).into_iter().skip(1) {
                main.batch_execute(&statement)
                    .await
                    .map_err(|e| AuditError::Snapshot(failure("begin", &e).message))?;
            }
            None
        }
    };
    main.batch_execute(SAVEPOINT)
        .await
        .map_err(|e| AuditError::Snapshot(failure("savepoint", &e).message))?;
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
    let main_first = async {
        let chunks = catalog_chunks(&main, settings).await?;
        // The versioning tables first, with their own catalog rows (they are read again
        // with their part): their developer names go into every row of the page.
        let versioning = if chunks.iter().any(|c| c.schema == settings.default_schema) {
            let only: Vec<String> = VERSIONING_TABLES.iter().map(|&t| t.to_owned()).collect();
            let schema = CatalogPart {
                schemas: vec![settings.default_schema.clone()],
                from: None,
                to: None,
            };
            let (catalog, _) = read_catalog(&main, &schema, Some(only), settings).await?;
            read_versioning(&main, &catalog, settings)
                .await
                .map_err(|Fatal(message)| AuditError::Connection(message))?
        } else {
            // The default schema is not audited: no versioning table is found.
            VERSIONING_TABLES
                .iter()
                .map(|_| VersioningReading::Missing)
                .collect()
        };
        Ok::<_, AuditError>((chunks, versioning))
    };
    let (workers, first) = tokio::join!(workers, main_first);
    let (chunks, versioning) = first?;
    // No schema to audit still reads the database's own facts (and empty lists).
    let parts: Vec<CatalogPart> = if chunks.is_empty() {
        vec![CatalogPart {
            schemas: settings.include_schemas.clone(),
            from: None,
            to: None,
        }]
    } else {
        catalog_parts(&chunks, settings.tables_per_catalog_statement)
    };
    let system = crate::versioning::versioning_system(versioning.clone(), settings);
    let state = Work {
        queue: (0..parts.len()).map(Unit::Catalog).collect(),
        parts: parts.iter().map(|_| None).collect(),
        pending: vec![0; parts.len()],
        reading_catalog: 0,
        failed: false,
        names: crate::html::developer_names(system.developers.get()),
        totals: Totals::default(),
        sink,
    };
    let shared = Mutex::new(state);
    let wake = Notify::new();
    let statements = AtomicU64::new(0);
    let outcomes = join_all(
        std::iter::once(&main)
            .chain(&workers)
            .map(|client| work(client, &shared, &wake, &parts, settings, &statements)),
    )
    .await;
    if let Some(Err(e)) = outcomes.into_iter().find(Result::is_err) {
        return Err(e);
    }
    // Nothing was written (nothing could be): end the transactions quietly.
    let _ = main.batch_execute("ROLLBACK").await;
    for worker in &workers {
        let _ = worker.batch_execute("ROLLBACK").await;
    }
    let connections = 1 + workers.len();
    drop(workers);
    let state = shared
        .into_inner()
        .map_err(|_| AuditError::Connection("a connection's task panicked".to_owned()))?;
    if state.parts.iter().any(Option::is_some) {
        return Err(AuditError::Catalog(
            "a part was not read in full".to_owned(),
        ));
    }
    let facts = RunFacts {
        connections,
        table_statements: statements.into_inner(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(state.totals.finish(versioning, settings, facts, timestamp))
}
