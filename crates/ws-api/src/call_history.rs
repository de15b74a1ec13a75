//! [`CallLog`] over the accounts' call store: a join starts a call record, a
//! leave (or a closed socket) ends it.

use std::sync::Arc;

use async_trait::async_trait;
use tincan_accounts::model::CallRecord;
use tincan_accounts::CallStore;
use tincan_signaling::{MediaPath, Peer};

use crate::call_log::{CallLog, CallLogError};

/// Writes call history to a [`CallStore`] (MongoDB or the embedded store).
#[derive(Clone)]
pub struct AccountsCallLog {
    calls: Arc<dyn CallStore>,
}

impl AccountsCallLog {
    /// Call history in `calls`.
    pub fn new(calls: Arc<dyn CallStore>) -> Self {
        Self { calls }
    }
}

impl std::fmt::Debug for AccountsCallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountsCallLog")
    }
}

#[async_trait]
impl CallLog for AccountsCallLog {
    async fn joined(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError> {
        let record = CallRecord {
            // One record per participant (a room visit).
            id: format!("{}:{room}:{at_ms}", participant.peer_id),
            user_id: participant.user_id.clone(),
            room: room.to_owned(),
            peer_id: participant.peer_id.clone(),
            started_at: at_ms,
            ended_at: None,
            media_path: None,
        };
        self.calls
            .start_call(&record)
            .await
            .map_err(|e| CallLogError(e.to_string()))
    }

    async fn left(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError> {
        self.calls
            .end_call(&participant.peer_id, room, at_ms, None)
            .await
            .map(|_| ())
            .map_err(|e| CallLogError(e.to_string()))
    }

    async fn media_path(
        &self,
        participant: &Peer,
        room: &str,
        path: MediaPath,
    ) -> Result<(), CallLogError> {
        let path = match path {
            MediaPath::Direct => tincan_accounts::model::MediaPath::Direct,
            MediaPath::Relayed => tincan_accounts::model::MediaPath::Relayed,
        };
        self.calls
            .set_media_path(&participant.peer_id, room, path)
            .await
            .map(|_| ())
            .map_err(|e| CallLogError(e.to_string()))
    }
}
