//! Every server message, with any field values, serializes to JSON that a
//! client reads back as the same message, tagged with its `type`.

mod strategy;

use proptest::prelude::*;
use serde_json::Value;
use strategy::{any_json, any_text, budget, room_id, ALL_CODES};
use tincan_signaling::{
    IceServer, MediaMode, Peer, ResumeGrant, RoomId, RoomState, ServerMessage, SfuInfo,
};

fn peer() -> impl Strategy<Value = Peer> {
    (
        any_text(32),
        any_text(32),
        any_text(32),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(peer_id, user_id, display_name, muted, listen_only)| Peer {
                peer_id,
                user_id,
                display_name,
                muted,
                listen_only,
            },
        )
}

fn ice_server() -> impl Strategy<Value = IceServer> {
    (
        proptest::collection::vec(any_text(48), 0..4),
        proptest::option::of(any_text(48)),
        proptest::option::of(any_text(48)),
    )
        .prop_map(|(urls, username, credential)| IceServer {
            urls,
            username,
            credential,
        })
}

fn media() -> impl Strategy<Value = (MediaMode, Option<SfuInfo>)> {
    prop_oneof![
        Just((MediaMode::Mesh, None)),
        (0usize..16).prop_map(|slots| (MediaMode::Sfu, Some(SfuInfo { slots }))),
    ]
}

fn grant() -> impl Strategy<Value = ResumeGrant> {
    (any_text(96), any::<u64>()).prop_map(|(token, grace_secs)| ResumeGrant { token, grace_secs })
}

/// The room as `joined` and `resumed` describe it.
fn room_state() -> impl Strategy<Value = RoomState> {
    (
        room_id().prop_map(|room| RoomId::new(room).expect("the regex makes room ids")),
        peer(),
        proptest::collection::vec(peer(), 0..6),
        proptest::collection::vec(ice_server(), 0..3),
        grant(),
        media(),
    )
        .prop_map(
            |(room, self_peer, peers, ice_servers, resume, (mode, sfu))| RoomState {
                room,
                self_peer,
                peers,
                ice_servers,
                resume,
                mode,
                sfu,
            },
        )
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        room_state().prop_map(ServerMessage::Joined),
        room_state().prop_map(ServerMessage::Resumed),
        peer().prop_map(|peer| ServerMessage::PeerJoined { peer }),
        any_text(32).prop_map(|peer_id| ServerMessage::PeerLeft { peer_id }),
        (any_text(32), any::<bool>())
            .prop_map(|(peer_id, muted)| ServerMessage::PeerMuted { peer_id, muted }),
        (any_text(32), any_text(32), any_json())
            .prop_map(|(from, to, data)| ServerMessage::Signal { from, to, data }),
        media().prop_map(|(mode, sfu)| ServerMessage::RoomMode { mode, sfu }),
        any_text(256).prop_map(|sdp| ServerMessage::SfuAnswer { sdp }),
        Just(ServerMessage::Pong),
        (
            proptest::sample::select(&ALL_CODES[..]),
            any_text(128),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(code, message, retry_after_ms)| ServerMessage::Error {
                code,
                message,
                retry_after_ms
            }),
    ]
}

fn type_of(msg: &ServerMessage) -> &'static str {
    match msg {
        ServerMessage::Joined { .. } => "joined",
        ServerMessage::Resumed { .. } => "resumed",
        ServerMessage::PeerJoined { .. } => "peer-joined",
        ServerMessage::PeerLeft { .. } => "peer-left",
        ServerMessage::PeerMuted { .. } => "peer-muted",
        ServerMessage::Signal { .. } => "signal",
        ServerMessage::RoomMode { .. } => "room-mode",
        ServerMessage::SfuAnswer { .. } => "sfu-answer",
        ServerMessage::Pong => "pong",
        ServerMessage::Error { .. } => "error",
    }
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn any_server_message_round_trips_with_its_type(msg in server_message()) {
        let text = msg.to_json();
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(&value["type"], type_of(&msg));
        let back: ServerMessage = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(back, msg);
    }

    /// `signal` relays `data` verbatim: what arrives is what was sent.
    #[test]
    fn signal_data_arrives_verbatim(data in any_json()) {
        let msg = ServerMessage::Signal { from: "a".into(), to: "b".into(), data: data.clone() };
        let value: Value = serde_json::from_str(&msg.to_json())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&value["data"], &data);
    }
}
