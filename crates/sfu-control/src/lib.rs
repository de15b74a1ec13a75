//! The SFU control contract (`docs/sfu.md`), shared by the media node, which
//! serves and verifies, and the signaling side, which mints and calls.
//!
//! - [`mint`] / [`verify_request`] / [`ReplayGuard`]: the control token, an
//!   HS256 JWT keyed with the control secret ([`ControlSecret`],
//!   `TINCAN_SFU_CONTROL_SECRET`), audience [`AUDIENCE`], bound to one
//!   request (method, path, SHA-256 of the body), with a random id the node
//!   accepts once, alive [`TOKEN_LIFETIME_SECS`].
//! - [`JoinRequest`], [`JoinReply`], [`MuteRequest`], [`ErrorBody`]: the
//!   HTTP bodies (camelCase JSON), and [`peer_path`] / [`mute_path`] for the
//!   routes.
//! - [`NodeEvent`] / [`ActiveSpeakers`]: what the node sends on the
//!   `tincan` data channel.
//! - [`SfuControlClient`]: the caller's side of the API, with timeouts, and
//!   [`SfuClientError`] telling an unreachable node from a refusal.
//!
//! Callers pass `now` (seconds since the Unix epoch); nothing here reads a
//! clock (token ids come from `rand`).

mod client;
mod token;

pub use client::{SfuClientError, SfuControlClient, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use token::{
    body_hash, mint, verify, verify_request, Claims, ControlError, ControlSecret, ReplayGuard,
    RequestTarget, SecretError, AUDIENCE, LEEWAY_SECS, MAX_TOKEN_LIFETIME_SECS, MIN_SECRET_BYTES,
    REPLAY_GUARD_CAPACITY, TOKEN_LIFETIME_SECS,
};

use serde::{Deserialize, Serialize};
pub use tincan_signaling::RoomId;

/// Where the control API listens unless configured (`TINCAN_SFU_CONTROL_ADDR`).
pub const DEFAULT_CONTROL_PORT: u16 = 7881;
/// The one UDP port of the SFU's media unless configured (`TINCAN_SFU_UDP_PORT`).
pub const DEFAULT_UDP_PORT: u16 = 3479;
/// Receive slots per participant unless configured (`TINCAN_SFU_SLOTS`).
pub const DEFAULT_SLOTS: usize = 3;
/// Participants per SFU room unless configured (`TINCAN_SFU_ROOM_MAX`).
pub const DEFAULT_ROOM_MAX: usize = 100;
/// The label of the data channel the node sends events on.
pub const DATA_CHANNEL_LABEL: &str = "tincan";
/// Largest request body the node reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Error codes of the control API (the `code` of [`ErrorBody`]).
pub mod codes {
    /// 401: missing, forged or expired token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 401: a token already used once.
    pub const REPLAYED: &str = "replayed";
    /// 403: a good token for another method, path or body.
    pub const FORBIDDEN: &str = "forbidden";
    /// 409: the room has `TINCAN_SFU_ROOM_MAX` participants.
    pub const ROOM_FULL: &str = "room-full";
    /// 400: the offer is not SDP the node can answer.
    pub const BAD_SDP: &str = "bad-sdp";
    /// 400: a body that is not the expected JSON, or a bad room/peer id.
    pub const INVALID_REQUEST: &str = "invalid-request";
    /// 413: a body over [`crate::MAX_BODY_BYTES`].
    pub const TOO_LARGE: &str = "too-large";
    /// 503: the node takes no new participants.
    pub const DRAINING: &str = "draining";
    /// 503: the node is at its concurrency cap, or remembers as many live
    /// control tokens as it may; retry.
    pub const BUSY: &str = "busy";
    /// 500: the node failed.
    pub const INTERNAL: &str = "internal";
    /// 404: no such route.
    pub const NOT_FOUND: &str = "not-found";
    /// What the signaling side tells a client when the node cannot be
    /// reached or answers nonsense.
    pub const SFU_UNAVAILABLE: &str = "sfu-unavailable";
}

/// `PUT /sfu/v1/rooms/{room}/peers/{peerId}`: join or rejoin. The node
/// knows a participant by its room and peer id only (from the path); who
/// the user is stays with the signaling. Unknown fields are ignored, so a
/// caller that still sends `userId` or `displayName` is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The browser's complete SDP offer (every candidate in it).
    pub offer: String,
    /// Whether it joins muted (a listener always does).
    #[serde(default)]
    pub muted: bool,
}

/// The reply to a [`JoinRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    /// The node's SDP answer (complete; no trickle).
    pub answer: String,
}

/// `POST /sfu/v1/rooms/{room}/peers/{peerId}/mute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteRequest {
    pub muted: bool,
}

/// Every error reply: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// The path of a participant: `/sfu/v1/rooms/{room}/peers/{peer}`. Room
/// and peer ids are checked by [`valid_room_id`] and [`valid_peer_id`] and
/// need no escaping.
pub fn peer_path(room: &str, peer: &str) -> String {
    format!("/sfu/v1/rooms/{room}/peers/{peer}")
}

/// The mute path of a participant.
pub fn mute_path(room: &str, peer: &str) -> String {
    format!("{}/mute", peer_path(room, peer))
}

/// A room id: 1-64 of `[A-Za-z0-9_-]`, the signaling's [`RoomId`] rule (the
/// one place it is written).
pub fn valid_room_id(room: &str) -> bool {
    RoomId::is_valid(room)
}

/// A peer id: 1-128 of `[A-Za-z0-9_-]`.
pub fn valid_peer_id(peer: &str) -> bool {
    (1..=128).contains(&peer.len())
        && peer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Events from the node on the `tincan` data channel (JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NodeEvent {
    /// Who is in which receive slot; sent on change and at least every
    /// [`ACTIVE_SPEAKERS_EVERY_SECS`].
    ActiveSpeakers(ActiveSpeakers),
}

/// Longest gap between two `active-speakers` events.
pub const ACTIVE_SPEAKERS_EVERY_SECS: u64 = 2;

/// One entry per receive slot, `None` (`null`) for a silent slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSpeakers {
    pub slots: Vec<Option<SlotSpeaker>>,
}

/// Who speaks in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotSpeaker {
    pub slot: usize,
    pub peer_id: String,
    /// The smoothed RFC 6464 level in -dBov: 0 loudest, -127 silence.
    pub level: i8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_request_is_camel_case_and_muted_defaults_to_false() {
        // A caller that still names the user is served; the node reads
        // the offer and the mute only.
        let req: JoinRequest =
            serde_json::from_str(r#"{"offer": "v=0", "userId": "u1", "displayName": "Ada"}"#)
                .unwrap();
        assert_eq!(
            req,
            JoinRequest {
                offer: "v=0".into(),
                muted: false,
            }
        );
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json, serde_json::json!({"offer": "v=0", "muted": false}));
    }

    #[test]
    fn active_speakers_matches_the_contract() {
        let event = NodeEvent::ActiveSpeakers(ActiveSpeakers {
            slots: vec![
                Some(SlotSpeaker {
                    slot: 0,
                    peer_id: "p1".into(),
                    level: -23,
                }),
                None,
            ],
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "active-speakers",
                "slots": [{"slot": 0, "peerId": "p1", "level": -23}, null]
            })
        );
        assert_eq!(serde_json::from_value::<NodeEvent>(json).unwrap(), event);
    }

    #[test]
    fn error_body_has_the_http_api_shape() {
        let json = serde_json::to_value(ErrorBody::new(codes::ROOM_FULL, "full")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "room-full", "message": "full"}})
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_room_id("room_1-A"));
        assert!(!valid_room_id(""));
        assert!(!valid_room_id("a/b"));
        assert!(!valid_room_id(&"r".repeat(65)));
        assert!(valid_peer_id("3f2a-b_c"));
        assert!(!valid_peer_id(".."));
        assert!(!valid_peer_id("a b"));
        assert!(!valid_peer_id("../x"));
        assert_eq!(peer_path("r", "p"), "/sfu/v1/rooms/r/peers/p");
        assert_eq!(mute_path("r", "p"), "/sfu/v1/rooms/r/peers/p/mute");
    }
}
