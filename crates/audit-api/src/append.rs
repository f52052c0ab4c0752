//! Group commit for single creates.
//!
//! Every event extends its company's hash chain under that chain's head lock, so concurrent
//! creates of one company would queue on the lock one transaction at a time (about 1,700 a
//! second measured, where the service must take 5,000). Instead the creates a process has in
//! flight share an append: a few workers each take whatever is waiting (up to a batch's
//! 1,000 events), append it in one transaction, and answer every caller after the commit. A
//! caller is answered only with its own stored row or its own error: when a shared append
//! fails, each of its events is appended again alone, so one bad event (a month without a
//! partition) fails only its own request.

use crate::db::{self, Database, DbError};
use crate::event::NewEvent;
use crate::search::EventRecord;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// At most this many events share one append (the batch endpoint's limit).
pub const MAX_GROUP: usize = 1000;

struct Waiting {
    event: NewEvent,
    reply: oneshot::Sender<Result<EventRecord, DbError>>,
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
        let (queue, receiver) = mpsc::channel::<Waiting>(MAX_GROUP * workers.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            let receiver = Arc::clone(&receiver);
            let db = db.clone();
            tokio::spawn(async move {
                while let Some(group) = next_group(&receiver).await {
                    append_group(&db, group).await;
                }
            });
        }
        Appender { queue }
    }

    /// Appends one event (together with whatever else is waiting) and returns it as stored.
    pub async fn append(&self, event: NewEvent) -> Result<EventRecord, DbError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiting { event, reply })
            .await
            .map_err(|_| DbError::Unavailable("the append workers have stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DbError::Unavailable("the append worker stopped".to_owned()))?
    }
}

/// Waits for one event, then takes every other already waiting, up to [`MAX_GROUP`].
async fn next_group(receiver: &Mutex<mpsc::Receiver<Waiting>>) -> Option<Vec<Waiting>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    Some(group)
}

async fn append_group(db: &Database, group: Vec<Waiting>) {
    let (events, replies): (Vec<NewEvent>, Vec<_>) =
        group.into_iter().map(|w| (w.event, w.reply)).unzip();
    match db::insert_events(db, &events).await {
        Ok(stored) if stored.len() == replies.len() => {
            for (reply, record) in replies.into_iter().zip(stored) {
                // A caller that went away (timeout, disconnect) still has its event stored.
                let _ = reply.send(Ok(record));
            }
        }
        Ok(stored) => {
            let message = format!(
                "append stored {} rows for {} events",
                stored.len(),
                replies.len()
            );
            for reply in replies {
                let _ = reply.send(Err(DbError::Unavailable(message.clone())));
            }
        }
        Err(e) if replies.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(
                events = events.len(),
                "a shared append failed ({e}); appending its events one by one"
            );
            for (event, reply) in events.into_iter().zip(replies) {
                let alone = db::insert_events(db, std::slice::from_ref(&event)).await;
                let _ = reply.send(alone.and_then(|mut rows| {
                    rows.pop()
                        .ok_or_else(|| DbError::Unavailable("append returned no row".to_owned()))
                }));
            }
        }
    }
}
