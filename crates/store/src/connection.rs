//! Live WebSocket connections and the rooms they are in.

use async_trait::async_trait;
use tincan_signaling::{Peer, RoomView, Sender};

use crate::error::StoreError;

/// How long a connection record lives without being removed: API Gateway
/// closes every WebSocket after 2 hours, plus slack for a late `$disconnect`.
pub const CONNECTION_TTL_SECS: u64 = 2 * 3600 + 300;

/// One live connection, as stored at `$connect` and updated by `join`,
/// `leave` and `mute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The API Gateway connection id; also the peer id.
    pub connection_id: String,
    /// The user, from the verified access token.
    pub user_id: String,
    /// The display name, from the verified access token.
    pub display_name: String,
    /// The room the connection is in.
    pub room: Option<String>,
    /// Whether the user's microphone is muted.
    pub muted: bool,
    /// When the connection was opened, milliseconds since the epoch.
    pub connected_at_ms: u64,
    /// When the record stops counting, seconds since the epoch (DynamoDB TTL).
    pub expires_at: u64,
}

impl ConnectionRecord {
    /// A fresh record for a connection opened at `now_ms`, in no room.
    pub fn new(
        connection_id: impl Into<String>,
        user_id: impl Into<String>,
        display_name: impl Into<String>,
        now_ms: u64,
    ) -> Self {
        Self {
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            display_name: display_name.into(),
            room: None,
            muted: false,
            connected_at_ms: now_ms,
            expires_at: now_ms / 1000 + CONNECTION_TTL_SECS,
        }
    }

    /// Whether the record still counts at `now_secs`.
    pub fn is_live(&self, now_secs: u64) -> bool {
        now_secs < self.expires_at
    }

    /// The connection as other peers see it.
    pub fn peer(&self) -> Peer {
        Peer {
            peer_id: self.connection_id.clone(),
            user_id: self.user_id.clone(),
            display_name: self.display_name.clone(),
            muted: self.muted,
        }
    }

    /// The connection as the signaling core takes it.
    pub fn sender(&self) -> Sender {
        Sender {
            peer: self.peer(),
            room: self.room.clone(),
        }
    }
}

/// A room's members as the signaling core takes them.
pub fn room_view(room: &str, members: &[ConnectionRecord]) -> RoomView {
    RoomView {
        room: room.to_owned(),
        members: members.iter().map(ConnectionRecord::peer).collect(),
    }
}

/// What [`ConnectionStore::join_room`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The connection is now in the room.
    Joined,
    /// The room already holds `room_max` live members; nothing was written.
    RoomFull,
    /// No live connection has that id; nothing was written.
    UnknownConnection,
}

/// Live connections and room membership.
///
/// Every read filters out records past their `expires_at`: DynamoDB's TTL
/// deletes late (up to days), and some emulators never do.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection (at `$connect`), replacing any record with
    /// the same id.
    async fn put(&self, record: &ConnectionRecord) -> Result<(), StoreError>;

    /// The live connection `id` at `now_secs`.
    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Removes connection `id` and its room membership; returns the record it
    /// had, or `None` if it was already gone.
    async fn remove(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Puts connection `id` into `room` if, counting only live members other
    /// than `id`, the room holds fewer than `room_max`. Atomic against
    /// concurrent joins: two joiners never both take the last seat.
    async fn join_room(
        &self,
        id: &str,
        room: &str,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError>;

    /// Takes connection `id` out of `room`; a no-op if it is not in it.
    async fn leave_room(&self, id: &str, room: &str) -> Result<(), StoreError>;

    /// Stores the connection's mute state; a no-op for an unknown id.
    async fn set_muted(&self, id: &str, muted: bool) -> Result<(), StoreError>;

    /// The live members of `room` at `now_secs`, oldest connection first.
    async fn room_members(
        &self,
        room: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
}
