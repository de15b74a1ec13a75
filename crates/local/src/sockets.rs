//! The table of open sockets, and the in-process [`Push`] over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tincan_store::{Push, PushError};
use tokio::sync::mpsc;

/// What the gateway can ask a socket's writer task to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Send a text frame.
    Text(String),
    /// Close the socket from the server side with this code and reason.
    Close(u16, &'static str),
}

/// One open socket.
#[derive(Debug, Clone)]
pub(crate) struct SocketEntry {
    pub(crate) tx: mpsc::Sender<Outbound>,
    pub(crate) connected_at_ms: u64,
    pub(crate) last_active_ms: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) source_ip: String,
    pub(crate) user_agent: String,
}

/// Open sockets by connection id.
#[derive(Debug, Clone, Default)]
pub struct SocketTable {
    inner: Arc<Mutex<HashMap<String, SocketEntry>>>,
}

impl SocketTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SocketEntry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, id: String, entry: SocketEntry) {
        self.lock().insert(id, entry);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<SocketEntry> {
        self.lock().get(id).cloned()
    }

    /// The ids of the open sockets (for tests and operators).
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets `id` at once (later pushes answer `Gone`) and closes it.
    pub(crate) fn close(&self, id: &str) -> Result<(), PushError> {
        let entry = self
            .lock()
            .remove(id)
            .ok_or_else(|| PushError::Gone(id.to_owned()))?;
        let _ = entry.tx.try_send(Outbound::Close(1000, "Closed by server"));
        Ok(())
    }

    /// Queues a frame for `id`; `Gone` if no such socket is open.
    pub(crate) fn send(&self, id: &str, out: Outbound) -> Result<(), PushError> {
        let entry = self.get(id).ok_or_else(|| PushError::Gone(id.to_owned()))?;
        match entry.tx.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Gone(id.to_owned())),
            // A client that does not read is cut off rather than buffered
            // without bound, as API Gateway would.
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = entry.tx.try_send(Outbound::Close(1008, "Not reading"));
                Err(PushError::Failed(format!("{id} is not reading")))
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
        self.sockets
            .send(connection_id, Outbound::Text(text.to_owned()))
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.sockets.close(connection_id)
    }
}
