//! The room's SFU, as the signaling sees it: where an `sfu-offer` goes and
//! what a participant's mute and departure tell the media node
//! (docs/sfu.md). The node's HTTP control API sits behind this trait, so
//! the handlers stay free of IO and tests can stand in for a node.

use async_trait::async_trait;
use tincan_media_routing::SfuLocator;
use tincan_sfu_control::{codes, JoinRequest, SfuClientError, SfuControlClient};
use tincan_signaling::{ErrorCode, Peer, ProtocolError};

/// Why the SFU did not take a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// No media node serves the room (none alive, or no SFU configured).
    #[error("no media node with an SFU is available for this room")]
    NoNode,
    /// The node did not answer in time, or not over HTTP.
    #[error("the media node could not be reached: {0}")]
    Unreachable(String),
    /// The node answered with an error of its own.
    #[error("the media node refused: {code}: {message}")]
    Refused {
        /// Its stable code, e.g. `room-full`.
        code: String,
        /// Its message.
        message: String,
    },
}

impl SfuError {
    /// What the participant is told: a stable code and a sentence of our
    /// own. Only the node's answers about the participant's own request
    /// (a full room, an offer it cannot take) pass their message on; what
    /// went wrong between us and the node (its address, the HTTP client's
    /// error text) stays in our logs.
    pub fn to_protocol(&self) -> ProtocolError {
        match self {
            SfuError::Refused { code, message } if code == codes::ROOM_FULL => {
                ProtocolError::new(ErrorCode::RoomFull, message.clone())
            }
            SfuError::Refused { code, message } if code == codes::BAD_SDP => {
                ProtocolError::new(ErrorCode::BadRequest, message.clone())
            }
            SfuError::NoNode => ProtocolError::new(
                ErrorCode::SfuUnavailable,
                "no media node is available for this room; try again shortly",
            ),
            _ => ProtocolError::new(
                ErrorCode::SfuUnavailable,
                "the media node is unavailable; try again shortly",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_participant_is_told_names_no_node() {
        let unreachable = SfuError::Unreachable(
            "error sending request for url (http://10.0.0.5:7881/rooms/r/participants/p)".into(),
        );
        let refused = SfuError::Refused {
            code: "unauthorized".into(),
            message: "control token replayed at 10.0.0.5".into(),
        };
        for err in [unreachable, refused, SfuError::NoNode] {
            let told = err.to_protocol();
            assert_eq!(told.code, ErrorCode::SfuUnavailable, "{err}");
            assert!(!told.message.contains("10.0.0.5"), "{}", told.message);
            assert!(!told.message.contains("http"), "{}", told.message);
        }
        let full = SfuError::Refused {
            code: "room-full".into(),
            message: "the room is full".into(),
        };
        assert_eq!(full.to_protocol().code, ErrorCode::RoomFull);
    }
}

/// The SFU of each room's media node.
#[async_trait]
pub trait SfuGateway: Send + Sync {
    /// Connects `peer` of `room` with its complete `offer`; the node's
    /// answer. A second call replaces the participant's connection.
    async fn join(
        &self,
        room: &str,
        peer: &Peer,
        offer: &str,
        now_secs: u64,
    ) -> Result<String, SfuError>;

    /// Whether the participant's packets are forwarded.
    async fn mute(
        &self,
        room: &str,
        peer_id: &str,
        muted: bool,
        now_secs: u64,
    ) -> Result<(), SfuError>;

    /// Ends the participant's SFU connection (idempotent).
    async fn leave(&self, room: &str, peer_id: &str, now_secs: u64) -> Result<(), SfuError>;
}

/// No SFU: rooms past the mesh size get `sfu-unavailable` on `sfu-offer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSfu;

#[async_trait]
impl SfuGateway for NoSfu {
    async fn join(&self, _: &str, _: &Peer, _: &str, _: u64) -> Result<String, SfuError> {
        Err(SfuError::NoNode)
    }

    async fn mute(&self, _: &str, _: &str, _: bool, _: u64) -> Result<(), SfuError> {
        Ok(())
    }

    async fn leave(&self, _: &str, _: &str, _: u64) -> Result<(), SfuError> {
        Ok(())
    }
}

/// The SFU behind each room's media node's control API, reached over HTTP
/// with a short-lived control token per call.
pub struct NodeSfu<L> {
    client: SfuControlClient,
    locator: L,
}

impl<L> NodeSfu<L> {
    /// Calls the node `locator` names for each room, through `client`.
    pub fn new(client: SfuControlClient, locator: L) -> Self {
        Self { client, locator }
    }
}

impl<L> std::fmt::Debug for NodeSfu<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSfu").finish_non_exhaustive()
    }
}

/// A refusal about the participant's request keeps the node's code; a
/// refused control token is a matter between us and the node, told to the
/// participant as the node being unavailable (`client_code`).
fn from_client(err: SfuClientError) -> SfuError {
    let code = err.client_code().to_owned();
    match err {
        SfuClientError::Refused { message, .. } if code != codes::SFU_UNAVAILABLE => {
            SfuError::Refused { code, message }
        }
        other => SfuError::Unreachable(other.to_string()),
    }
}

#[async_trait]
impl<L: SfuLocator> SfuGateway for NodeSfu<L> {
    async fn join(
        &self,
        room: &str,
        peer: &Peer,
        offer: &str,
        now_secs: u64,
    ) -> Result<String, SfuError> {
        let base = self
            .locator
            .control_url(room, now_secs)
            .await
            .ok_or(SfuError::NoNode)?;
        let request = JoinRequest {
            offer: offer.to_owned(),
            muted: peer.muted,
        };
        self.client
            .join(&base, room, &peer.peer_id, &request, now_secs)
            .await
            .map(|reply| reply.answer)
            .map_err(from_client)
    }

    async fn mute(
        &self,
        room: &str,
        peer_id: &str,
        muted: bool,
        now_secs: u64,
    ) -> Result<(), SfuError> {
        let base = self
            .locator
            .control_url(room, now_secs)
            .await
            .ok_or(SfuError::NoNode)?;
        self.client
            .mute(&base, room, peer_id, muted, now_secs)
            .await
            .map_err(from_client)
    }

    async fn leave(&self, room: &str, peer_id: &str, now_secs: u64) -> Result<(), SfuError> {
        let Some(base) = self.locator.control_url(room, now_secs).await else {
            // No node: nothing holds the participant.
            return Ok(());
        };
        self.client
            .leave(&base, room, peer_id, now_secs)
            .await
            .map_err(from_client)
    }
}
