//! The in-memory registry, for the local stack and tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{
    validate_node_id, FleetError, MediaNodeInfo, MediaNodeStore, NodeRecord, NodeState,
    RoomAssignment,
};

/// Nodes and room assignments in maps; expired entries are skipped on read
/// and swept on write.
#[derive(Debug, Default)]
pub struct InMemoryMediaNodeStore {
    nodes: Mutex<BTreeMap<String, NodeRecord>>,
    rooms: Mutex<BTreeMap<String, RoomAssignment>>,
}

impl InMemoryMediaNodeStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<String, NodeRecord>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rooms(&self) -> MutexGuard<'_, BTreeMap<String, RoomAssignment>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
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
        validate_node_id(&info.id)?;
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

    async fn room_node(&self, room: &str, now: u64) -> Result<Option<RoomAssignment>, FleetError> {
        Ok(self.rooms().get(room).filter(|a| a.is_live(now)).cloned())
    }

    async fn assign_room(
        &self,
        room: &str,
        expected: Option<&str>,
        node_id: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<bool, FleetError> {
        validate_node_id(node_id)?;
        let mut rooms = self.rooms();
        rooms.retain(|_, a| a.is_live(now));
        let current = rooms.get(room).map(|a| a.node_id.as_str());
        if current != expected {
            return Ok(false);
        }
        rooms.insert(
            room.to_owned(),
            RoomAssignment {
                node_id: node_id.to_owned(),
                expires_at: now.saturating_add(ttl_secs),
            },
        );
        Ok(true)
    }
}
