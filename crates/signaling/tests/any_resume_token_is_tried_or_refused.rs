//! A `resume` carries a peer id and a token `<room>.<secret>` that the core
//! splits itself. Whatever the two strings, the core does not panic: a
//! malformed token answers `resume-failed` (or `bad-request` at parse time,
//! for empty or oversized fields), a well-formed one becomes exactly one
//! `Resume` effect for the room named before the first `.`, proven by the
//! hash of what follows it, and nothing else.

mod strategy;

use proptest::prelude::*;
use serde_json::json;
use strategy::{any_text, budget, room_id};
use tincan_signaling::{
    resume_hash, ClientMessage, Core, Effect, ErrorCode, Fresh, Grants, Member, Outgoing, Peer,
    ResumeProof, RoomId, RoomView, Seat, Sender, ServerMessage, MAX_ID_LEN,
};

const ME: &str = "conn-me";

/// A token: anything, or something shaped like one with a part bent.
fn token() -> BoxedStrategy<String> {
    let room = prop_oneof![room_id(), any_text(72), Just(String::new())];
    let sep = proptest::sample::select(vec![".", "..", "", ":", ". "]);
    prop_oneof![
        any_text(300),
        (room, sep, any_text(64)).prop_map(|(r, s, secret)| format!("{r}{s}{secret}")),
    ]
    .boxed()
}

fn peer_id() -> BoxedStrategy<String> {
    prop_oneof![Just("p-seated".to_owned()), any_text(140)].boxed()
}

/// The room and secret of a well-formed token, as the protocol defines it.
fn well_formed(token: &str) -> Option<(&str, &str)> {
    let (room, secret) = token.split_once('.')?;
    (RoomId::is_valid(room) && !secret.is_empty()).then_some((room, secret))
}

/// The sender, perhaps seated as `p-seated` in `seat_room`, and the view the
/// caller loaded: that room with the seated member attached here or not.
#[derive(Debug, Clone)]
struct Scene {
    sender: Sender,
    view: Option<RoomView>,
}

fn scene() -> impl Strategy<Value = Scene> {
    (
        proptest::option::of(room_id()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(seat_room, attached_here, loaded)| {
            let seat = seat_room.map(|room| Seat {
                peer_id: "p-seated".into(),
                room,
            });
            let view = seat.as_ref().filter(|_| loaded).map(|seat| RoomView {
                room: seat.room.clone(),
                members: vec![Member {
                    peer: Peer {
                        peer_id: seat.peer_id.clone(),
                        user_id: "u".into(),
                        display_name: "U".into(),
                        muted: false,
                        listen_only: false,
                    },
                    connection_id: Some(if attached_here { ME } else { "conn-other" }.into()),
                    resume_until_ms: None,
                    resume_hash: resume_hash("old"),
                    joined_at_ms: 0,
                    sfu: false,
                }],
            });
            Scene {
                sender: Sender {
                    connection_id: ME.into(),
                    user_id: "u".into(),
                    display_name: "U".into(),
                    seat,
                    grants: Grants::default(),
                },
                view,
            }
        })
}

fn fresh() -> Fresh {
    Fresh {
        peer_id: "p-new".into(),
        resume_secret: "next-secret".into(),
    }
}

/// Whether the sender speaks for a participant other than `peer_id`.
fn seated_elsewhere(scene: &Scene, peer_id: &str) -> bool {
    match (&scene.sender.seat, &scene.view) {
        (Some(seat), Some(view)) => {
            view.room == seat.room
                && view
                    .member(&seat.peer_id)
                    .is_some_and(|m| m.is_attached_to(ME))
                && seat.peer_id != peer_id
        }
        _ => false,
    }
}

fn refusal(effects: &[Effect]) -> Option<ErrorCode> {
    match effects {
        [Effect::Push(Outgoing::Send {
            to,
            msg: ServerMessage::Error { code, .. },
        })] if to == ME => Some(*code),
        _ => None,
    }
}

/// Runs the core on a parsed `resume` and checks the outcome against the
/// protocol's definition of a token.
fn check(scene: &Scene, peer_id: String, token: String) -> Result<(), TestCaseError> {
    let core = Core::default();
    let msg = ClientMessage::Resume {
        peer_id: peer_id.clone(),
        token: token.clone(),
    };
    let needed = core.room_needed(&scene.sender, &msg);
    let effects = core.handle(&scene.sender, msg, scene.view.as_ref(), fresh, 1_000);
    let Some((room, secret)) = well_formed(&token) else {
        prop_assert_eq!(needed, None);
        prop_assert_eq!(
            refusal(&effects),
            Some(ErrorCode::ResumeFailed),
            "{:?}",
            effects
        );
        return Ok(());
    };
    prop_assert_eq!(needed.as_deref(), Some(room));
    if seated_elsewhere(scene, &peer_id) {
        prop_assert_eq!(
            refusal(&effects),
            Some(ErrorCode::BadRequest),
            "{:?}",
            effects
        );
        return Ok(());
    }
    match effects.as_slice() {
        [Effect::Resume {
            peer_id: resumed,
            room: resumed_room,
            proof,
            new_hash,
            grant,
        }] => {
            prop_assert_eq!(resumed, &peer_id);
            prop_assert_eq!(resumed_room.as_str(), room);
            prop_assert_eq!(proof, &ResumeProof::Token(resume_hash(secret)));
            prop_assert_eq!(new_hash, &resume_hash("next-secret"));
            prop_assert_eq!(&grant.token, &format!("{room}.next-secret"));
        }
        other => prop_assert!(false, "expected one Resume, got {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(budget(1024))]

    #[test]
    fn any_resume_strings_are_tried_or_refused(
        scene in scene(),
        peer_id in peer_id(),
        token in token(),
    ) {
        check(&scene, peer_id, token)?;
    }

    /// The same through the wire: empty or oversized fields are refused at
    /// parse time with `bad-request`; what parses goes through the core.
    #[test]
    fn any_resume_frame_is_tried_or_refused(
        scene in scene(),
        peer_id in peer_id(),
        token in token(),
    ) {
        let frame = json!({"action": "resume", "peerId": peer_id, "token": token}).to_string();
        match Core::default().parse(&frame) {
            Ok(ClientMessage::Resume { peer_id: p, token: t }) => {
                prop_assert!(!p.is_empty() && p.len() <= MAX_ID_LEN);
                prop_assert!(!t.is_empty() && t.len() <= 2 * MAX_ID_LEN);
                check(&scene, p, t)?;
            }
            Ok(other) => prop_assert!(false, "parsed as {other:?}"),
            Err(err) => {
                prop_assert_eq!(err.code, ErrorCode::BadRequest);
                prop_assert!(
                    peer_id.is_empty()
                        || peer_id.len() > MAX_ID_LEN
                        || token.is_empty()
                        || token.len() > 2 * MAX_ID_LEN
                );
            }
        }
    }
}
