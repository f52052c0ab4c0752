//! Maintenance: partitions made ahead, partitions past retention archived and dropped.
//!
//! How it avoids blocking inserts: a new month is created as a plain table with the
//! partition's bound as a CHECK constraint and then attached (`ATTACH PARTITION` takes only a
//! SHARE UPDATE EXCLUSIVE lock on the parent, and the constraint spares it a scan); an old
//! month is detached with `DETACH PARTITION ... CONCURRENTLY` (there is no DEFAULT partition,
//! which would forbid it), and only then copied and dropped, so no insert or search waits on
//! the copy. Every step is idempotent and the whole run holds an advisory lock, so two runs
//! at once serialise and the second finds nothing left to do; a run interrupted between
//! detach and drop is finished by the next one.

use crate::db::{DbError, MAINTENANCE_LOCK, PARTITION_LOCK};
use audit_core::s3_upload::{ObjectSink, ObjectSpec, Stored};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// The months a partition covers are whole UTC months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(t: DateTime<Utc>) -> Month {
        use chrono::Datelike as _;
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    pub fn plus(self, months: i32) -> Month {
        let index = self.year * 12 + (self.month as i32 - 1) + months;
        Month {
            year: index.div_euclid(12),
            month: index.rem_euclid(12) as u32 + 1,
        }
    }

    pub fn start(self) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// `auditevents_YYYYMM`, the original service's partition names.
    pub fn partition_name(self) -> String {
        format!("auditevents_{:04}{:02}", self.year, self.month)
    }

    pub fn from_partition_name(name: &str) -> Option<Month> {
        let digits = name.strip_prefix("auditevents_")?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let month = Month {
            year: digits[..4].parse().ok()?,
            month: digits[4..].parse().ok()?,
        };
        (1..=12).contains(&month.month).then_some(month)
    }
}

/// What maintenance must do, decided from the partitions that exist and today's date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// Months to create, oldest first: every month of the retention window (late and
    /// backfilled events are accepted while they would be kept), this month, and the next
    /// `premake_months`.
    pub create: Vec<Month>,
    /// Attached partitions wholly older than the retention window: archive, then drop.
    pub retire: Vec<Month>,
}

/// Partitions to create ahead and partitions past retention. A partition is retired when its
/// whole month is older than `retention_months` whole months before the current month.
pub fn plan_maintenance(
    now: DateTime<Utc>,
    existing: &[Month],
    premake_months: i32,
    retention_months: i32,
) -> MaintenancePlan {
    let this_month = Month::of(now);
    let create = (-retention_months..=premake_months)
        .map(|offset| this_month.plus(offset))
        .filter(|m| !existing.contains(m))
        .collect();
    let oldest_kept = this_month.plus(-retention_months);
    let mut retire: Vec<Month> = existing
        .iter()
        .copied()
        .filter(|m| *m < oldest_kept)
        .collect();
    retire.sort();
    MaintenancePlan { create, retire }
}

/// Where retired events go.
#[derive(Debug, Clone)]
pub enum ArchiveTarget {
    /// The `auditevents_archival` table.
    Table,
    /// `s3://bucket/prefix/auditevents_YYYYMM.jsonl.gz`, one JSON object per event.
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub partitions_created: Vec<String>,
    pub partitions_archived: Vec<ArchivedPartition>,
    /// The `s3://` URI of the chain heads this run published.
    pub chain_heads_published: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArchivedPartition {
    pub partition: String,
    pub events: u64,
    /// `auditevents_archival` or the S3 URI.
    pub destination: String,
}

/// Settings of a maintenance run.
#[derive(Debug, Clone)]
pub struct MaintenanceSettings {
    pub premake_months: i32,
    pub retention_months: i32,
    pub archive: ArchiveTarget,
    /// Where the chains' heads are published at the end of every run.
    pub anchor: Option<crate::anchor::AnchorTarget>,
}

/// Runs maintenance as of `now`.
pub async fn run(
    db: &crate::db::Database,
    settings: &MaintenanceSettings,
    now: DateTime<Utc>,
) -> Result<MaintenanceReport, MaintenanceError> {
    let mut client = db.client().await?;
    // The session's STATEMENT_TIMEOUT_MS is for requests: waiting for another run's lock or
    // copying a month of events may take longer. Session-level lock: DETACH ... CONCURRENTLY
    // cannot run inside a transaction.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(DbError::from)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MAINTENANCE_LOCK])
        .await
        .map_err(DbError::from)?;
    let mut outcome = run_locked(&mut client, settings, now).await;
    // After archival: the heads are published whatever moved, and an archival failure does
    // not hold back the hourly anchor (the run still fails, and says why).
    if let Some(target) = &settings.anchor {
        let published = crate::anchor::publish(db, target, now).await;
        match (&mut outcome, published) {
            (Ok(report), Ok(uri)) => report.chain_heads_published = Some(uri),
            (Ok(_), Err(e)) => {
                if let crate::anchor::AnchorError::Diverged(chains) = &e {
                    tracing::error!(?chains, "chain heads not published: {e}");
                }
                outcome = Err(e.into());
            }
            (Err(_), Ok(uri)) => tracing::info!(%uri, "chain heads published"),
            (Err(_), Err(e)) => tracing::error!("cannot publish the chain heads either: {e}"),
        }
    }
    let unlock = client
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock({MAINTENANCE_LOCK}); RESET statement_timeout"
        ))
        .await;
    if let Err(e) = unlock {
        // The connection is unusable; dropping it from the pool releases the lock.
        let _ = deadpool_postgres::Object::take(client);
        tracing::warn!("cannot release the maintenance lock: {e}");
    }
    outcome
}

/// Why maintenance failed.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("partition {partition}: {message}")]
    Partition { partition: String, message: String },
    #[error("publishing the chain heads: {0}")]
    Anchor(#[from] crate::anchor::AnchorError),
}

impl MaintenanceError {
    /// How many chains the run refused to publish because they disagree with heads published
    /// before.
    pub fn chains_diverged(&self) -> usize {
        match self {
            MaintenanceError::Anchor(crate::anchor::AnchorError::Diverged(chains)) => chains.len(),
            _ => 0,
        }
    }

    /// The role may not do this (42501): the application's role running the owner's work.
    pub fn is_insufficient_privilege(&self) -> bool {
        matches!(self, MaintenanceError::Db(DbError::Query(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE))
    }
}

impl From<tokio_postgres::Error> for MaintenanceError {
    fn from(e: tokio_postgres::Error) -> Self {
        MaintenanceError::Db(DbError::from(e))
    }
}

/// The event partitions: attached months, and months left detached by an interrupted run.
async fn partitions<C: GenericClient>(
    client: &C,
) -> Result<(Vec<Month>, Vec<Month>, Vec<Month>), tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
             LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
                 AND i.inhparent = 'auditevents'::regclass
             WHERE c.relkind = 'r' AND c.relname ~ '^auditevents_[0-9]{6}$'",
            &[],
        )
        .await?;
    let (mut attached, mut pending, mut detached) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let Some(month) = Month::from_partition_name(row.get(0)) else {
            continue;
        };
        match (row.get::<_, bool>(1), row.get::<_, bool>(2)) {
            (true, false) => attached.push(month),
            (true, true) => pending.push(month),
            (false, _) => detached.push(month),
        }
    }
    Ok((attached, pending, detached))
}

/// The months with an attached partition: those an insert can be routed to.
pub async fn attached_months(db: &crate::db::Database) -> Result<Vec<Month>, MaintenanceError> {
    let client = db.client().await?;
    Ok(partitions(&**client).await?.0)
}

async fn run_locked(
    client: &mut deadpool_postgres::Object,
    settings: &MaintenanceSettings,
    now: DateTime<Utc>,
) -> Result<MaintenanceReport, MaintenanceError> {
    let mut report = MaintenanceReport {
        partitions_created: create_missing(client, settings, now).await?,
        ..MaintenanceReport::default()
    };
    let (attached, pending, detached) = partitions(&***client).await?;
    let plan = plan_maintenance(
        now,
        &attached,
        settings.premake_months,
        settings.retention_months,
    );
    let oldest_kept = Month::of(now).plus(-settings.retention_months);
    // An interrupted concurrent detach of a retired month is finished first. (A pending
    // detach of a month still kept is someone else's operation: left alone.)
    let pending: Vec<Month> = pending.into_iter().filter(|m| *m < oldest_kept).collect();
    for month in &pending {
        client
            .batch_execute(&format!(
                "ALTER TABLE auditevents DETACH PARTITION {} FINALIZE",
                month.partition_name()
            ))
            .await?;
    }
    for month in &plan.retire {
        client
            .batch_execute(&format!(
                "ALTER TABLE auditevents DETACH PARTITION {} CONCURRENTLY",
                month.partition_name()
            ))
            .await?;
    }
    let mut to_archive: Vec<Month> = plan
        .retire
        .iter()
        .chain(&pending)
        .chain(&detached)
        .copied()
        .filter(|m| *m < oldest_kept)
        .collect();
    to_archive.sort();
    to_archive.dedup();
    for month in to_archive {
        let archived = archive_partition(client, &settings.archive, month).await?;
        report.partitions_archived.push(archived);
    }
    Ok(report)
}

/// Creates the partitions due (this month and the months ahead) that do not exist yet. Cheap
/// when there are none: one catalog query. Concurrent callers serialise on a lock and the
/// later ones find the months made.
pub async fn ensure_partitions(
    db: &crate::db::Database,
    settings: &MaintenanceSettings,
    now: DateTime<Utc>,
) -> Result<Vec<String>, MaintenanceError> {
    let mut client = db.client().await?;
    let (attached, _, _) = partitions(&**client).await?;
    let plan = plan_maintenance(
        now,
        &attached,
        settings.premake_months,
        settings.retention_months,
    );
    if plan.create.is_empty() {
        return Ok(Vec::new());
    }
    create_missing(&mut client, settings, now).await
}

async fn create_missing(
    client: &mut deadpool_postgres::Object,
    settings: &MaintenanceSettings,
    now: DateTime<Utc>,
) -> Result<Vec<String>, MaintenanceError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    let (attached, _, _) = partitions(&*tx).await?;
    let plan = plan_maintenance(
        now,
        &attached,
        settings.premake_months,
        settings.retention_months,
    );
    for month in &plan.create {
        create_partition(&*tx, *month).await?;
    }
    tx.commit().await?;
    Ok(plan.create.iter().map(|m| m.partition_name()).collect())
}

/// Creates one month's partition without blocking inserts (see the module comment), inside
/// the caller's transaction.
async fn create_partition<C: GenericClient>(
    client: &C,
    month: Month,
) -> Result<(), tokio_postgres::Error> {
    let name = month.partition_name();
    // Literals come from two integers formatted here, never from input.
    let (from, to) = (
        month.start().format("%Y-%m-%d 00:00:00+00"),
        month.plus(1).start().format("%Y-%m-%d 00:00:00+00"),
    );
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '10s';
             CREATE TABLE IF NOT EXISTS {name}
                 (LIKE auditevents INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             DO $$ BEGIN
                 ALTER TABLE {name} ADD CONSTRAINT {name}_bound
                     CHECK (eventtimestamp >= '{from}' AND eventtimestamp < '{to}');
             EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             ALTER TABLE auditevents ATTACH PARTITION {name}
                 FOR VALUES FROM ('{from}') TO ('{to}');
             ALTER TABLE {name} DROP CONSTRAINT {name}_bound;"
        ))
        .await
}

/// Copies a detached month to the archive, then drops it, each step repeatable.
async fn archive_partition(
    client: &mut deadpool_postgres::Object,
    archive: &ArchiveTarget,
    month: Month,
) -> Result<ArchivedPartition, MaintenanceError> {
    let name = month.partition_name();
    // The links travel with the events: an archived month verifies on its own.
    let columns = "id, eventtimestamp, functionalityid, eventtypeid, storelocationid, \
                   companyid, username, message, status, additionaldata, chain_seq, prev_hash, \
                   row_hash";
    match archive {
        ArchiveTarget::Table => {
            // Count, copy and drop in one transaction: either all happen or none.
            let tx = client.transaction().await?;
            let count: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await?
                .get(0);
            tx.batch_execute(&format!(
                "INSERT INTO auditevents_archival ({columns}) \
                 SELECT {columns} FROM {name} ON CONFLICT DO NOTHING; \
                 DROP TABLE {name}"
            ))
            .await?;
            tx.commit().await?;
            Ok(ArchivedPartition {
                partition: name,
                events: u64::try_from(count).unwrap_or_default(),
                destination: "auditevents_archival".to_owned(),
            })
        }
        ArchiveTarget::S3 {
            client: s3,
            bucket,
            prefix,
        } => {
            let key = format!("{prefix}{name}.jsonl.gz");
            let stored = export_jsonl_gz(client, s3, bucket, &key, &name).await?;
            if let (Stored::AlreadyExists { .. }, count) = stored {
                // A previous run wrote it and stopped before the drop: drop only if that
                // object holds exactly these events.
                let head = s3
                    .head_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| MaintenanceError::Partition {
                        partition: name.clone(),
                        message: audit_core::aws::describe(&e),
                    })?;
                let recorded = head
                    .metadata()
                    .and_then(|m| m.get("event-count"))
                    .and_then(|c| c.parse::<u64>().ok());
                if recorded != Some(count) {
                    return Err(MaintenanceError::Partition {
                        partition: name,
                        message: format!(
                            "s3://{bucket}/{key} exists with {recorded:?} events, the table \
                             holds {count}: left in place for an operator"
                        ),
                    });
                }
            }
            let count = stored.1;
            // The chain continues across the archived events through their links, kept
            // in the same transaction that drops them.
            let uri = format!("s3://{bucket}/{key}");
            let tx = client.transaction().await?;
            tx.execute(
                &format!(
                    "INSERT INTO auditevent_chain_archived \
                         (companyid, chain_seq, prev_hash, row_hash, archive) \
                     SELECT companyid, chain_seq, prev_hash, row_hash, $1 FROM {name} \
                     WHERE chain_seq IS NOT NULL \
                     ON CONFLICT ON CONSTRAINT auditevent_chain_archived_link DO NOTHING"
                ),
                &[&uri],
            )
            .await?;
            tx.batch_execute(&format!("DROP TABLE {name}")).await?;
            tx.commit().await?;
            Ok(ArchivedPartition {
                partition: name,
                events: count,
                destination: format!("s3://{bucket}/{key}"),
            })
        }
    }
}

/// Archive parts: 8 MiB of gzip, about three in memory at once whatever the month's size.
const ARCHIVE_PART_BYTES: usize = 8 << 20;

/// Streams the month's events into `s3://bucket/key` as gzip JSON lines, each line the API's
/// event fields plus the ids and the event's link, in chain order per company (so that a reader
/// checks the links as they pass: `audit_core::event_chain::ArchiveChainCheck`). The rows are
/// counted first (the month is detached: nothing changes it) so the object carries its
/// `event-count` from its creation; it is created with `If-None-Match: *`. Returns how it
/// ended and the count.
async fn export_jsonl_gz(
    client: &tokio_postgres::Client,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    name: &str,
) -> Result<(Stored, u64), MaintenanceError> {
    use futures_util::StreamExt as _;
    let failed = |message: String| MaintenanceError::Partition {
        partition: name.to_owned(),
        message,
    };
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {name}"), &[])
        .await?
        .get(0);
    let count = u64::try_from(count).unwrap_or_default();
    let spec = ObjectSpec {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        metadata: HashMap::from([("event-count".to_owned(), count.to_string())]),
        content_type: "application/x-ndjson",
        content_encoding: Some("gzip"),
    };
    let rows = client
        .query_raw(
            &format!(
                "SELECT json_build_object('id', e.id, 'event_timestamp', e.eventtimestamp, \
                 'functionality_id', e.functionalityid, 'event_type_id', e.eventtypeid, \
                 'store_id', e.storelocationid, 'company_id', e.companyid, 'user', e.username, \
                 'message', e.message, 'status', e.status, 'additional_data', e.additionaldata, \
                 'event_time_utc', to_char(e.eventtimestamp AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                 'functionality', f.name, 'event_type', t.name, 'chain_seq', e.chain_seq, \
                 'prev_hash', encode(e.prev_hash, 'hex'), \
                 'row_hash', encode(e.row_hash, 'hex'))::text \
                 FROM {name} e \
                 LEFT JOIN auditfunctionalities f ON f.id = e.functionalityid \
                 LEFT JOIN auditeventtypes t ON t.id = e.eventtypeid \
                 ORDER BY e.companyid NULLS FIRST, e.chain_seq NULLS FIRST, e.id"
            ),
            std::iter::empty::<&str>(),
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    // The default level: an archive is written once a month and kept for years (the fast
    // level made a 2,000,000-event month 1.7 times larger, BENCHMARKS.md).
    let mut sink = ObjectSink::new(
        s3.clone(),
        spec,
        ARCHIVE_PART_BYTES,
        Some(audit_core::s3_upload::Compression::default()),
    );
    let mut written = 0u64;
    let mut line = Vec::new();
    let streamed: Result<(), MaintenanceError> = async {
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| failed(e.to_string()))?;
            let text: &str = row.get(0);
            line.clear();
            line.extend_from_slice(text.as_bytes());
            line.push(b'\n');
            sink.write(&line).await.map_err(|e| failed(e.to_string()))?;
            written += 1;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        sink.abort().await;
        return Err(e);
    }
    if written != count {
        sink.abort().await;
        return Err(failed(format!(
            "{written} events read for the archive, {count} counted: left in place"
        )));
    }
    let stored = sink
        .finish(|_, _| HashMap::new())
        .await
        .map_err(|e| failed(format!("cannot write s3://{bucket}/{key}: {e}")))?;
    Ok((stored, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_keeps_the_window_and_makes_months_ahead() {
        let now = Month {
            year: 2027,
            month: 1,
        }
        .start();
        let existing: Vec<Month> = (-14..=2).map(|m| Month::of(now).plus(m)).collect();
        let plan = plan_maintenance(now, &existing, 5, 12);
        let names = |months: &[Month]| {
            months
                .iter()
                .map(|m| m.partition_name())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&plan.create),
            [
                "auditevents_202704",
                "auditevents_202705",
                "auditevents_202706"
            ]
        );
        assert_eq!(
            names(&plan.retire),
            ["auditevents_202511", "auditevents_202512"]
        );
        assert_eq!(Month::from_partition_name("auditevents_202613"), None);
        assert_eq!(Month::from_partition_name("auditevents_archival"), None);
        assert_eq!(
            Month::from_partition_name("auditevents_202602"),
            Some(Month {
                year: 2026,
                month: 2
            })
        );
    }
}
