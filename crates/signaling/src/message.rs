//! The JSON messages of the signaling protocol, exactly as `docs/protocol.md` names
//! them: client messages carry an `action`, server messages a `type`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, ProtocolError};
use crate::room_id::RoomId;

/// Longest peer id or resume-token part a client may send.
pub const MAX_ID_LEN: usize = 128;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Enter a room (leaving the current one, if any).
    Join {
        /// The room id, checked as it is parsed.
        room: RoomId,
    },
    /// Leave the current room.
    Leave,
    /// Relay `data` verbatim to peer `to` in the sender's room.
    Signal {
        /// The receiving peer's id.
        to: String,
        /// An SDP offer/answer or ICE candidate; never inspected.
        data: Value,
    },
    /// Tell the room whether the sender's microphone is muted.
    Mute {
        /// Muted or not.
        muted: bool,
    },
    /// Keepalive; answered with `pong`.
    Ping,
    /// How the sender's media in its room goes, for call history: the
    /// browser reports its selected ICE candidate pair.
    Media {
        /// `direct` or `relayed`.
        path: MediaPath,
    },
    /// Speak again for participant `peer_id` after a socket cut, with the
    /// resume token from its last `joined` or `resumed`.
    #[serde(rename_all = "camelCase")]
    Resume {
        /// The participant to resume.
        peer_id: String,
        /// Its current resume token.
        token: String,
    },
    /// In an SFU-mode room: the sender's complete SDP offer for its
    /// connection to the room's media node (docs/sfu.md).
    SfuOffer {
        /// The offer, with every ICE candidate.
        sdp: String,
    },
}

/// How a room's audio flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Every pair of participants peer to peer.
    Mesh,
    /// Every participant to the room's media node.
    Sfu,
}

/// What an SFU-mode participant receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuInfo {
    /// How many receive slots its offer must carry.
    pub slots: usize,
}

/// How a peer's media flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaPath {
    /// Peer to peer (host or server-reflexive candidates).
    Direct,
    /// Through a TURN relay.
    Relayed,
}

/// The actions a client may send, for the `unknown-action` check.
const ACTIONS: [&str; 8] = [
    "join",
    "leave",
    "signal",
    "mute",
    "ping",
    "media",
    "resume",
    "sfu-offer",
];

impl ClientMessage {
    /// Parses one client frame. Size limits are the caller's (see
    /// [`crate::Core::parse`]); this checks JSON, the action and the fields.
    pub(crate) fn from_json(text: &str) -> Result<Self, ProtocolError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(
                ErrorCode::BadRequest,
                excerpt(&format!("invalid JSON: {e}")),
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(ProtocolError::new(
                ErrorCode::BadRequest,
                "a message must be a JSON object",
            ));
        };
        let action = match object.get("action") {
            Some(Value::String(action)) => action.as_str(),
            Some(_) => {
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "`action` must be a string",
                ))
            }
            None => {
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "missing field `action`",
                ))
            }
        };
        if !ACTIONS.contains(&action) {
            return Err(ProtocolError::new(
                ErrorCode::UnknownAction,
                format!(
                    "unknown action `{}`",
                    action.chars().take(32).collect::<String>()
                ),
            ));
        }
        let message: ClientMessage = serde_json::from_value(value)
            .map_err(|e| ProtocolError::new(ErrorCode::BadRequest, excerpt(&e.to_string())))?;
        match &message {
            ClientMessage::Signal { to, .. } if to.is_empty() => {
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "`to` must name a peer",
                ))
            }
            ClientMessage::Resume { peer_id, token }
                if peer_id.is_empty()
                    || peer_id.len() > MAX_ID_LEN
                    || token.is_empty()
                    || token.len() > MAX_ID_LEN * 2 =>
            {
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "`resume` needs the `peerId` and `token` from `joined`",
                ))
            }
            ClientMessage::SfuOffer { sdp } if !sdp.starts_with("v=0") => {
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "`sdp` must be an SDP offer",
                ))
            }
            _ => {}
        }
        Ok(message)
    }
}

/// At most the first 200 characters of a refusal: serde quotes the
/// offending value whole, and a refusal must never outgrow the frame.
fn excerpt(message: &str) -> String {
    const MAX_CHARS: usize = 200;
    match message.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// A participant as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// The participant's id: random, stable for its stay in the room across
    /// socket reconnects, never a connection id.
    pub peer_id: String,
    /// The user's id, from their access token.
    pub user_id: String,
    /// The user's display name, from their access token.
    pub display_name: String,
    /// Whether the peer's microphone is muted.
    pub muted: bool,
    /// A listen-only participant (joined with a join token that may not
    /// speak): always muted. Absent on the wire when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub listen_only: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// One entry of `iceServers`, as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub credential: Option<String>,
}

/// The credential to resume a participant after a socket cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeGrant {
    /// Present it in `resume`; it works once, for this participant, by this
    /// user, within the grace after the socket drops.
    pub token: String,
    /// How long after a socket cut the participant may resume.
    pub grace_secs: u64,
}

/// The room as the sender finds it on entering: the body of both `joined`
/// and `resumed`, whose fields sit beside `type` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    /// The room.
    pub room: RoomId,
    /// The sender as the others see it.
    #[serde(rename = "self")]
    pub self_peer: Peer,
    /// Everyone else in the room.
    pub peers: Vec<Peer>,
    /// STUN/TURN servers for this room.
    pub ice_servers: Vec<IceServer>,
    /// How to speak for this participant again after a socket cut.
    pub resume: ResumeGrant,
    /// How the room's audio flows.
    pub mode: MediaMode,
    /// In SFU mode: what the offer to the node carries.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sfu: Option<SfuInfo>,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// The sender is in `room`, with `peers` already there.
    Joined(RoomState),
    /// The sender speaks for its participant again after a socket cut: the
    /// room as it is now, with a new resume token (the one just used no
    /// longer works). Kept `signal`s follow.
    Resumed(RoomState),
    /// Someone entered the receiver's room.
    PeerJoined {
        /// Who.
        peer: Peer,
    },
    /// Someone left the receiver's room (or their connection closed).
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// Who.
        peer_id: String,
    },
    /// Someone in the room muted or unmuted.
    #[serde(rename_all = "camelCase")]
    PeerMuted {
        /// Who.
        peer_id: String,
        /// Now muted or not.
        muted: bool,
    },
    /// A relayed `signal`.
    Signal {
        /// The sending participant's id, as stored.
        from: String,
        /// The receiving participant's id: a client drops a signal for a
        /// participant it no longer is (it moved rooms meanwhile), since
        /// nothing orders frames.
        to: String,
        /// The payload, verbatim.
        data: Value,
    },
    /// The room moved to `mode` (today only ever to the SFU): set up the
    /// SFU connection, then close the mesh links (make-before-break).
    RoomMode {
        /// The new mode.
        mode: MediaMode,
        /// In SFU mode: what the offer to the node carries.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        sfu: Option<SfuInfo>,
    },
    /// The media node's answer to the receiver's `sfu-offer`.
    SfuAnswer {
        /// The answer, with the node's candidates.
        sdp: String,
    },
    /// Answer to `ping`.
    Pong,
    /// A refused message; the connection stays up.
    #[serde(rename_all = "camelCase")]
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// With `rate-limited`: how long to wait before sending again.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMessage {
    /// The JSON text frame for this message.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ProtocolError {
    /// The `error` message to send back to the client.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message.clone(),
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<ClientMessage, ErrorCode> {
        ClientMessage::from_json(text).map_err(|e| e.code)
    }

    #[test]
    fn client_messages_parse_from_design_json() {
        assert_eq!(
            parse(r#"{"action":"join","room":"team-42_a"}"#),
            Ok(ClientMessage::Join {
                room: RoomId::new("team-42_a").unwrap()
            })
        );
        assert_eq!(parse(r#"{"action":"leave"}"#), Ok(ClientMessage::Leave));
        assert_eq!(
            parse(r#"{"action":"signal","to":"c1","data":{"sdp":"v=0"}}"#),
            Ok(ClientMessage::Signal {
                to: "c1".into(),
                data: json!({"sdp": "v=0"})
            })
        );
        assert_eq!(
            parse(r#"{"action":"mute","muted":true}"#),
            Ok(ClientMessage::Mute { muted: true })
        );
        assert_eq!(parse(r#"{"action":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(
            parse(r#"{"action":"media","path":"relayed"}"#),
            Ok(ClientMessage::Media {
                path: MediaPath::Relayed
            })
        );
        assert_eq!(
            parse(r#"{"action":"media","path":"carrier-pigeon"}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            parse(r#"{"action":"resume","peerId":"p1","token":"r.abc"}"#),
            Ok(ClientMessage::Resume {
                peer_id: "p1".into(),
                token: "r.abc".into()
            })
        );
        assert_eq!(
            parse(r#"{"action":"resume","peerId":"","token":"r.abc"}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            parse(r#"{"action":"resume","peerId":"p1"}"#),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn bad_frames_get_stable_codes() {
        assert_eq!(parse("not json"), Err(ErrorCode::BadRequest));
        assert_eq!(parse("[1,2]"), Err(ErrorCode::BadRequest));
        assert_eq!(parse(r#"{"room":"a"}"#), Err(ErrorCode::BadRequest));
        assert_eq!(parse(r#"{"action":7}"#), Err(ErrorCode::BadRequest));
        assert_eq!(
            parse(r#"{"action":"dance"}"#),
            Err(ErrorCode::UnknownAction)
        );
        assert_eq!(parse(r#"{"action":"join"}"#), Err(ErrorCode::BadRequest));
        assert_eq!(
            parse(r#"{"action":"signal","to":"x"}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            parse(r#"{"action":"signal","to":"","data":1}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            parse(r#"{"action":"mute","muted":"yes"}"#),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn room_ids_follow_the_pattern() {
        assert!(RoomId::is_valid("a"));
        assert!(RoomId::is_valid(&"x".repeat(64)));
        for bad in [
            "",
            "has space",
            "dot.dot",
            "ünïcode",
            "slash/",
            &"x".repeat(65),
        ] {
            assert!(!RoomId::is_valid(bad), "{bad:?} accepted");
        }
        assert_eq!(
            parse(r#"{"action":"join","room":"../etc"}"#),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn server_messages_serialize_to_design_json() {
        let peer = Peer {
            peer_id: "c1".into(),
            user_id: "u1".into(),
            display_name: "Ada".into(),
            muted: false,
            listen_only: false,
        };
        let joined = ServerMessage::Joined(RoomState {
            room: RoomId::new("r").unwrap(),
            self_peer: peer.clone(),
            peers: vec![],
            ice_servers: vec![IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                username: None,
                credential: None,
            }],
            resume: ResumeGrant {
                token: "r.s3cret".into(),
                grace_secs: 30,
            },
            mode: MediaMode::Mesh,
            sfu: None,
        });
        // Byte for byte, field order included, as before `RoomState`.
        assert_eq!(
            joined.to_json(),
            r#"{"type":"joined","room":"r","self":{"peerId":"c1","userId":"u1","displayName":"Ada","muted":false},"peers":[],"iceServers":[{"urls":["stun:127.0.0.1:3478"]}],"resume":{"token":"r.s3cret","graceSecs":30},"mode":"mesh"}"#
        );
        assert_eq!(
            serde_json::to_value(&joined).unwrap(),
            json!({"type":"joined","room":"r","self":{"peerId":"c1","userId":"u1","displayName":"Ada","muted":false},
                   "peers":[],"iceServers":[{"urls":["stun:127.0.0.1:3478"]}],
                   "resume":{"token":"r.s3cret","graceSecs":30},"mode":"mesh"})
        );
        assert_eq!(
            serde_json::to_value(ServerMessage::PeerLeft {
                peer_id: "c2".into()
            })
            .unwrap(),
            json!({"type":"peer-left","peerId":"c2"})
        );
        assert_eq!(
            serde_json::to_value(ServerMessage::PeerMuted {
                peer_id: "c2".into(),
                muted: true
            })
            .unwrap(),
            json!({"type":"peer-muted","peerId":"c2","muted":true})
        );
        assert_eq!(
            serde_json::to_value(ServerMessage::Pong).unwrap(),
            json!({"type":"pong"})
        );
        assert_eq!(
            serde_json::to_value(ServerMessage::Error {
                code: ErrorCode::RoomFull,
                message: "full".into(),
                retry_after_ms: None,
            })
            .unwrap(),
            json!({"type":"error","code":"room-full","message":"full"})
        );
        assert_eq!(
            serde_json::to_value(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message: "slow".into(),
                retry_after_ms: Some(50),
            })
            .unwrap(),
            json!({"type":"error","code":"rate-limited","message":"slow","retryAfterMs":50})
        );
        let back: ServerMessage = serde_json::from_str(&joined.to_json()).unwrap();
        assert_eq!(back, joined);
    }
}
