//! In-memory connection store, for the local stack and tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::connection::{ConnectionRecord, ConnectionStore, JoinOutcome};
use crate::error::StoreError;

/// Connections in a map behind one lock; membership is the record's `room`.
///
/// Every method takes the lock once and never across an await, so each call
/// is atomic, as the trait requires of `join_room`.
#[derive(Debug, Default)]
pub struct MemoryConnectionStore {
    connections: Mutex<HashMap<String, ConnectionRecord>>,
}

impl MemoryConnectionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ConnectionRecord>) -> T) -> T {
        // A poisoned lock only means another caller panicked mid-call; the
        // map itself is always left whole by the methods below.
        let mut guard = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn put(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.with(|map| map.insert(record.connection_id.clone(), record.clone()));
        Ok(())
    }

    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.with(|map| map.get(id).filter(|r| r.is_live(now_secs)).cloned()))
    }

    async fn remove(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.with(|map| map.remove(id)))
    }

    async fn join_room(
        &self,
        id: &str,
        room: &str,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError> {
        Ok(self.with(|map| {
            if !map.get(id).is_some_and(|r| r.is_live(now_secs)) {
                return JoinOutcome::UnknownConnection;
            }
            let others = map
                .values()
                .filter(|r| {
                    r.connection_id != id && r.room.as_deref() == Some(room) && r.is_live(now_secs)
                })
                .count();
            if others >= room_max {
                return JoinOutcome::RoomFull;
            }
            if let Some(record) = map.get_mut(id) {
                record.room = Some(room.to_owned());
            }
            JoinOutcome::Joined
        }))
    }

    async fn leave_room(&self, id: &str, room: &str) -> Result<(), StoreError> {
        self.with(|map| {
            if let Some(record) = map.get_mut(id) {
                if record.room.as_deref() == Some(room) {
                    record.room = None;
                }
            }
        });
        Ok(())
    }

    async fn set_muted(&self, id: &str, muted: bool) -> Result<(), StoreError> {
        self.with(|map| {
            if let Some(record) = map.get_mut(id) {
                record.muted = muted;
            }
        });
        Ok(())
    }

    async fn room_members(
        &self,
        room: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut members: Vec<ConnectionRecord> = self.with(|map| {
            map.values()
                .filter(|r| r.room.as_deref() == Some(room) && r.is_live(now_secs))
                .cloned()
                .collect()
        });
        members.sort_by(|a, b| {
            (a.connected_at_ms, &a.connection_id).cmp(&(b.connected_at_ms, &b.connection_id))
        });
        Ok(members)
    }
}
