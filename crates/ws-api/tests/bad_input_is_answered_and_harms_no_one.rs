//! Every kind of bad frame gets its stable error code; the sender stays
//! connected and nobody else's state changes.

mod support;

use serde_json::json;
use support::Harness;
use tincan_signaling::Limits;
use tincan_store::ConnectionStore;
use tincan_ws_api::ConnectError;

async fn two_in_a_room(limits: Limits) -> Harness {
    let mut h = Harness::new(limits);
    h.connect("a").await;
    h.connect("b").await;
    h.connect("x").await;
    h.send("a", json!({"action": "join", "room": "r1"})).await;
    h.send("b", json!({"action": "join", "room": "r1"})).await;
    h.send("x", json!({"action": "join", "room": "r2"})).await;
    for id in ["a", "b", "x"] {
        h.push.take(id);
    }
    h
}

#[tokio::test]
async fn each_bad_frame_gets_its_code_and_the_connection_stays() {
    let limits = Limits {
        max_message_bytes: 1024,
        room_max: 2,
        ..Limits::default()
    };
    let mut h = two_in_a_room(limits).await;
    let before_b = h.store.get("b", h.now / 1000).await.unwrap();
    let before_x = h.store.get("x", h.now / 1000).await.unwrap();

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad-request"),
        ("42".into(), "bad-request"),
        (json!({"action": "fly"}).to_string(), "unknown-action"),
        (json!({"room": "r1"}).to_string(), "bad-request"),
        (json!({"action": "join"}).to_string(), "bad-request"),
        (
            json!({"action": "signal", "to": "b"}).to_string(),
            "bad-request",
        ),
        (json!({"action": "mute"}).to_string(), "bad-request"),
        (
            json!({"action": "join", "room": "no spaces!"}).to_string(),
            "bad-request",
        ),
        (
            json!({"action": "join", "room": "x".repeat(65)}).to_string(),
            "bad-request",
        ),
        (
            json!({"action": "signal", "to": "x", "data": {}}).to_string(),
            "not-in-room",
        ),
        (
            json!({"action": "signal", "to": "nobody", "data": {}}).to_string(),
            "not-in-room",
        ),
        (
            json!({"action": "ping", "pad": "p".repeat(2000)}).to_string(),
            "too-large",
        ),
    ];
    for (frame, code) in cases {
        h.send_text("a", &frame).await;
        let reply = h.only("a");
        assert_eq!(reply["type"], "error", "{frame}");
        assert_eq!(reply["code"], code, "{frame}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
        assert!(h.push.take("x").is_empty(), "x heard about {frame}");
        assert!(h.push.take("b").is_empty(), "b heard about {frame}");
    }
    // Still connected, still in the room, still able to talk.
    h.send("a", json!({"action": "ping"})).await;
    assert_eq!(h.only("a"), json!({"type": "pong"}));
    assert_eq!(h.room_of("a").await.as_deref(), Some("r1"));
    assert_eq!(h.store.get("b", h.now / 1000).await.unwrap(), before_b);
    assert_eq!(h.store.get("x", h.now / 1000).await.unwrap(), before_x);
}

#[tokio::test]
async fn a_full_room_refuses_the_next_peer() {
    let limits = Limits {
        max_message_bytes: 1024,
        room_max: 2,
        ..Limits::default()
    };
    let mut h = two_in_a_room(limits).await;
    h.send("x", json!({"action": "join", "room": "r1"})).await;
    let reply = h.only("x");
    assert_eq!(reply["code"], "room-full");
    assert!(h.push.take("a").is_empty());
    assert!(h.push.take("b").is_empty());
    // x stays where it was.
    assert_eq!(h.room_of("x").await.as_deref(), Some("r2"));
    assert_eq!(h.store.room("r1").await.unwrap().members.len(), 2);
    assert_eq!(h.store.room("r2").await.unwrap().members.len(), 1);
}

#[tokio::test]
async fn connect_without_a_valid_token_is_refused() {
    let h = Harness::new(Limits::default());
    let now = support::T0;
    let other = tincan_token::TokenKeys::new(b"some-other-secret-some-other-secret", 900).unwrap();
    let expired = h.tokens.issue("u", "U", now / 1000 - 10_000);
    let foreign = other.issue("u", "U", now / 1000);
    for token in [
        None,
        Some(""),
        Some("garbage"),
        Some(expired.as_str()),
        Some(foreign.as_str()),
    ] {
        let err = h.api.connect("c1", token, now).await.unwrap_err();
        assert!(matches!(err, ConnectError::Unauthorized(_)), "{token:?}");
    }
    assert!(h.store.get("c1", now / 1000).await.unwrap().is_none());
}

#[tokio::test]
async fn a_gone_peer_is_detached_then_its_room_told_after_the_grace() {
    let mut h = two_in_a_room(Limits::default()).await;
    h.connect("c").await;
    h.send("c", json!({"action": "join", "room": "r1"})).await;
    h.push.take("a");
    h.push.take("c");
    let b = h.peer("b").await;
    // b vanished without a $disconnect: the next push to it answers 410.
    h.push.mark_gone("b");
    h.send(
        "a",
        json!({"action": "signal", "to": b, "data": {"candidate": "x"}}),
    )
    .await;
    // Forgotten as a connection, still in the room as a participant, and
    // nobody told.
    assert!(h.store.get("b", h.now / 1000).await.unwrap().is_none());
    assert!(h.push.take("a").is_empty());
    assert!(h.push.take("c").is_empty());
    assert_eq!(h.store.room("r1").await.unwrap().members.len(), 3);
    // The grace runs out: the sweep ends it and the room is told.
    h.now += 31_000;
    h.api.sweep(h.now).await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": b}));
    assert_eq!(h.only("c"), json!({"type": "peer-left", "peerId": b}));
    assert_eq!(h.store.room("r1").await.unwrap().members.len(), 2);
}

#[tokio::test]
async fn frames_from_an_unknown_connection_change_nothing() {
    let mut h = two_in_a_room(Limits::default()).await;
    h.send("ghost", json!({"action": "join", "room": "r1"}))
        .await;
    assert!(h.push.take("a").is_empty());
    assert!(h.push.take("b").is_empty());
    assert_eq!(h.store.room("r1").await.unwrap().members.len(), 2);
}
