//! Call history, as seen from signaling: a peer entered or left a room.

use async_trait::async_trait;
use tincan_signaling::{MediaPath, Peer};

/// A call-history write that failed. Signaling goes on; the failure is logged.
#[derive(Debug, thiserror::Error)]
#[error("call log write failed: {0}")]
pub struct CallLogError(pub String);

/// Records who was in which room, from when to when.
#[async_trait]
pub trait CallLog: Send + Sync {
    /// `participant` entered `room` at `at_ms`.
    async fn joined(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError>;

    /// `participant` left `room` at `at_ms` (or its resume grace ran out).
    async fn left(&self, participant: &Peer, room: &str, at_ms: u64) -> Result<(), CallLogError>;

    /// `participant`'s media in `room` goes by `path` (as its browser reports).
    async fn media_path(
        &self,
        participant: &Peer,
        room: &str,
        path: MediaPath,
    ) -> Result<(), CallLogError>;
}
