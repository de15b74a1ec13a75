//! A participant whose socket drops stays in its room for the grace; a new
//! socket of the same user resumes it with its token, gets the room and the
//! signals kept meanwhile, and nobody else notices. Tokens work once, for
//! their user, within the grace.

mod support;

use serde_json::{json, Value};
use support::Harness;
use tincan_signaling::Limits;

/// a and b in room `r`; returns (a's peer id, a's resume token, b's peer id).
async fn a_and_b(h: &mut Harness) -> (String, String, String) {
    h.connect("a").await;
    h.connect("b").await;
    h.send("a", json!({"action": "join", "room": "r"})).await;
    let joined = h.only("a");
    h.send("b", json!({"action": "join", "room": "r"})).await;
    let b = h.only("b")["self"]["peerId"].as_str().unwrap().to_owned();
    h.push.take("a");
    (
        joined["self"]["peerId"].as_str().unwrap().to_owned(),
        joined["resume"]["token"].as_str().unwrap().to_owned(),
        b,
    )
}

fn resume(peer: &str, token: &str) -> Value {
    json!({"action": "resume", "peerId": peer, "token": token})
}

#[tokio::test]
async fn a_resume_within_the_grace_keeps_the_room_and_the_signals() {
    let mut h = Harness::new(Limits::default());
    let (a, token, b) = a_and_b(&mut h).await;
    h.disconnect("a").await;
    // b signals a while a is away: kept, and b is told nothing.
    for n in 0..3 {
        h.send(
            "b",
            json!({"action": "signal", "to": a, "data": {"candidate": n}}),
        )
        .await;
    }
    h.send("b", json!({"action": "mute", "muted": true})).await;
    assert!(h.push.take("b").is_empty());

    h.now += 10_000;
    h.connect_as("a2", "a").await;
    h.send("a2", resume(&a, &token)).await;
    let frames = h.push.take("a2");
    assert_eq!(frames.len(), 4, "{frames:?}");
    let resumed = &frames[0];
    assert_eq!(resumed["type"], "resumed");
    assert_eq!(resumed["self"]["peerId"], a.as_str());
    assert_eq!(resumed["peers"][0]["peerId"], b.as_str());
    assert_eq!(resumed["peers"][0]["muted"], true);
    assert_ne!(resumed["resume"]["token"], token.as_str());
    for (n, frame) in frames[1..].iter().enumerate() {
        assert_eq!(
            *frame,
            json!({"type": "signal", "from": b, "to": a, "data": {"candidate": n}})
        );
    }
    assert!(h.push.take("b").is_empty(), "b noticed nothing");

    // The resumed participant talks as before, under the same id.
    h.send("a2", json!({"action": "signal", "to": b, "data": 1}))
        .await;
    assert_eq!(
        h.only("b"),
        json!({"type": "signal", "from": a, "to": b, "data": 1})
    );
    // The old connection, if it ever speaks again, speaks for nobody.
    h.connect_as("a", "a").await;
    h.send("a", json!({"action": "signal", "to": b, "data": 2}))
        .await;
    assert_eq!(h.only("a")["code"], "not-in-room");
}

#[tokio::test]
async fn a_token_works_once_for_its_user_within_the_grace() {
    let mut h = Harness::new(Limits::default());
    let (a, token, _b) = a_and_b(&mut h).await;
    h.disconnect("a").await;

    // Another user with the token: refused, nothing changes.
    h.connect("mallory").await;
    h.send("mallory", resume(&a, &token)).await;
    assert_eq!(h.only("mallory")["code"], "resume-failed");
    // A forged token or peer id: refused.
    h.connect_as("a2", "a").await;
    h.send("a2", resume(&a, "r.not-the-secret")).await;
    assert_eq!(h.only("a2")["code"], "resume-failed");
    h.send("a2", resume("someone-else", &token)).await;
    assert_eq!(h.only("a2")["code"], "resume-failed");
    // The owner: resumed.
    h.send("a2", resume(&a, &token)).await;
    assert_eq!(h.only("a2")["type"], "resumed");
    // The same token twice: refused.
    h.connect_as("a3", "a").await;
    h.send("a3", resume(&a, &token)).await;
    assert_eq!(h.only("a3")["code"], "resume-failed");
    assert!(h.push.take("b").is_empty());
}

#[tokio::test]
async fn after_the_grace_the_token_is_refused_and_the_room_told() {
    let mut h = Harness::new(Limits::default());
    let (a, token, _b) = a_and_b(&mut h).await;
    h.disconnect("a").await;
    h.now += 30_001;
    h.connect_as("a2", "a").await;
    h.send("a2", resume(&a, &token)).await;
    assert_eq!(h.only("a2")["code"], "resume-failed");
    // Reading the room for the resume ended the participant.
    assert_eq!(h.only("b"), json!({"type": "peer-left", "peerId": a}));
    assert_eq!(h.store_room("r").await.members.len(), 1);
    // A full rejoin works, as a new participant.
    h.send("a2", json!({"action": "join", "room": "r"})).await;
    let joined = h.only("a2");
    assert_ne!(joined["self"]["peerId"], a.as_str());
    assert_eq!(h.only("b")["type"], "peer-joined");
}

#[tokio::test]
async fn a_full_room_join_leaves_the_joiner_where_it_was() {
    let limits = Limits {
        room_max: 2,
        ..Limits::default()
    };
    let mut h = Harness::new(limits);
    let (_a, _token, _b) = a_and_b(&mut h).await;
    h.connect("x").await;
    h.send("x", json!({"action": "join", "room": "other"}))
        .await;
    h.push.take("x");
    h.connect("y").await;
    h.send("y", json!({"action": "join", "room": "other"}))
        .await;
    h.push.take("x");
    h.push.take("y");
    // A detached participant still holds its seat.
    h.disconnect("b").await;
    h.send("x", json!({"action": "join", "room": "r"})).await;
    assert_eq!(h.only("x")["code"], "room-full");
    assert!(h.push.take("y").is_empty(), "nobody told x left");
    assert_eq!(h.room_of("x").await.as_deref(), Some("other"));
}
