//! The table of open sockets, and the in-process [`Push`] over it.
//!
//! A push never waits for the socket: it queues the frame (bounded) and
//! answers at once. A socket whose queue is full is not reading; it is
//! dropped from the table and closed with 1008, and every push to it from
//! then on answers `Gone`, as API Gateway answers 410.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tincan_store::{Push, PushError};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Why the server closes a socket: the WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseReason {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

/// `DeleteConnection`. API Gateway documents no close code for it; every
/// server-side close in Tincan is a policy decision (a socket far over its
/// message rate, a deleted account), so the emulator says 1008.
pub(crate) const CLOSED_BY_SERVER: CloseReason = CloseReason {
    code: 1008,
    reason: "Closed by server",
};

/// A slow consumer: its outgoing queue is full.
pub(crate) const NOT_READING: CloseReason = CloseReason {
    code: 1008,
    reason: "Not reading its messages",
};

/// Asks a socket's task to close it; the first reason given wins, and it
/// jumps ahead of any frames still queued.
#[derive(Debug, Clone)]
pub(crate) struct Closer(Arc<watch::Sender<Option<CloseReason>>>);

impl Closer {
    pub(crate) fn new() -> (Self, watch::Receiver<Option<CloseReason>>) {
        let (tx, rx) = watch::channel(None);
        (Self(Arc::new(tx)), rx)
    }

    pub(crate) fn close(&self, reason: CloseReason) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// One open socket.
#[derive(Debug, Clone)]
pub(crate) struct SocketEntry {
    pub(crate) tx: mpsc::Sender<String>,
    pub(crate) closer: Closer,
    pub(crate) connected_at_ms: u64,
    pub(crate) last_active_ms: Arc<AtomicU64>,
    pub(crate) source_ip: String,
    pub(crate) user_agent: String,
}

/// The stack is stopping (SIGTERM): every socket is closed with 1001, as
/// a server going down closes its connections.
pub(crate) const SHUTTING_DOWN: CloseReason = CloseReason {
    code: 1001,
    reason: "Going away (server shutting down)",
};

#[derive(Debug, Default)]
struct Tables {
    sockets: HashMap<String, SocketEntry>,
    /// Set once the stack stops: a socket opened after it is closed at once.
    closing: Option<CloseReason>,
}

/// Open sockets by connection id.
#[derive(Debug, Clone, Default)]
pub struct SocketTable {
    inner: Arc<Mutex<Tables>>,
    /// Sockets whose task has not ended yet (their `$disconnect` included).
    running: Arc<watch::Sender<usize>>,
}

/// Held by a socket's task from its start until its `$disconnect` is done.
#[derive(Debug)]
pub(crate) struct Running(Arc<watch::Sender<usize>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl SocketTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a socket's task as running until the guard drops.
    pub(crate) fn running(&self) -> Running {
        self.running.send_modify(|n| *n += 1);
        Running(self.running.clone())
    }

    pub(crate) fn insert(&self, id: String, entry: SocketEntry) {
        let mut tables = self.lock();
        if let Some(reason) = tables.closing {
            entry.closer.close(reason);
            return;
        }
        tables.sockets.insert(id, entry);
    }

    /// Closes every open socket with 1001 (and any opened from now on), and
    /// waits up to `grace` for their tasks to end, `$disconnect` included.
    /// Answers whether they all ended in time.
    pub async fn close_all(&self, grace: std::time::Duration) -> bool {
        let entries: Vec<SocketEntry> = {
            let mut tables = self.lock();
            tables.closing = Some(SHUTTING_DOWN);
            tables.sockets.drain().map(|(_, entry)| entry).collect()
        };
        for entry in &entries {
            entry.closer.close(SHUTTING_DOWN);
        }
        let mut running = self.running.subscribe();
        let ended = tokio::time::timeout(grace, running.wait_for(|n| *n == 0)).await;
        ended.is_ok()
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().sockets.remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<SocketEntry> {
        self.lock().sockets.get(id).cloned()
    }

    /// The ids of the open sockets (for tests and operators).
    pub fn ids(&self) -> Vec<String> {
        self.lock().sockets.keys().cloned().collect()
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.lock().sockets.len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets `id` at once (later pushes answer `Gone`) and closes it.
    pub(crate) fn close(&self, id: &str, reason: CloseReason) -> Result<(), PushError> {
        let entry = self
            .lock()
            .sockets
            .remove(id)
            .ok_or_else(|| PushError::Gone(id.to_owned()))?;
        entry.closer.close(reason);
        Ok(())
    }

    /// Queues a frame for `id` without waiting; `Gone` if no such socket
    /// is open, or if its queue is full (it is then closed: it does not
    /// read its messages).
    pub(crate) fn send(&self, id: &str, text: String) -> Result<(), PushError> {
        // Queued under the lock (it never waits): no copy of the entry.
        let (sent, queued) = {
            let tables = self.lock();
            let entry = tables
                .sockets
                .get(id)
                .ok_or_else(|| PushError::Gone(id.to_owned()))?;
            (entry.tx.try_send(text), entry.tx.max_capacity())
        };
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Gone(id.to_owned())),
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Only the push that removes it logs: one line per socket.
                if self.close(id, NOT_READING).is_ok() {
                    warn!(connection_id = %id, queued, "socket does not read its messages; closing it (1008)");
                }
                Err(PushError::Gone(id.to_owned()))
            }
        }
    }
}

/// Pushes straight into the local socket table.
#[derive(Debug, Clone)]
pub struct LocalPush {
    sockets: SocketTable,
}

impl LocalPush {
    /// A push sink over `sockets`.
    pub fn new(sockets: SocketTable) -> Self {
        Self { sockets }
    }
}

#[async_trait]
impl Push for LocalPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        self.sockets.send(connection_id, text.to_owned())
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.sockets.close(connection_id, CLOSED_BY_SERVER)
    }
}
