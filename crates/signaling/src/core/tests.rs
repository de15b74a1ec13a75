use super::*;

fn peer(id: &str) -> Peer {
    Peer {
        peer_id: id.into(),
        user_id: format!("user-{id}"),
        display_name: format!("Name {id}"),
        muted: false,
        listen_only: false,
    }
}

fn member(id: &str, conn: Option<&str>) -> Member {
    Member {
        peer: peer(id),
        connection_id: conn.map(str::to_owned),
        resume_until_ms: conn.is_none().then_some(1_000),
        resume_hash: resume_hash("secret"),
        joined_at_ms: 0,
        sfu: false,
    }
}

fn sender(conn: &str, seat: Option<(&str, &str)>) -> Sender {
    Sender {
        connection_id: conn.into(),
        user_id: "user-a".into(),
        display_name: "Name a".into(),
        seat: seat.map(|(peer_id, room)| Seat {
            peer_id: peer_id.into(),
            room: room.into(),
        }),
        grants: Grants::default(),
    }
}

fn rid(room: &str) -> RoomId {
    RoomId::new(room).expect("a room id")
}

fn fresh() -> Fresh {
    Fresh {
        peer_id: "new".into(),
        resume_secret: "s3cret".into(),
    }
}

fn view(members: Vec<Member>) -> RoomView {
    RoomView {
        room: "r".into(),
        members,
    }
}

fn limits(room_max: usize) -> Limits {
    Limits {
        room_max,
        ..Limits::default()
    }
}

#[test]
fn oversize_frame_is_too_large_before_parsing() {
    let core = Core::new(Limits {
        max_message_bytes: 10,
        ..Limits::default()
    });
    let err = core.parse(r#"{"action":"ping"}"#).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge);
}

#[test]
fn room_needed_is_the_target_or_the_seat() {
    let core = Core::default();
    let s = sender("c", Some(("a", "old")));
    let join = ClientMessage::Join { room: rid("new") };
    assert_eq!(core.room_needed(&s, &join).as_deref(), Some("new"));
    assert_eq!(
        core.room_needed(&s, &ClientMessage::Ping).as_deref(),
        Some("old")
    );
    let resume = ClientMessage::Resume {
        peer_id: "a".into(),
        token: "there.xyz".into(),
    };
    assert_eq!(core.room_needed(&s, &resume).as_deref(), Some("there"));
}

#[test]
fn full_room_refuses_without_writing() {
    let core = Core::new(limits(1));
    let effects = core.handle(
        &sender("c", None),
        ClientMessage::Join { room: rid("r") },
        Some(&view(vec![member("b", Some("cb"))])),
        fresh,
        0,
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Push(Outgoing::Send { to, msg: ServerMessage::Error { code: ErrorCode::RoomFull, .. } })] if to == "c"
    ));
}

#[test]
fn a_join_creates_a_fresh_participant_with_a_resume_token() {
    let core = Core::default();
    let effects = core.handle(
        &sender("c", None),
        ClientMessage::Join { room: rid("r") },
        None,
        fresh,
        5,
    );
    let [Effect::Join {
        member,
        room,
        grant,
        ..
    }] = effects.as_slice()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(room, "r");
    assert_eq!(member.peer.peer_id, "new");
    assert_eq!(member.connection_id.as_deref(), Some("c"));
    assert_eq!(grant.token, "r.s3cret");
    assert_eq!(member.resume_hash, resume_hash("s3cret"));
}

#[test]
fn rejoining_the_same_room_only_renews_the_token() {
    let core = Core::default();
    let effects = core.handle(
        &sender("c", Some(("a", "r"))),
        ClientMessage::Join { room: rid("r") },
        Some(&view(vec![member("a", Some("c")), member("b", Some("cb"))])),
        fresh,
        0,
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Resume {
            proof: ResumeProof::AlreadyAttached,
            ..
        }]
    ));
}

#[test]
fn a_seat_counts_only_while_attached_to_the_sender() {
    let core = Core::default();
    // The participant was resumed by another connection: this one has no seat.
    let effects = core.handle(
        &sender("old", Some(("a", "r"))),
        ClientMessage::Signal {
            to: "b".into(),
            data: serde_json::json!(1),
        },
        Some(&view(vec![
            member("a", Some("new")),
            member("b", Some("cb")),
        ])),
        fresh,
        0,
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Push(Outgoing::Send {
            msg: ServerMessage::Error {
                code: ErrorCode::NotInRoom,
                ..
            },
            ..
        })]
    ));
}

#[test]
fn signal_to_self_or_outside_room_is_refused_and_to_detached_is_kept() {
    let core = Core::default();
    let room = view(vec![member("a", Some("c")), member("b", None)]);
    for to in ["a", "zzz"] {
        let effects = core.handle(
            &sender("c", Some(("a", "r"))),
            ClientMessage::Signal {
                to: to.into(),
                data: serde_json::json!(1),
            },
            Some(&room),
            fresh,
            0,
        );
        assert!(matches!(
            effects.as_slice(),
            [Effect::Push(Outgoing::Send {
                msg: ServerMessage::Error {
                    code: ErrorCode::NotInRoom,
                    ..
                },
                ..
            })]
        ));
    }
    let effects = core.handle(
        &sender("c", Some(("a", "r"))),
        ClientMessage::Signal {
            to: "b".into(),
            data: serde_json::json!(1),
        },
        Some(&room),
        fresh,
        0,
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Push(Outgoing::Deliver { peer_id, connection_id: None, .. })] if peer_id == "b"
    ));
}

#[test]
fn detached_members_get_no_room_events_and_expire_after_grace() {
    let core = Core::default();
    let room = view(vec![member("b", Some("cb")), member("d", None)]);
    let effects = core.announce_leave("a", &room);
    assert_eq!(effects.len(), 1, "only the attached member is told");
    assert!(room.expired(999).is_empty());
    assert_eq!(
        room.expired(1_000),
        [(
            Seat {
                peer_id: "d".into(),
                room: "r".into()
            },
            1_000
        )]
    );
}

#[test]
fn bad_resume_tokens_are_refused_without_a_store_call() {
    let core = Core::default();
    for token in ["no-dot", "bad room.x", "r."] {
        let effects = core.handle(
            &sender("c", None),
            ClientMessage::Resume {
                peer_id: "a".into(),
                token: token.into(),
            },
            None,
            fresh,
            0,
        );
        assert!(
            matches!(
                effects.as_slice(),
                [Effect::Push(Outgoing::Send {
                    msg: ServerMessage::Error {
                        code: ErrorCode::ResumeFailed,
                        ..
                    },
                    ..
                })]
            ),
            "{token}"
        );
    }
}

fn sfu_core(mesh_max: usize) -> Core {
    Core::new(Limits {
        mesh_max,
        sfu_slots: 3,
        ..Limits::default()
    })
}

/// The `mode` of the `joined` among `effects`, and who got `room-mode`.
fn modes(effects: &[Outgoing]) -> (MediaMode, Vec<String>) {
    let mut joined = None;
    let mut moved = Vec::new();
    for effect in effects {
        match effect {
            Outgoing::Send {
                msg: ServerMessage::Joined(RoomState { mode, sfu, .. }),
                ..
            } => {
                assert_eq!(sfu.is_some(), *mode == MediaMode::Sfu);
                joined = Some(*mode);
            }
            Outgoing::Deliver {
                peer_id,
                msg: ServerMessage::RoomMode { mode, sfu },
                ..
            } => {
                assert_eq!((*mode, *sfu), (MediaMode::Sfu, Some(SfuInfo { slots: 3 })));
                moved.push(peer_id.clone());
            }
            _ => {}
        }
    }
    (joined.expect("joined"), moved)
}

fn announce(core: &Core, others: &[Member]) -> Vec<Outgoing> {
    let me = member("new", Some("c"));
    core.announce_join(
        &sender("c", Some(("new", "r"))),
        JoinCommitted {
            member: &me,
            room: &rid("r"),
            others,
            grant: ResumeGrant {
                token: "r.x".into(),
                grace_secs: 30,
            },
            departure: None,
        },
        &[],
    )
}

#[test]
fn the_join_past_mesh_max_moves_the_room_to_the_sfu() {
    let core = sfu_core(2);
    let one = [member("a", Some("ca"))];
    assert_eq!(modes(&announce(&core, &one)), (MediaMode::Mesh, vec![]));
    let two = [member("a", Some("ca")), member("b", Some("cb"))];
    let (mode, moved) = modes(&announce(&core, &two));
    assert_eq!(mode, MediaMode::Sfu);
    assert_eq!(moved, ["a", "b"]);
    // Those already on the SFU are not told again; a detached one hears it
    // from `resumed`.
    let mut three = vec![
        member("a", Some("ca")),
        member("b", None),
        member("d", Some("cd")),
    ];
    three[0].sfu = true;
    let (mode, moved) = modes(&announce(&core, &three));
    assert_eq!((mode, moved), (MediaMode::Sfu, vec!["d".to_owned()]));
}

#[test]
fn a_room_that_shrinks_stays_on_the_sfu_until_it_empties() {
    let core = sfu_core(4);
    let mut left = member("a", Some("ca"));
    left.sfu = true;
    // One member left of a group call: a new joiner still goes to the SFU.
    let (mode, moved) = modes(&announce(&core, &[left]));
    assert_eq!((mode, moved), (MediaMode::Sfu, vec![]));
    // An empty room starts over as a mesh.
    assert_eq!(modes(&announce(&core, &[])), (MediaMode::Mesh, vec![]));
}

#[test]
fn sfu_offers_are_taken_only_in_an_sfu_room_from_its_member() {
    let core = sfu_core(2);
    let offer = || ClientMessage::SfuOffer {
        sdp: "v=0\r\n".into(),
    };
    let me = sender("ca", Some(("a", "r")));
    let mesh = view(vec![member("a", Some("ca")), member("b", Some("cb"))]);
    let refused = core.handle(&me, offer(), Some(&mesh), fresh, 0);
    assert!(
        matches!(
            refused.as_slice(),
            [Effect::Push(Outgoing::Send {
                msg: ServerMessage::Error {
                    code: ErrorCode::NotSfu,
                    ..
                },
                ..
            })]
        ),
        "{refused:?}"
    );
    let mut group = mesh.clone();
    group.members.push(member("c", Some("cc")));
    let taken = core.handle(&me, offer(), Some(&group), fresh, 0);
    assert!(
        matches!(taken.as_slice(), [Effect::SfuOffer { seat, .. }] if seat.peer_id == "a"),
        "{taken:?}"
    );
    // A connection whose participant is not attached to it: not in room.
    let stranger = sender("cx", Some(("a", "r")));
    let refused = core.handle(&stranger, offer(), Some(&group), fresh, 0);
    assert!(
        matches!(
            refused.as_slice(),
            [Effect::Push(Outgoing::Send {
                msg: ServerMessage::Error {
                    code: ErrorCode::NotInRoom,
                    ..
                },
                ..
            })]
        ),
        "{refused:?}"
    );
}

#[test]
fn resumed_restates_the_mode() {
    let core = sfu_core(2);
    let room = view(vec![
        member("a", Some("ca")),
        member("b", None),
        member("c", None),
    ]);
    let effects = core.announce_resume(
        &sender("ca", Some(("a", "r"))),
        &rid("r"),
        &room.members[0],
        &room,
        ResumeGrant {
            token: "r.x".into(),
            grace_secs: 30,
        },
        &[],
    );
    assert!(
        matches!(
            effects.as_slice(),
            [Outgoing::Send {
                msg: ServerMessage::Resumed(RoomState {
                    mode: MediaMode::Sfu,
                    sfu: Some(_),
                    ..
                }),
                ..
            }]
        ),
        "{effects:?}"
    );
}

fn app_sender(conn: &str, seat: Option<(&str, &str)>, room: &str, listen_only: bool) -> Sender {
    Sender {
        grants: Grants {
            room: Some(room.into()),
            listen_only,
        },
        ..sender(conn, seat)
    }
}

fn error_code(effects: &[Effect]) -> Option<ErrorCode> {
    match effects {
        [Effect::Push(Outgoing::Send {
            msg: ServerMessage::Error { code, .. },
            ..
        })] => Some(*code),
        _ => None,
    }
}

#[test]
fn a_join_token_opens_its_own_room_only() {
    let core = Core::default();
    let s = app_sender("c", None, "r", false);
    let join = |room: &str| ClientMessage::Join { room: rid(room) };
    let effects = core.handle(&s, join("other"), None, fresh, 0);
    assert_eq!(error_code(&effects), Some(ErrorCode::JoinTokenRoom));
    let effects = core.handle(&s, join("r"), None, fresh, 0);
    assert!(matches!(effects.as_slice(), [Effect::Join { room, .. }] if room == "r"));
    // Nor may it resume a participant of another room.
    let resume = ClientMessage::Resume {
        peer_id: "p".into(),
        token: "other.xyz".into(),
    };
    let effects = core.handle(&s, resume, None, fresh, 0);
    assert_eq!(error_code(&effects), Some(ErrorCode::JoinTokenRoom));
}

#[test]
fn a_listener_joins_muted_and_cannot_unmute() {
    let core = Core::default();
    let effects = core.handle(
        &app_sender("c", None, "r", true),
        ClientMessage::Join { room: rid("r") },
        None,
        fresh,
        0,
    );
    let [Effect::Join { member: joined, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert!(joined.peer.muted && joined.peer.listen_only);

    let mut listener = joined.clone();
    listener.peer.peer_id = "a".into();
    let room = view(vec![listener, member("b", Some("cb"))]);
    let s = app_sender("c", Some(("a", "r")), "r", true);
    let unmute = ClientMessage::Mute { muted: false };
    let effects = core.handle(&s, unmute.clone(), Some(&room), fresh, 0);
    assert_eq!(error_code(&effects), Some(ErrorCode::ListenOnly));
    // Muting is harmless.
    let effects = core.handle(
        &s,
        ClientMessage::Mute { muted: true },
        Some(&room),
        fresh,
        0,
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::SetMuted { muted: true, .. }]
    ));
    // A listen-only participant resumed by a connection that may speak
    // still cannot unmute: the flag is the participant's.
    let speaker = app_sender("c", Some(("a", "r")), "r", false);
    let effects = core.handle(&speaker, unmute, Some(&room), fresh, 0);
    assert_eq!(error_code(&effects), Some(ErrorCode::ListenOnly));
}

#[test]
fn a_listen_only_peer_says_so_on_the_wire_and_others_do_not() {
    let mut listener = peer("l");
    listener.listen_only = true;
    let json = serde_json::to_value(&listener).unwrap();
    assert_eq!(json["listenOnly"], true);
    let json = serde_json::to_value(peer("s")).unwrap();
    assert!(json.get("listenOnly").is_none(), "{json}");
}

#[test]
fn a_mute_reaches_the_node_only_for_a_participant_on_the_sfu() {
    let core = Core::default();
    let seat = Seat::new("a", &rid("r"));
    let mut on_sfu = member("a", Some("ca"));
    on_sfu.sfu = true;
    assert!(core.mute_reaches_sfu(&seat, &view(vec![on_sfu])));
    assert!(!core.mute_reaches_sfu(&seat, &view(vec![member("a", Some("ca"))])));
    assert!(!core.mute_reaches_sfu(&seat, &view(vec![])));
}

#[test]
fn an_sfu_offer_whose_participant_is_gone_is_not_in_room() {
    let core = Core::default();
    let seat = Seat::new("a", &rid("r"));
    let room = view(vec![member("a", Some("ca"))]);
    let found = core.sfu_offer_member(&seat, Some(&room)).unwrap();
    assert_eq!(found.peer.peer_id, "a");
    for gone in [None, Some(&view(vec![member("b", Some("cb"))]))] {
        let err = core.sfu_offer_member(&seat, gone).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotInRoom);
    }
}
