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
//! with its own rows or its own error: when a shared append fails, each request in it is
//! appended again alone (a batch still all or nothing), so one bad request (a month without a
//! partition) fails only itself.

use crate::db::{self, Database, DbError};
use crate::event::NewEvent;
use crate::search::EventRecord;
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
        let queues = (0..workers.max(1))
            .map(|_| {
                let (queue, receiver) = mpsc::channel::<Waiting>(1024);
                let shared = Mutex::new(Queue {
                    receiver,
                    carried: None,
                });
                let db = db.clone();
                tokio::spawn(async move {
                    while let Some(group) = next_group(&shared).await {
                        append_group(&db, group).await;
                    }
                });
                queue
            })
            .collect();
        Appender { queues }
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

async fn append_group(db: &Database, group: Vec<Waiting>) {
    if group.len() == 1 {
        let Waiting { events, reply } = group.into_iter().next().expect("one request");
        // A caller that went away (timeout, disconnect) still has its events stored.
        let _ = reply.send(db::insert_events(db, &events).await);
        return;
    }
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
    use super::worker_for;

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
