//! Any valid message, from a sender seated anywhere (or nowhere), against any
//! room the caller may have loaded, gives at most one effect and no panic.
//! What the effect says comes from what was stored, never from the frame:
//! the sender's user, its connection, its participant id.

mod strategy;

use proptest::prelude::*;
use strategy::{budget, valid_message};
use tincan_signaling::{
    resume_hash, ClientMessage, Core, Effect, ErrorCode, Fresh, Grants, Limits, Member, Outgoing,
    Peer, RoomId, RoomView, Seat, Sender, ServerMessage,
};

const ME: &str = "conn-me";
const ROOMS: [&str; 2] = ["r1", "r2"];

fn member() -> impl Strategy<Value = Member> {
    (
        proptest::sample::select(vec!["p0", "p1", "p2", "p3", "p-me"]),
        proptest::option::of(proptest::sample::select(vec![ME, "conn-a", "conn-b"])),
        any::<bool>(),
        0u64..3_000,
    )
        .prop_map(|(id, conn, muted, until)| Member {
            peer: Peer {
                peer_id: id.into(),
                user_id: format!("user-{id}"),
                display_name: id.into(),
                muted,
                listen_only: false,
            },
            connection_id: conn.map(str::to_owned),
            resume_until_ms: conn.is_none().then_some(until),
            resume_hash: resume_hash("s"),
            joined_at_ms: 0,
            sfu: false,
        })
}

fn view() -> impl Strategy<Value = Option<RoomView>> {
    proptest::option::of((
        proptest::sample::select(&ROOMS[..]),
        proptest::collection::vec(member(), 0..10),
    ))
    .prop_map(|v| {
        v.map(|(room, members)| RoomView {
            room: room.into(),
            members,
        })
    })
}

/// Valid messages, with joins and signals aimed at the rooms and peers above.
fn message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        valid_message(),
        proptest::sample::select(&ROOMS[..]).prop_map(|r| ClientMessage::Join {
            room: RoomId::new(r).expect("a room id")
        }),
        proptest::sample::select(vec!["p0", "p1", "p-me"]).prop_map(|to| ClientMessage::Signal {
            to: to.into(),
            data: serde_json::Value::Null,
        }),
    ]
}

fn sender() -> impl Strategy<Value = Sender> {
    proptest::option::of(proptest::sample::select(&ROOMS[..])).prop_map(|room| Sender {
        connection_id: ME.into(),
        user_id: "user-me".into(),
        display_name: "Me".into(),
        seat: room.map(|room| Seat {
            peer_id: "p-me".into(),
            room: room.into(),
        }),
        grants: Grants::default(),
    })
}

proptest! {
    #![proptest_config(budget(1024))]

    #[test]
    fn any_message_in_any_room_yields_at_most_one_grounded_effect(
        sender in sender(),
        msg in message(),
        view in view(),
        room_max in 1usize..8,
        now_ms in 0u64..4_000,
    ) {
        let core = Core::new(Limits { room_max, ..Limits::default() });
        let _ = core.room_needed(&sender, &msg);
        let fresh = Fresh { peer_id: "p-new".into(), resume_secret: "fresh".into() };
        let effects = core.handle(&sender, msg.clone(), view.as_ref(), || fresh, now_ms);
        prop_assert!(effects.len() <= 1, "{effects:?}");
        for effect in &effects {
            match effect {
                Effect::Push(Outgoing::Send { to, msg: reply }) => {
                    prop_assert_eq!(to, ME);
                    if let ServerMessage::Error { code, .. } = reply {
                        prop_assert!(matches!(
                            code,
                            ErrorCode::NotInRoom
                                | ErrorCode::RoomFull
                                | ErrorCode::ResumeFailed
                                | ErrorCode::BadRequest
                        ), "{code:?}");
                    } else {
                        prop_assert_eq!(reply, &ServerMessage::Pong);
                    }
                }
                Effect::Push(Outgoing::Deliver { peer_id, msg: ServerMessage::Signal { from, to, .. }, .. }) => {
                    prop_assert_eq!(from, "p-me");
                    prop_assert_eq!(to, peer_id);
                    prop_assert_ne!(peer_id, "p-me");
                    let target = view.as_ref().and_then(|v| v.member(peer_id));
                    prop_assert!(target.is_some(), "signal to a peer not in the room");
                }
                Effect::Join { member, room_max: max, .. } => {
                    prop_assert_eq!(&member.peer.user_id, "user-me");
                    prop_assert_eq!(member.connection_id.as_deref(), Some(ME));
                    prop_assert_eq!(&member.peer.peer_id, "p-new");
                    prop_assert_eq!(*max, room_max);
                }
                Effect::Leave { seat, .. }
                | Effect::SetMuted { seat, .. }
                | Effect::RecordMediaPath { seat, .. } => {
                    prop_assert_eq!(Some(seat), sender.seat.as_ref());
                }
                Effect::Resume { .. } => {
                    let resumes = matches!(msg, ClientMessage::Resume { .. } | ClientMessage::Join { .. });
                    prop_assert!(resumes, "Resume from {:?}", msg);
                }
                other => prop_assert!(false, "unexpected effect {other:?}"),
            }
        }
    }
}
