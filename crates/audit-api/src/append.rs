//! Group commit for single creates (a batch appends on its own: it is a group already).
//!
//! Every event extends its company's hash chain under that chain's head lock, held to the
//! commit, so concurrent creates of one company would queue on the lock one transaction at a
//! time (about 1,700 single creates a second measured, where the service must take 5,000).
//! Instead the creates a process has in flight share an append: each worker takes whatever is
//! waiting in its queue (up to [`MAX_GROUP`] events; [`Appender::append_all`] takes several
//! at once, all or nothing), appends
//! it in one transaction, and answers every caller after the commit. A request goes to the
//! worker of its (first) company, so one company's creates never wait for each other's locks
//! inside a process and gather into the biggest groups, while other companies append side by
//! side on the other workers. A caller is answered only
//! with its own rows or its own error. A request that may fall in a month without a
//! partition (as this process last read the partitions) is appended alone, never in a group,
//! so it cannot fail the others' append ([`may_share`]). Should a shared append fail anyway,
//! each request in it is appended again alone (a batch still all or nothing).

use crate::db::{self, Database, DbError};
use crate::event::{NewEvent, TimestampText};
use crate::maintain::Month;
use crate::search::EventRecord;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot};

/// At most this many events share one append (unless one request alone has more).
pub const MAX_GROUP: usize = 4000;

type Reply = oneshot::Sender<Result<Vec<EventRecord>, DbError>>;

/// One request's events, all or nothing.
struct Waiting {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// The queue, and a request taken from it that did not fit the previous group.
struct Queue {
    receiver: mpsc::Receiver<Waiting>,
    carried: Option<Waiting>,
}

/// The queues into the append workers, one per worker. Dropping them stops the workers once
/// their queues are empty.
#[derive(Debug, Clone)]
pub struct Appender {
    queues: Vec<mpsc::Sender<Waiting>>,
    shared: Arc<Shared>,
}

/// What the workers share: the partitioned months as last read, and a count of shared
/// appends that failed.
#[derive(Debug, Default)]
struct Shared {
    months: Mutex<KnownMonths>,
    shared_appends_failed: AtomicU64,
}

/// The months with a partition, and when they were read.
#[derive(Debug, Default)]
struct KnownMonths {
    months: BTreeSet<Month>,
    read_at: Option<Instant>,
}

/// How long the partitions read serve. Partitions are made months ahead, so a stale answer
/// only ever sends a request alone that could have shared.
const MONTHS_FRESH: Duration = Duration::from_secs(300);
/// How soon a month not among them makes the partitions read again (one catalog query; a
/// client sending months without partitions cannot make more than this).
const MONTHS_REREAD: Duration = Duration::from_secs(5);

/// A session time zone's offset from UTC is within ±16 hours (PostgreSQL accepts no more),
/// so a wall-clock time is stored within this much of itself read as UTC.
const MAX_ZONE_OFFSET: TimeDelta = TimeDelta::hours(16);
/// The database's clock, for events it timestamps, against this process's.
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The UTC months (first and last) `timestamp` can be stored in: one instant when it has an
/// offset; for a wall-clock time, anywhere the session's time zone can put it; the database's
/// `now()` for none. `None` when it is not a form [`crate::event::parse_timestamp`] makes.
pub fn months_of(timestamp: Option<&TimestampText>, now: DateTime<Utc>) -> Option<[Month; 2]> {
    let (instant, slack) = match timestamp {
        None => (now, CLOCK_SKEW),
        Some(TimestampText(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(zoned) => (zoned.with_timezone(&Utc), TimeDelta::zero()),
            Err(_) => (
                NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()?
                    .and_utc(),
                MAX_ZONE_OFFSET,
            ),
        },
    };
    let first = instant.checked_sub_signed(slack)?;
    let last = instant.checked_add_signed(slack)?;
    Some([Month::of(first), Month::of(last)])
}

/// Whether `events` may share an append: every month each can be stored in has a partition.
pub fn may_share(events: &[NewEvent], known: &BTreeSet<Month>, now: DateTime<Utc>) -> bool {
    events.iter().all(|event| {
        months_of(event.timestamp.as_ref(), now).is_some_and(|[first, last]| {
            known.range(first..=last).count() == months_between(first, last)
        })
    })
}

fn months_between(first: Month, last: Month) -> usize {
    let index = |m: Month| m.year as i64 * 12 + m.month as i64;
    (index(last) - index(first) + 1).max(0) as usize
}

/// The worker of a request: by its first event's company (events without one share a worker).
pub fn worker_for(company: Option<i64>, workers: usize) -> usize {
    let key = company.map_or(0, |c| c.unsigned_abs());
    // Fibonacci hashing: neighbouring company ids land on different workers.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % workers.max(1)
}

impl Appender {
    /// Starts `workers` append workers over `db` (each holds one pooled connection while it
    /// appends). Needs a Tokio runtime.
    pub fn start(db: Database, workers: usize) -> Self {
        let shared = Arc::new(Shared::default());
        let queues = (0..workers.max(1))
            .map(|_| {
                let (queue, receiver) = mpsc::channel::<Waiting>(1024);
                let queued = Mutex::new(Queue {
                    receiver,
                    carried: None,
                });
                let db = db.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    while let Some(group) = next_group(&queued).await {
                        append_group(&db, &shared, group).await;
                    }
                });
                queue
            })
            .collect();
        Appender { queues, shared }
    }

    /// How many shared appends failed since start, each then appended again request by
    /// request (a group's work done twice). Requests that might fail one are kept out of
    /// groups, so this stays 0 unless the database refuses something else.
    pub fn shared_appends_failed(&self) -> u64 {
        self.shared.shared_appends_failed.load(Ordering::Relaxed)
    }

    /// Appends one event (together with whatever else is waiting) and returns it as stored.
    pub async fn append(&self, event: NewEvent) -> Result<EventRecord, DbError> {
        self.append_all(vec![event])
            .await?
            .pop()
            .ok_or_else(|| DbError::Unavailable("append returned no row".to_owned()))
    }

    /// Appends `events`, all or none, and returns them as stored, in order.
    pub async fn append_all(&self, events: Vec<NewEvent>) -> Result<Vec<EventRecord>, DbError> {
        let (reply, answer) = oneshot::channel();
        let company = events.first().and_then(|e| e.company_id);
        self.queues[worker_for(company, self.queues.len())]
            .send(Waiting { events, reply })
            .await
            .map_err(|_| DbError::Unavailable("the append workers have stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DbError::Unavailable("the append worker stopped".to_owned()))?
    }
}

/// Waits for one request, then takes every other already waiting while the group stays
/// within [`MAX_GROUP`] events; the first that does not fit waits for the next group.
async fn next_group(shared: &Mutex<Queue>) -> Option<Vec<Waiting>> {
    let mut queue = shared.lock().await;
    let first = match queue.carried.take() {
        Some(carried) => carried,
        None => queue.receiver.recv().await?,
    };
    let mut size = first.events.len();
    let mut group = vec![first];
    while let Ok(next) = queue.receiver.try_recv() {
        if size + next.events.len() > MAX_GROUP {
            queue.carried = Some(next);
            break;
        }
        size += next.events.len();
        group.push(next);
    }
    Some(group)
}

/// The partitioned months, read again when stale, or when `group` needs a month they lack
/// and they were not read in the last [`MONTHS_REREAD`]. `None` when they cannot be read (the
/// append will say why the database is unavailable).
async fn known_months(
    db: &Database,
    shared: &Shared,
    group: &[Waiting],
    now: DateTime<Utc>,
) -> Option<BTreeSet<Month>> {
    let mut known = shared.months.lock().await;
    let age = known.read_at.map(|t| t.elapsed());
    let stale = age.is_none_or(|age| age > MONTHS_FRESH);
    let lacking = || {
        !group
            .iter()
            .all(|w| may_share(&w.events, &known.months, now))
    };
    if stale || (age.is_some_and(|age| age > MONTHS_REREAD) && lacking()) {
        match crate::maintain::attached_months(db).await {
            Ok(months) => {
                known.months = months.into_iter().collect();
                known.read_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!("cannot read the event partitions ({e}); appending as one group");
                return None;
            }
        }
    }
    Some(known.months.clone())
}

async fn append_group(db: &Database, shared: &Shared, group: Vec<Waiting>) {
    let (group, alone): (Vec<Waiting>, Vec<Waiting>) = if group.len() == 1 {
        (group, Vec::new())
    } else {
        let now = Utc::now();
        match known_months(db, shared, &group, now).await {
            Some(known) => group
                .into_iter()
                .partition(|w| may_share(&w.events, &known, now)),
            None => (group, Vec::new()),
        }
    };
    let alone = if group.len() > 1 {
        append_shared(db, shared, group).await;
        alone
    } else {
        group.into_iter().chain(alone).collect()
    };
    for waiting in alone {
        // A caller that went away (timeout, disconnect) still has its events stored.
        let _ = waiting
            .reply
            .send(db::insert_events(db, &waiting.events).await);
    }
}

async fn append_shared(db: &Database, shared: &Shared, group: Vec<Waiting>) {
    let sizes: Vec<usize> = group.iter().map(|w| w.events.len()).collect();
    let all: Vec<NewEvent> = group
        .iter()
        .flat_map(|w| w.events.iter().cloned())
        .collect();
    match db::insert_events(db, &all).await {
        Ok(stored) if stored.len() == all.len() => {
            let mut stored = stored.into_iter();
            for (waiting, size) in group.into_iter().zip(sizes) {
                let _ = waiting.reply.send(Ok(stored.by_ref().take(size).collect()));
            }
        }
        Ok(stored) => {
            let message = format!(
                "append stored {} rows for {} events",
                stored.len(),
                all.len()
            );
            for waiting in group {
                let _ = waiting
                    .reply
                    .send(Err(DbError::Unavailable(message.clone())));
            }
        }
        Err(e) => {
            shared.shared_appends_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                requests = group.len(),
                events = all.len(),
                "a shared append failed ({e}); appending its requests one by one"
            );
            for waiting in group {
                let alone = db::insert_events(db, &waiting.events).await;
                let _ = waiting.reply.send(alone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(year: i32, month: u32) -> Month {
        Month { year, month }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event(timestamp: Option<&str>) -> NewEvent {
        NewEvent {
            timestamp: timestamp.map(|t| TimestampText(t.to_owned())),
            functionality_id: 1,
            event_type_id: 1,
            store_id: None,
            company_id: Some(5001),
            user: None,
            message: None,
            status: crate::event::Status::Success,
            additional_data: None,
        }
    }

    #[test]
    fn an_instant_is_its_month_and_a_wall_clock_time_every_month_a_zone_can_put_it_in() {
        let now = at("2026-12-08T02:00:00Z");
        assert_eq!(
            months_of(Some(&TimestampText("2026-12-31T23:59:59Z".into())), now),
            Some([month(2026, 12), month(2026, 12)])
        );
        // Central Time's 31 December 20:00 is already January in UTC.
        assert_eq!(
            months_of(Some(&TimestampText("2026-12-31T20:00:00".into())), now),
            Some([month(2026, 12), month(2027, 1)])
        );
        assert_eq!(
            months_of(Some(&TimestampText("2026-12-15T12:00:00.5".into())), now),
            Some([month(2026, 12), month(2026, 12)])
        );
        assert_eq!(
            months_of(None, at("2026-12-01T00:01:00Z")),
            Some([month(2026, 11), month(2026, 12)])
        );
        assert_eq!(
            months_of(Some(&TimestampText("not a time".into())), now),
            None
        );
    }

    #[test]
    fn only_events_whose_every_possible_month_has_a_partition_may_share_an_append() {
        let now = at("2026-12-08T02:00:00Z");
        let known: BTreeSet<Month> = [month(2026, 11), month(2026, 12)].into_iter().collect();
        assert!(may_share(
            &[event(Some("2026-12-08T01:00:00Z")), event(None)],
            &known,
            now
        ));
        assert!(may_share(
            &[event(Some("2026-11-30T20:00:00"))],
            &known,
            now
        ));
        // One event of a batch outside the partitions keeps the whole request out.
        assert!(!may_share(
            &[event(None), event(Some("2031-01-01T00:00:00Z"))],
            &known,
            now
        ));
        // The last hours of December might be January in the session's zone.
        assert!(!may_share(
            &[event(Some("2026-12-31T20:00:00"))],
            &known,
            now
        ));
        assert!(may_share(
            &[event(Some("2026-12-31T20:00:00Z"))],
            &known,
            now
        ));
        assert!(!may_share(
            &[event(Some("2026-12-01T04:00:00"))],
            &[month(2026, 12)].into_iter().collect(),
            now
        ));
        assert!(!may_share(&[event(None)], &BTreeSet::new(), now));
    }

    #[test]
    fn a_company_always_has_one_worker_and_companies_spread_over_all() {
        assert_eq!(worker_for(Some(5001), 4), worker_for(Some(5001), 4));
        assert_eq!(worker_for(None, 4), worker_for(None, 4));
        let mut used = [0usize; 4];
        for company in 6001..6009 {
            used[worker_for(Some(company), 4)] += 1;
        }
        assert!(used.iter().all(|&n| n > 0), "{used:?}");
        assert_eq!(worker_for(Some(7), 1), 0);
    }
}
