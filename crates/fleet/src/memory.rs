//! The in-memory registry, for the local stack and tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{FleetError, MediaNodeInfo, MediaNodeStore, NodeRecord, NodeState};

/// Nodes in a map; expired records are skipped on read and swept on write.
#[derive(Debug, Default)]
pub struct InMemoryMediaNodeStore {
    nodes: Mutex<BTreeMap<String, NodeRecord>>,
}

impl InMemoryMediaNodeStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<String, NodeRecord>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl MediaNodeStore for InMemoryMediaNodeStore {
    async fn heartbeat(
        &self,
        mut info: MediaNodeInfo,
        now: u64,
        ttl_secs: u64,
    ) -> Result<(), FleetError> {
        let mut nodes = self.nodes();
        nodes.retain(|_, n| n.is_alive(now));
        if let Some(old) = nodes.get(&info.id) {
            if old.info.state == NodeState::Draining {
                info.state = NodeState::Draining;
            }
        }
        let record = NodeRecord {
            heartbeat_at: now,
            expires_at: now.saturating_add(ttl_secs),
            info,
        };
        nodes.insert(record.info.id.clone(), record);
        Ok(())
    }

    async fn set_draining(&self, id: &str, now: u64) -> Result<(), FleetError> {
        match self.nodes().get_mut(id) {
            Some(n) if n.is_alive(now) => {
                n.info.state = NodeState::Draining;
                Ok(())
            }
            _ => Err(FleetError::NotFound(id.to_owned())),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), FleetError> {
        self.nodes().remove(id);
        Ok(())
    }

    async fn list_alive(&self, now: u64) -> Result<Vec<NodeRecord>, FleetError> {
        Ok(self
            .nodes()
            .values()
            .filter(|n| n.is_alive(now))
            .cloned()
            .collect())
    }
}
