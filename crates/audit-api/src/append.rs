//! Group commit for creates.
//!
//! Every event extends its company's hash chain under that chain's head lock, held to the
//! commit, so concurrent creates of one company would queue on the lock one transaction at a
//! time (about 1,700 single creates a second measured, where the service must take 5,000).
//! Instead the creates a process has in flight share an append: a few workers each take
//! whatever is waiting (single events and whole batches, up to [`MAX_GROUP`] events), append
//! it in one transaction, and answer every caller after the commit. A caller is answered only
//! with its own rows or its own error: when a shared append fails, each request in it is
//! appended again alone (a batch still all or nothing), so one bad request (a month without a
//! partition) fails only itself.

use crate::db::{self, Database, DbError};
use crate::event::NewEvent;
use crate::search::EventRecord;
use std::sync::Arc;
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

/// The queue into the append workers. Dropping it stops them once the queue is empty.
#[derive(Debug, Clone)]
pub struct Appender {
    queue: mpsc::Sender<Waiting>,
}

impl Appender {
    /// Starts `workers` append workers over `db` (each holds one pooled connection while it
    /// appends). Needs a Tokio runtime.
    pub fn start(db: Database, workers: usize) -> Self {
        let (queue, receiver) = mpsc::channel::<Waiting>(1024);
        let shared = Arc::new(Mutex::new(Queue {
            receiver,
            carried: None,
        }));
        for _ in 0..workers.max(1) {
            let shared = Arc::clone(&shared);
            let db = db.clone();
            tokio::spawn(async move {
                while let Some(group) = next_group(&shared).await {
                    append_group(&db, group).await;
                }
            });
        }
        Appender { queue }
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
        self.queue
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
