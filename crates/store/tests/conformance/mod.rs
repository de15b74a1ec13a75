//! Behaviour every `ConnectionStore` backend must show. Each check uses its own
//! ids and rooms, so one store instance serves the whole suite.

use std::collections::BTreeSet;
use std::sync::Arc;

use tincan_signaling::{resume_hash, Member, MessageRate, Peer, RateVerdict, ResumeProof, Seat};
use tincan_store::{
    ConnectionRecord, ConnectionStore, JoinOutcome, KeepOutcome, ResumeOutcome, StoreError,
    Stranded, MAX_KEPT_BYTES,
};

const NOW_MS: u64 = 1_700_000_000_000;
const NOW: u64 = NOW_MS / 1000;

fn record(id: &str, connected_at_ms: u64) -> ConnectionRecord {
    ConnectionRecord::new(
        id,
        format!("user-{id}"),
        format!("Name {id}"),
        connected_at_ms,
    )
}

/// A fresh participant `peer` for connection `conn` (user `user-{conn}`).
fn member(peer: &str, conn: &str) -> Member {
    Member {
        peer: Peer {
            peer_id: peer.into(),
            user_id: format!("user-{conn}"),
            display_name: format!("Name {conn}"),
            muted: false,
            listen_only: false,
        },
        connection_id: Some(conn.into()),
        resume_until_ms: None,
        resume_hash: resume_hash(&format!("secret-{peer}")),
        joined_at_ms: NOW_MS,
        sfu: false,
    }
}

fn seat(peer: &str, room: &str) -> Seat {
    Seat {
        peer_id: peer.into(),
        room: room.into(),
    }
}

fn ids(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.peer.peer_id.as_str()).collect()
}

async fn joined(store: &dyn ConnectionStore, conn: &str, peer: &str, room: &str, max: usize) {
    let outcome = store
        .join(conn, room, &member(peer, conn), max, NOW)
        .await
        .unwrap();
    assert!(
        matches!(outcome, JoinOutcome::Joined { .. }),
        "{conn}: {outcome:?}"
    );
}

/// Runs every check against `store`.
pub(crate) async fn run_all(store: &dyn ConnectionStore) {
    put_get_remove_round_trip(store).await;
    expired_connections_are_invisible(store).await;
    join_respects_capacity_and_reports_who_was_there(store).await;
    join_of_unknown_connection_writes_nothing(store).await;
    leave_and_mute_need_the_attached_connection(store).await;
    remove_detaches_and_expire_ends(store).await;
    participants_of_expired_connections_are_stranded(store).await;
    moving_rooms_frees_the_old_seat_atomically(store).await;
    resume_rules(store).await;
    kept_signals_are_bounded_and_taken_once(store).await;
    kept_signals_are_bounded_in_bytes(store).await;
    a_signal_is_kept_only_for_a_detached_participant(store).await;
    a_keep_after_a_resume_points_at_the_new_connection(store).await;
    connections_of_a_user(store).await;
    sockets_per_user_are_capped(store).await;
    a_message_takes_from_the_sockets_budget(store).await;
}

const RATE: MessageRate = MessageRate {
    per_sec: 20,
    burst: 40,
};

async fn sockets_per_user_are_capped(store: &dyn ConnectionStore) {
    let mine = |id: &str, at_ms: u64| ConnectionRecord::new(id, "user-cap", "Cap", at_ms);
    // An old socket, expired by now: it does not count.
    store.put(&mine("cap-old", 0), 3).await.unwrap();
    for id in ["cap-1", "cap-2", "cap-3"] {
        store.put(&mine(id, NOW_MS), 3).await.unwrap();
    }
    let refused = store.put(&mine("cap-4", NOW_MS), 3).await;
    assert!(
        matches!(&refused, Err(StoreError::TooManyConnections { user, max: 3 }) if user == "user-cap"),
        "{refused:?}"
    );
    assert_eq!(
        store.get("cap-4", NOW).await.unwrap(),
        None,
        "nothing written"
    );
    // Writing one of its own again is no new socket.
    store.put(&mine("cap-2", NOW_MS), 3).await.unwrap();
    // Another user is not counted against this one; 0 means no limit.
    store.put(&record("cap-other", NOW_MS), 3).await.unwrap();
    store.put(&mine("cap-free", NOW_MS), 0).await.unwrap();
    store.remove("cap-free", NOW_MS, NOW_MS).await.unwrap();
    // A socket that closes frees its place.
    store.remove("cap-1", NOW_MS, NOW_MS).await.unwrap();
    store.put(&mine("cap-4", NOW_MS), 3).await.unwrap();
    assert!(store.put(&mine("cap-5", NOW_MS), 3).await.is_err());
}

async fn a_message_takes_from_the_sockets_budget(store: &dyn ConnectionStore) {
    let mut rec = record("mr-1", NOW_MS);
    store.put(&rec, 0).await.unwrap();
    joined(store, "mr-1", "mr-peer", "mr-room", 4).await;
    rec.seat = Some(seat("mr-peer", "mr-room"));
    let mut verdicts = Vec::new();
    for _ in 0..41 {
        let (got, verdict) = store
            .take_message("mr-1", RATE, NOW_MS)
            .await
            .unwrap()
            .expect("a live connection");
        // The record as written: the sender's seat, and the budget taken.
        assert_eq!(got.seat, rec.seat);
        assert_eq!(got.user_id, rec.user_id);
        verdicts.push((verdict, got.rate));
    }
    assert!(verdicts[..40].iter().all(|(v, _)| *v == RateVerdict::Pass));
    assert_eq!(verdicts[40].0, RateVerdict::Limited { retry_after_ms: 50 });
    // The budget is kept with the connection: get sees it too.
    let stored = store.get("mr-1", NOW).await.unwrap().unwrap();
    assert_eq!(stored.rate, verdicts[40].1);
    // Two seconds on, it is full again.
    let (_, later) = store
        .take_message("mr-1", RATE, NOW_MS + 2000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later, RateVerdict::Pass);
    // Unlimited: every message passes and nothing is written.
    let (_, free) = store
        .take_message("mr-1", MessageRate::UNLIMITED, NOW_MS + 2000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(free, RateVerdict::Pass);
    // No such connection, or an expired one: nothing.
    assert_eq!(
        store.take_message("mr-none", RATE, NOW_MS).await.unwrap(),
        None
    );
    let late = NOW_MS + (tincan_store::CONNECTION_TTL_SECS + 1) * 1000;
    assert_eq!(store.take_message("mr-1", RATE, late).await.unwrap(), None);
    store.remove("mr-1", NOW_MS, NOW_MS).await.unwrap();
    assert_eq!(
        store.take_message("mr-1", RATE, NOW_MS).await.unwrap(),
        None
    );
}

/// Frames of one socket handled at once by several callers (Lambda
/// containers, each handling one frame at a time: `stores` share one table
/// but nothing else): each takes its own share of the budget, so a burst of
/// 60 passes exactly 40.
pub(crate) async fn concurrent_messages_share_one_budget(stores: Vec<Arc<dyn ConnectionStore>>) {
    stores[0].put(&record("cm-1", NOW_MS), 0).await.unwrap();
    let each = 60 / stores.len();
    let tasks: Vec<_> = stores
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut passed = 0;
                for _ in 0..each {
                    let (_, verdict) = store
                        .take_message("cm-1", RATE, NOW_MS)
                        .await
                        .unwrap()
                        .expect("a live connection");
                    passed += usize::from(verdict == RateVerdict::Pass);
                }
                passed
            })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        passed += task.await.unwrap();
    }
    assert_eq!(passed, 40);
}

/// Two connects of one user racing for its last place: exactly one wins.
pub(crate) async fn racing_connects_never_exceed_the_cap(stores: Vec<Arc<dyn ConnectionStore>>) {
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                let record = ConnectionRecord::new(format!("rc-{i}"), "user-rc", "Rc", NOW_MS);
                store.put(&record, 4).await
            })
        })
        .collect();
    let mut placed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => placed += 1,
            Err(StoreError::TooManyConnections { .. }) => {}
            // Contention gives up without writing; it must not overfill.
            Err(StoreError::Contention(_)) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert!(placed <= 4, "{placed} placed");
    assert!(placed >= 1);
}

async fn connections_of_a_user(store: &dyn ConnectionStore) {
    for id in ["cu-1", "cu-2"] {
        store
            .put(&ConnectionRecord::new(id, "user-cu", "Cu", NOW_MS), 0)
            .await
            .unwrap();
    }
    store.put(&record("cu-other", NOW_MS), 0).await.unwrap();
    let mut found: Vec<String> = store
        .connections_of("user-cu", NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.connection_id)
        .collect();
    found.sort();
    assert_eq!(found, ["cu-1", "cu-2"]);
}

async fn put_get_remove_round_trip(store: &dyn ConnectionStore) {
    let mut rec = record("rt-1", NOW_MS);
    rec.display_name = "Zoë \"quoted\" 🎧".into();
    store.put(&rec, 0).await.unwrap();
    assert_eq!(store.get("rt-1", NOW).await.unwrap(), Some(rec.clone()));
    assert_eq!(
        store.remove("rt-1", NOW_MS, NOW_MS).await.unwrap(),
        Some(rec)
    );
    assert_eq!(store.get("rt-1", NOW).await.unwrap(), None);
    assert_eq!(store.remove("rt-1", NOW_MS, NOW_MS).await.unwrap(), None);
}

async fn expired_connections_are_invisible(store: &dyn ConnectionStore) {
    let rec = record("exp-1", NOW_MS);
    store.put(&rec, 0).await.unwrap();
    let later = rec.expires_at;
    assert_eq!(store.get("exp-1", later).await.unwrap(), None);
    assert_eq!(
        store
            .join("exp-1", "exp-room", &member("p", "exp-1"), 4, later)
            .await
            .unwrap(),
        JoinOutcome::UnknownConnection
    );
    assert!(store.room("exp-room").await.unwrap().members.is_empty());
}

async fn join_respects_capacity_and_reports_who_was_there(store: &dyn ConnectionStore) {
    for (i, id) in ["cap-1", "cap-2", "cap-3"].iter().enumerate() {
        store.put(&record(id, NOW_MS + i as u64), 0).await.unwrap();
    }
    let outcome = store
        .join("cap-1", "cap", &member("p1", "cap-1"), 2, NOW)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        JoinOutcome::Joined {
            others: vec![],
            departure: None
        }
    );
    let JoinOutcome::Joined { others, .. } = store
        .join("cap-2", "cap", &member("p2", "cap-2"), 2, NOW)
        .await
        .unwrap()
    else {
        panic!("second join refused")
    };
    assert_eq!(ids(&others), ["p1"]);
    assert_eq!(
        store
            .join("cap-3", "cap", &member("p3", "cap-3"), 2, NOW)
            .await
            .unwrap(),
        JoinOutcome::RoomFull
    );
    let room = store.room("cap").await.unwrap();
    assert_eq!(ids(&room.members), ["p1", "p2"]);
    assert_eq!(store.get("cap-3", NOW).await.unwrap().unwrap().seat, None);
}

async fn join_of_unknown_connection_writes_nothing(store: &dyn ConnectionStore) {
    assert_eq!(
        store
            .join("nobody", "empty", &member("p", "nobody"), 4, NOW)
            .await
            .unwrap(),
        JoinOutcome::UnknownConnection
    );
    assert!(store.room("empty").await.unwrap().members.is_empty());
}

async fn leave_and_mute_need_the_attached_connection(store: &dyn ConnectionStore) {
    for id in ["lm-1", "lm-2"] {
        store.put(&record(id, NOW_MS), 0).await.unwrap();
    }
    joined(store, "lm-1", "q1", "lm", 4).await;
    joined(store, "lm-2", "q2", "lm", 4).await;
    // Another connection cannot mute or remove q1.
    assert!(store
        .set_muted("lm-2", &seat("q1", "lm"), true, NOW_MS)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .leave("lm-2", &seat("q1", "lm"), NOW_MS)
        .await
        .unwrap()
        .is_none());
    let room = store
        .set_muted("lm-1", &seat("q1", "lm"), true, NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(room.member("q1").unwrap().peer.muted);
    // The SFU mark too: only the attached connection sets it, and it
    // survives the next write of the room.
    assert!(store
        .set_on_sfu("lm-2", &seat("q1", "lm"), NOW_MS)
        .await
        .unwrap()
        .is_none());
    let room = store
        .set_on_sfu("lm-1", &seat("q1", "lm"), NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(room.member("q1").unwrap().sfu);
    assert!(!room.member("q2").unwrap().sfu);
    let room = store
        .set_muted("lm-2", &seat("q2", "lm"), true, NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(room.member("q1").unwrap().sfu && room.member("q1").unwrap().peer.muted);
    let departure = store
        .leave("lm-1", &seat("q1", "lm"), NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(departure.member.peer.peer_id, "q1");
    assert_eq!(ids(&departure.remaining.members), ["q2"]);
    assert!(store
        .leave("lm-1", &seat("q1", "lm"), NOW_MS)
        .await
        .unwrap()
        .is_none());
}

async fn remove_detaches_and_expire_ends(store: &dyn ConnectionStore) {
    for id in ["rd-1", "rd-2"] {
        store.put(&record(id, NOW_MS), 0).await.unwrap();
    }
    joined(store, "rd-1", "d1", "rd", 4).await;
    joined(store, "rd-2", "d2", "rd", 4).await;
    let until = NOW_MS + 30_000;
    let removed = store.remove("rd-1", until, NOW_MS).await.unwrap().unwrap();
    assert_eq!(removed.seat, Some(seat("d1", "rd")));
    let room = store.room("rd").await.unwrap();
    let d1 = room.member("d1").unwrap();
    assert_eq!(
        (d1.connection_id.as_deref(), d1.resume_until_ms),
        (None, Some(until))
    );
    assert_eq!(
        store.expired_members(until - 1).await.unwrap(),
        Vec::<(Seat, u64)>::new()
    );
    assert!(store
        .expired_members(until)
        .await
        .unwrap()
        .contains(&(seat("d1", "rd"), until)));
    // Expiry with a deadline that is not the stored one does nothing.
    assert!(store
        .expire(&seat("d1", "rd"), until + 1, NOW_MS)
        .await
        .unwrap()
        .is_none());
    // Nor does it end an attached participant.
    assert!(store
        .expire(&seat("d2", "rd"), until, NOW_MS)
        .await
        .unwrap()
        .is_none());
    let departure = store
        .expire(&seat("d1", "rd"), until, NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&departure.remaining.members), ["d2"]);
}

/// A connection whose record expired without a `$disconnect` leaves its
/// participant attached for good: `stranded_members` lists it (with the
/// record) until the sweep takes it out, and never lists a live one.
async fn participants_of_expired_connections_are_stranded(store: &dyn ConnectionStore) {
    for id in ["sx-1", "sx-2"] {
        store.put(&record(id, NOW_MS), 0).await.unwrap();
    }
    joined(store, "sx-1", "x1", "sx", 4).await;
    joined(store, "sx-2", "x2", "sx", 4).await;
    let stranded =
        |list: &[Stranded], peer: &str| list.iter().find(|s| s.seat.peer_id == peer).cloned();
    let now = store.stranded_members(NOW_MS).await.unwrap();
    assert_eq!(stranded(&now, "x1"), None, "a live connection");
    // Detached participants are the resume grace's business, not this.
    store.remove("sx-2", NOW_MS + 30_000, NOW_MS).await.unwrap();
    let later_ms = (NOW + tincan_store::CONNECTION_TTL_SECS) * 1000;
    let later = store.stranded_members(later_ms).await.unwrap();
    assert_eq!(stranded(&later, "x2"), None);
    let x1 = stranded(&later, "x1").expect("x1 is stranded");
    assert_eq!(x1.seat, seat("x1", "sx"));
    assert_eq!(x1.connection_id, "sx-1");
    assert_eq!(x1.joined_at_ms, NOW_MS);
    assert_eq!(
        x1.record.map(|r| (r.connection_id, r.connected_at_ms)),
        Some(("sx-1".to_owned(), NOW_MS))
    );
    // What the sweep does: take it out, forget the connection.
    let departure = store
        .leave("sx-1", &x1.seat, NOW_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(departure.member.peer.peer_id, "x1");
    assert!(store
        .remove("sx-1", later_ms, NOW_MS)
        .await
        .unwrap()
        .is_some());
    let after = store.stranded_members(later_ms).await.unwrap();
    assert_eq!(stranded(&after, "x1"), None);
}

async fn moving_rooms_frees_the_old_seat_atomically(store: &dyn ConnectionStore) {
    store.put(&record("mv-1", NOW_MS), 0).await.unwrap();
    store.put(&record("mv-2", NOW_MS), 0).await.unwrap();
    joined(store, "mv-1", "m1", "mv-a", 4).await;
    joined(store, "mv-2", "m2", "mv-a", 4).await;
    let JoinOutcome::Joined { others, departure } = store
        .join("mv-1", "mv-b", &member("m1b", "mv-1"), 4, NOW)
        .await
        .unwrap()
    else {
        panic!("move refused")
    };
    assert!(others.is_empty());
    let departure = departure.expect("left the old room");
    assert_eq!(departure.member.peer.peer_id, "m1");
    assert_eq!(ids(&departure.remaining.members), ["m2"]);
    assert_eq!(ids(&store.room("mv-a").await.unwrap().members), ["m2"]);
    assert_eq!(ids(&store.room("mv-b").await.unwrap().members), ["m1b"]);
    // A refused move leaves it where it was.
    store.put(&record("mv-3", NOW_MS), 0).await.unwrap();
    joined(store, "mv-3", "m3", "mv-full", 1).await;
    assert_eq!(
        store
            .join("mv-1", "mv-full", &member("m1c", "mv-1"), 1, NOW)
            .await
            .unwrap(),
        JoinOutcome::RoomFull
    );
    assert_eq!(ids(&store.room("mv-b").await.unwrap().members), ["m1b"]);
    assert_eq!(
        store.get("mv-1", NOW).await.unwrap().unwrap().seat,
        Some(seat("m1b", "mv-b"))
    );
}

async fn resume_rules(store: &dyn ConnectionStore) {
    store.put(&record("rs-1", NOW_MS), 0).await.unwrap();
    joined(store, "rs-1", "r1", "rs", 4).await;
    let until = NOW_MS + 30_000;
    store.remove("rs-1", until, NOW_MS).await.unwrap();
    let token = ResumeProof::Token(resume_hash("secret-r1"));
    let s = seat("r1", "rs");
    // Another user's connection: refused.
    store.put(&record("rs-evil", NOW_MS), 0).await.unwrap();
    assert_eq!(
        store
            .resume("rs-evil", "user-rs-evil", &s, &token, "h2", NOW_MS)
            .await
            .unwrap(),
        ResumeOutcome::Refused
    );
    // The right user with a wrong token: refused.
    let mine = ConnectionRecord::new("rs-2", "user-rs-1", "Name rs-1", NOW_MS);
    store.put(&mine, 0).await.unwrap();
    let wrong = ResumeProof::Token(resume_hash("guess"));
    assert_eq!(
        store
            .resume("rs-2", "user-rs-1", &s, &wrong, "h2", NOW_MS)
            .await
            .unwrap(),
        ResumeOutcome::Refused
    );
    // After the deadline: refused, even before anyone reaped it.
    assert_eq!(
        store
            .resume("rs-2", "user-rs-1", &s, &token, "h2", until)
            .await
            .unwrap(),
        ResumeOutcome::Refused
    );
    // In time: resumed, attached to the new connection, with the new hash.
    let ResumeOutcome::Resumed { member, room } = store
        .resume("rs-2", "user-rs-1", &s, &token, "h2", until - 1)
        .await
        .unwrap()
    else {
        panic!("resume refused")
    };
    assert!(member.is_attached_to("rs-2"));
    assert_eq!(member.resume_until_ms, None);
    assert_eq!(member.resume_hash, "h2");
    assert_eq!(ids(&room.members), ["r1"]);
    assert_eq!(
        store.get("rs-2", NOW).await.unwrap().unwrap().seat,
        Some(s.clone())
    );
    // The same token twice: refused.
    store
        .put(
            &ConnectionRecord::new("rs-3", "user-rs-1", "Name rs-1", NOW_MS),
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .resume("rs-3", "user-rs-1", &s, &token, "h3", NOW_MS)
            .await
            .unwrap(),
        ResumeOutcome::Refused
    );
    // Renewing the token from the attached connection works without it.
    assert!(matches!(
        store
            .resume(
                "rs-2",
                "user-rs-1",
                &s,
                &ResumeProof::AlreadyAttached,
                "h4",
                NOW_MS
            )
            .await
            .unwrap(),
        ResumeOutcome::Resumed { .. }
    ));
}

async fn kept_signals_are_bounded_and_taken_once(store: &dyn ConnectionStore) {
    store.put(&record("kp-c", NOW_MS), 0).await.unwrap();
    joined(store, "kp-c", "kp-1", "kp", 4).await;
    store.remove("kp-c", NOW_MS + 30_000, NOW_MS).await.unwrap();
    for n in 0..5 {
        let kept = store
            .keep_if_detached(&seat("kp-1", "kp"), None, &format!("m{n}"), 3, NOW + 60)
            .await
            .unwrap();
        let expected = if n < 3 {
            KeepOutcome::Kept
        } else {
            KeepOutcome::Full
        };
        assert_eq!(kept, expected, "message {n}");
    }
    assert_eq!(
        store.take_kept("kp-1").await.unwrap(),
        ["m0", "m1", "m2"].map(String::from)
    );
    assert!(store.take_kept("kp-1").await.unwrap().is_empty());
}

/// The box is bounded in bytes too, the same in every store: under
/// DynamoDB's item limit, whatever the count allows.
async fn kept_signals_are_bounded_in_bytes(store: &dyn ConnectionStore) {
    store.put(&record("kb-c", NOW_MS), 0).await.unwrap();
    joined(store, "kb-c", "kb-1", "kb", 4).await;
    store.remove("kb-c", NOW_MS + 30_000, NOW_MS).await.unwrap();
    let big = "x".repeat(MAX_KEPT_BYTES / 3 + 1);
    let keep = |msg: String| async move {
        store
            .keep_if_detached(&seat("kb-1", "kb"), None, &msg, 64, NOW + 60)
            .await
            .unwrap()
    };
    assert_eq!(keep(big.clone()).await, KeepOutcome::Kept);
    assert_eq!(keep(big.clone()).await, KeepOutcome::Kept);
    // A third would pass the bound; a small one still fits.
    assert_eq!(keep(big.clone()).await, KeepOutcome::Full);
    assert_eq!(keep("small".to_owned()).await, KeepOutcome::Kept);
    // One message past the bound on its own is never kept.
    assert_eq!(
        keep("y".repeat(MAX_KEPT_BYTES + 1)).await,
        KeepOutcome::Full
    );
    let kept = store.take_kept("kb-1").await.unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().map(String::len).sum::<usize>() <= MAX_KEPT_BYTES);
}

async fn a_signal_is_kept_only_for_a_detached_participant(store: &dyn ConnectionStore) {
    for id in ["kd-1", "kd-2"] {
        store.put(&record(id, NOW_MS), 0).await.unwrap();
    }
    joined(store, "kd-1", "kd1", "kd", 4).await;
    joined(store, "kd-2", "kd2", "kd", 4).await;
    let s1 = seat("kd1", "kd");
    let keep = |seat: Seat, gone: Option<&'static str>, msg: &'static str| async move {
        store
            .keep_if_detached(&seat, gone, msg, 2, NOW + 60)
            .await
            .unwrap()
    };
    // Attached: nothing kept, the caller is told where to push.
    assert_eq!(
        keep(s1.clone(), None, "x").await,
        KeepOutcome::Attached("kd-1".into())
    );
    assert_eq!(
        keep(s1.clone(), Some("kd-other"), "x").await,
        KeepOutcome::Attached("kd-1".into())
    );
    assert!(store.take_kept("kd1").await.unwrap().is_empty());
    // Attached to the connection the caller found gone: kept.
    assert_eq!(keep(s1.clone(), Some("kd-1"), "a").await, KeepOutcome::Kept);
    // Detached: kept, up to the bound.
    store.remove("kd-1", NOW_MS + 30_000, NOW_MS).await.unwrap();
    assert_eq!(keep(s1.clone(), None, "b").await, KeepOutcome::Kept);
    assert_eq!(keep(s1.clone(), Some("kd-1"), "c").await, KeepOutcome::Full);
    assert_eq!(
        store.take_kept("kd1").await.unwrap(),
        ["a", "b"].map(String::from)
    );
    // Not in the room, or no such room: nothing kept.
    assert_eq!(
        keep(seat("nobody", "kd"), None, "x").await,
        KeepOutcome::NotInRoom
    );
    assert_eq!(
        keep(seat("kd1", "kd-nowhere"), None, "x").await,
        KeepOutcome::NotInRoom
    );
    store
        .leave("kd-2", &seat("kd2", "kd"), NOW_MS)
        .await
        .unwrap();
    assert_eq!(
        keep(seat("kd2", "kd"), Some("kd-2"), "x").await,
        KeepOutcome::NotInRoom
    );
    assert!(store.take_kept("kd2").await.unwrap().is_empty());
    assert!(store.take_kept("nobody").await.unwrap().is_empty());
}

/// A sender read the room with its target detached; the target resumed and
/// took its kept signals before the sender's keep. The keep must not leave
/// the signal where nobody will take it: it answers the new connection.
async fn a_keep_after_a_resume_points_at_the_new_connection(store: &dyn ConnectionStore) {
    store.put(&record("kr-1", NOW_MS), 0).await.unwrap();
    joined(store, "kr-1", "kr1", "kr", 4).await;
    store.remove("kr-1", NOW_MS + 30_000, NOW_MS).await.unwrap();
    let s = seat("kr1", "kr");
    let before = store.room("kr").await.unwrap();
    assert_eq!(before.member("kr1").unwrap().connection_id, None);
    store
        .put(
            &ConnectionRecord::new("kr-2", "user-kr-1", "again", NOW_MS),
            0,
        )
        .await
        .unwrap();
    let proof = ResumeProof::Token(resume_hash("secret-kr1"));
    let resumed = store
        .resume("kr-2", "user-kr-1", &s, &proof, "h2", NOW_MS)
        .await
        .unwrap();
    assert!(matches!(resumed, ResumeOutcome::Resumed { .. }));
    assert!(store.take_kept("kr1").await.unwrap().is_empty());
    assert_eq!(
        store
            .keep_if_detached(&s, None, "late", 64, NOW + 60)
            .await
            .unwrap(),
        KeepOutcome::Attached("kr-2".into())
    );
    assert!(store.take_kept("kr1").await.unwrap().is_empty());
}

/// Keeps racing a resume and its flush (take): every signal is either kept
/// before the resume (and so taken by its flush) or answered with the new
/// connection; none is left behind, whatever the interleaving.
pub(crate) async fn keeps_racing_a_resume_strand_nothing(store: Arc<dyn ConnectionStore>) {
    const SIGNALS: usize = 6;
    for round in 0..6 {
        let conn = format!("kx-{round}");
        let peer = format!("kxp-{round}");
        let room = format!("kx-room-{round}");
        store.put(&record(&conn, NOW_MS), 0).await.unwrap();
        joined(&*store, &conn, &peer, &room, 4).await;
        store.remove(&conn, NOW_MS + 30_000, NOW_MS).await.unwrap();
        let again = format!("kx-again-{round}");
        let user = format!("user-{conn}");
        store
            .put(&ConnectionRecord::new(&again, &user, "again", NOW_MS), 0)
            .await
            .unwrap();
        let s = seat(&peer, &room);
        let resumer = {
            let (store, s, again) = (store.clone(), s.clone(), again.clone());
            let proof = ResumeProof::Token(resume_hash(&format!("secret-{peer}")));
            tokio::spawn(async move {
                let outcome = store
                    .resume(&again, &user, &s, &proof, "next", NOW_MS)
                    .await
                    .unwrap();
                assert!(matches!(outcome, ResumeOutcome::Resumed { .. }));
                store.take_kept(&s.peer_id).await.unwrap()
            })
        };
        let keepers: Vec<_> = (0..SIGNALS)
            .map(|i| {
                let (store, s) = (store.clone(), s.clone());
                tokio::spawn(async move {
                    let msg = format!("m{i}");
                    let outcome = store
                        .keep_if_detached(&s, None, &msg, 64, NOW + 60)
                        .await
                        .unwrap();
                    (msg, outcome)
                })
            })
            .collect();
        let mut kept = BTreeSet::new();
        for keeper in keepers {
            let (msg, outcome) = keeper.await.unwrap();
            match outcome {
                KeepOutcome::Kept => {
                    kept.insert(msg);
                }
                KeepOutcome::Attached(to) => assert_eq!(to, again, "round {round}"),
                other => panic!("round {round}: {msg}: {other:?}"),
            }
        }
        let flushed: BTreeSet<String> = resumer.await.unwrap().into_iter().collect();
        assert_eq!(
            flushed, kept,
            "round {round}: the resume's flush took every kept signal"
        );
        assert!(
            store.take_kept(&peer).await.unwrap().is_empty(),
            "round {round}: a signal was stranded"
        );
    }
}

/// Ten connections join a room of four at once: exactly four get in, and of
/// every pair that got in, exactly one saw the other in `others`.
pub(crate) async fn concurrent_joins_never_overfill(store: Arc<dyn ConnectionStore>) {
    const JOINERS: usize = 10;
    const ROOM_MAX: usize = 4;
    for i in 0..JOINERS {
        store
            .put(&record(&format!("race-{i}"), NOW_MS + i as u64), 0)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..JOINERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let conn = format!("race-{i}");
            let peer = format!("rp-{i}");
            let outcome = store
                .join(&conn, "race", &member(&peer, &conn), ROOM_MAX, NOW)
                .await
                .unwrap();
            (peer, outcome)
        }));
    }
    let mut seen = Vec::new();
    let mut admitted = BTreeSet::new();
    for task in tasks {
        let (peer, outcome) = task.await.unwrap();
        if let JoinOutcome::Joined { others, .. } = outcome {
            for other in others {
                seen.push((peer.clone(), other.peer.peer_id));
            }
            admitted.insert(peer);
        }
    }
    assert_eq!(admitted.len(), ROOM_MAX, "exactly room_max got in");
    let room = store.room("race").await.unwrap();
    assert_eq!(room.members.len(), ROOM_MAX);
    for a in &admitted {
        for b in &admitted {
            if a < b {
                let announced = seen
                    .iter()
                    .filter(|(x, y)| (x == a && y == b) || (x == b && y == a))
                    .count();
                assert_eq!(
                    announced, 1,
                    "{a} and {b} learned of each other {announced} times"
                );
            }
        }
    }
}

/// A resume racing the expiry of the same detached participant: exactly one
/// wins, never both, whatever the interleaving.
pub(crate) async fn resume_racing_expiry_has_one_winner(store: Arc<dyn ConnectionStore>) {
    for round in 0..8 {
        let conn = format!("rx-{round}");
        let peer = format!("rxp-{round}");
        let room = format!("rx-room-{round}");
        store.put(&record(&conn, NOW_MS), 0).await.unwrap();
        joined(&*store, &conn, &peer, &room, 4).await;
        let until = NOW_MS + 30_000;
        store.remove(&conn, until, NOW_MS).await.unwrap();
        let again = format!("rx-again-{round}");
        store
            .put(
                &ConnectionRecord::new(&again, format!("user-{conn}"), "again", NOW_MS),
                0,
            )
            .await
            .unwrap();
        let s = seat(&peer, &room);
        let resumer = {
            let (store, s, again) = (store.clone(), s.clone(), again.clone());
            let proof = ResumeProof::Token(resume_hash(&format!("secret-{peer}")));
            let user = format!("user-{conn}");
            tokio::spawn(async move {
                store
                    .resume(&again, &user, &s, &proof, "next", until - 1)
                    .await
                    .unwrap()
            })
        };
        let expirer = {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move { store.expire(&s, until, NOW_MS).await.unwrap() })
        };
        let resumed = matches!(resumer.await.unwrap(), ResumeOutcome::Resumed { .. });
        let expired = expirer.await.unwrap().is_some();
        assert!(
            resumed != expired,
            "round {round}: resumed {resumed}, expired {expired}"
        );
        let members = store.room(&room).await.unwrap().members;
        assert_eq!(members.len(), usize::from(resumed), "round {round}");
    }
}
