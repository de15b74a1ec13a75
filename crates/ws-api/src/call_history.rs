//! [`CallLog`] over the accounts' call store: a join starts a call record, a
//! leave (or a closed socket) ends it.
//!
//! Signaling never waits for MongoDB to come back. While the store answers,
//! each write is made at once (bounded by [`INLINE_WRITE_BOUND`]), so
//! history is current when the join or leave is announced. A write that
//! finds the store unavailable goes into a bounded queue, and so does every
//! write after it until the queue is empty again: one task retries the
//! queue in order with backoff, so a call's end is never written before its
//! start, and the history catches up when the store returns. A retried write
//! is idempotent (a start already stored is a duplicate key; an end already
//! applied matches no open call), so nothing is written twice. A call that
//! starts and ends while its start is still queued is stored once, complete.
//! Only a write that finds the queue full is lost (logged, and counted in
//! [`AccountsCallLog::dropped`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tincan_accounts::model::{CallRecord, MediaPath as StoredPath};
use tincan_accounts::{CallStore, StoreError};
use tincan_signaling::{MediaPath, Peer};
use tracing::{debug, error, info, warn};

use crate::call_log::{CallLog, CallLogError};

/// The most call-history writes kept while the store is unavailable.
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// The longest a join or leave waits for its history write before the write
/// is queued instead.
pub(crate) const INLINE_WRITE_BOUND: Duration = Duration::from_millis(500);
/// The longest one retry may take (the store's own timeouts are shorter).
const RETRY_BOUND: Duration = Duration::from_secs(30);
/// First and longest wait between two retries of the queue's head.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Writes call history to a [`CallStore`] (MongoDB or the embedded store).
#[derive(Clone)]
pub struct AccountsCallLog {
    inner: Arc<Inner>,
}

struct Inner {
    calls: Arc<dyn CallStore>,
    capacity: usize,
    inline_bound: Duration,
    state: Mutex<State>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Write>,
    /// A retry task owns the queue (and may hold its head in flight).
    draining: bool,
}

/// One call-history write.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    Start(CallRecord),
    End {
        peer_id: String,
        room: String,
        at_ms: u64,
    },
    MediaPath {
        peer_id: String,
        room: String,
        path: StoredPath,
    },
}

/// What became of one attempt at a write.
enum Attempt {
    Done,
    /// The store is unavailable (or too slow): try again later.
    Retry(String),
}

impl AccountsCallLog {
    /// Call history in `calls`, with the default queue capacity.
    pub fn new(calls: Arc<dyn CallStore>) -> Self {
        Self::with_capacity(calls, DEFAULT_QUEUE_CAPACITY)
    }

    /// Call history in `calls`, keeping at most `capacity` writes while the
    /// store is unavailable.
    pub fn with_capacity(calls: Arc<dyn CallStore>, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                calls,
                capacity: capacity.max(1),
                inline_bound: INLINE_WRITE_BOUND,
                state: Mutex::default(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Writes waiting for the store.
    pub fn pending(&self) -> usize {
        self.inner.state().queue.len()
    }

    /// Writes lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    async fn write(&self, write: Write) -> Result<(), CallLogError> {
        if !self.inner.state().busy() {
            match self.inner.attempt(&write, self.inner.inline_bound).await {
                Attempt::Done => return Ok(()),
                Attempt::Retry(reason) => {
                    warn!(error = %reason, "call history store unavailable; queueing the write")
                }
            }
        }
        self.enqueue(write)
    }

    fn enqueue(&self, write: Write) -> Result<(), CallLogError> {
        let mut state = self.inner.state();
        if !state.merge(&write) {
            if state.queue.len() >= self.inner.capacity {
                let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                error!(dropped, "call history queue full; write lost");
                return Err(CallLogError("call history queue full".to_owned()));
            }
            state.queue.push_back(write);
        }
        if !state.draining {
            state.draining = true;
            let inner = self.inner.clone();
            tokio::spawn(async move { inner.drain().await });
        }
        Ok(())
    }
}

impl State {
    /// Whether a write must queue behind others to keep their order.
    fn busy(&self) -> bool {
        self.draining || !self.queue.is_empty()
    }

    /// Folds `write` into a queued start of the same visit (its end or
    /// media path), so the visit is stored once, complete; `false` if no
    /// queued start is there to take it. The head may be in flight, so it
    /// is never changed; it is not in `queue` while in flight.
    fn merge(&mut self, write: &Write) -> bool {
        let (peer, room) = match write {
            Write::Start(_) => return false,
            Write::End { peer_id, room, .. } | Write::MediaPath { peer_id, room, .. } => {
                (peer_id, room)
            }
        };
        // The newest open start of that visit, with nothing queued after it
        // for the same visit (which would have to come first).
        for queued in self.queue.iter_mut().rev() {
            match queued {
                Write::Start(record) if &record.peer_id == peer && &record.room == room => {
                    if record.ended_at.is_some() {
                        return false;
                    }
                    match write {
                        Write::End { at_ms, .. } => record.ended_at = Some(*at_ms),
                        Write::MediaPath { path, .. } => record.media_path = Some(*path),
                        Write::Start(_) => return false,
                    }
                    return true;
                }
                Write::End {
                    peer_id, room: r, ..
                }
                | Write::MediaPath {
                    peer_id, room: r, ..
                } if peer_id == peer && r == room => {
                    return false;
                }
                _ => {}
            }
        }
        false
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One try at `write`, within `bound`.
    async fn attempt(&self, write: &Write, bound: Duration) -> Attempt {
        match tokio::time::timeout(bound, self.apply(write)).await {
            Err(_) => Attempt::Retry(format!("no answer within {bound:?}")),
            Ok(Ok(())) => Attempt::Done,
            Ok(Err(StoreError::Unavailable(reason))) => Attempt::Retry(reason),
            Ok(Err(err)) => {
                // Not the store's absence: retrying cannot help.
                error!(error = %err, "call history write refused; dropped");
                Attempt::Done
            }
        }
    }

    async fn apply(&self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::Start(record) => match self.calls.start_call(record).await {
                Ok(()) => Ok(()),
                // Stored by an earlier try whose answer was lost, open: what
                // was folded into it since still has to be written.
                Err(StoreError::Duplicate) => {
                    let (peer, room) = (&record.peer_id, &record.room);
                    if let Some(at_ms) = record.ended_at {
                        self.calls
                            .end_call(peer, room, at_ms, record.media_path)
                            .await?;
                    } else if let Some(path) = record.media_path {
                        self.calls.set_media_path(peer, room, path).await?;
                    }
                    Ok(())
                }
                Err(err) => Err(err),
            },
            Write::End {
                peer_id,
                room,
                at_ms,
            } => {
                let closed = self.calls.end_call(peer_id, room, *at_ms, None).await?;
                if !closed {
                    debug!(%peer_id, %room, "no open call to end");
                }
                Ok(())
            }
            Write::MediaPath {
                peer_id,
                room,
                path,
            } => self
                .calls
                .set_media_path(peer_id, room, *path)
                .await
                .map(|_| ()),
        }
    }

    /// Writes the queue in order until it is empty, waiting out the store's
    /// absence with backoff.
    async fn drain(self: Arc<Self>) {
        let mut backoff = BACKOFF.0;
        let mut retried = 0u64;
        loop {
            let head = {
                let mut state = self.state();
                match state.queue.pop_front() {
                    Some(head) => head,
                    None => {
                        state.draining = false;
                        if retried > 0 {
                            info!(retried, "call history caught up");
                        }
                        return;
                    }
                }
            };
            match self.attempt(&head, RETRY_BOUND).await {
                Attempt::Done => backoff = BACKOFF.0,
                Attempt::Retry(reason) => {
                    debug!(error = %reason, ?backoff, "call history store still unavailable");
                    self.state().queue.push_front(head);
                    retried += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }
}

impl std::fmt::Debug for AccountsCallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsCallLog")
            .field("pending", &self.pending())
            .field("dropped", &self.dropped())
            .finish()
    }
}

#[async_trait]
impl CallLog for AccountsCallLog {
    async fn joined(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError> {
        self.write(Write::Start(CallRecord {
            // One record per participant (a room visit).
            id: format!("{}:{room}:{at_ms}", participant.peer_id),
            user_id: participant.user_id.clone(),
            room: room.to_owned(),
            peer_id: participant.peer_id.clone(),
            started_at: at_ms,
            ended_at: None,
            media_path: None,
        }))
        .await
    }

    async fn left(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError> {
        self.write(Write::End {
            peer_id: participant.peer_id.clone(),
            room: room.to_owned(),
            at_ms,
        })
        .await
    }

    async fn media_path(
        &self,
        participant: &Peer,
        room: &str,
        path: MediaPath,
    ) -> Result<(), CallLogError> {
        let path = match path {
            MediaPath::Direct => StoredPath::Direct,
            MediaPath::Relayed => StoredPath::Relayed,
        };
        self.write(Write::MediaPath {
            peer_id: participant.peer_id.clone(),
            room: room.to_owned(),
            path,
        })
        .await
    }
}

#[cfg(test)]
mod tests;
