//! The limits every gateway applies because the core decides them: each
//! socket's message budget (kept with its connection in the store, so every
//! container shares it) and the sockets one user may hold.

mod support;

use serde_json::json;
use support::{Harness, T0};
use tincan_signaling::Limits;
use tincan_store::ConnectionStore;
use tincan_ws_api::ConnectError;

#[tokio::test]
async fn the_41st_message_of_a_burst_is_refused_and_a_flood_is_closed() {
    let mut h = Harness::new(Limits::default());
    h.connect("a").await;
    h.connect("b").await;
    for _ in 0..40 {
        h.send("a", json!({"action": "ping"})).await;
    }
    let pongs = h.push.take("a");
    assert_eq!(pongs.len(), 40);
    assert!(pongs.iter().all(|f| f["type"] == "pong"));

    h.send("a", json!({"action": "ping"})).await;
    let refused = h.only("a");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "rate-limited");
    let wait = refused["retryAfterMs"].as_u64().expect("retryAfterMs");
    assert!((1..=50).contains(&wait), "{refused}");
    // A refused frame is not handled: not even a bad one is parsed.
    h.send_text("a", "not json").await;
    assert_eq!(h.only("a")["code"], "rate-limited");

    // Someone else's socket has a budget of its own.
    h.send("b", json!({"action": "ping"})).await;
    assert_eq!(h.only("b"), json!({"type": "pong"}));

    // After the wait it named, the socket is served again.
    h.now += 1000;
    h.send("a", json!({"action": "ping"})).await;
    assert_eq!(h.only("a"), json!({"type": "pong"}));

    // Flooding on (a frame a millisecond, 50 times the rate): refused but
    // for the odd frame the budget refills, until the refused budget runs
    // dry, then closed (DeleteConnection on AWS).
    let mut sent = 0;
    while !h.push.is_gone("a") {
        h.send("a", json!({"action": "ping"})).await;
        sent += 1;
        assert!(sent < 200, "never closed");
    }
    let frames = h.push.take("a");
    let refused = frames
        .iter()
        .filter(|f| f["code"] == "rate-limited")
        .count();
    assert!(refused >= 40, "{refused} refused of {sent}");
    assert!(h.store.get("b", h.now / 1000).await.unwrap().is_some());
}

#[tokio::test]
async fn a_users_ninth_socket_is_refused() {
    let mut h = Harness::new(Limits::default());
    for i in 0..8 {
        h.connect_as(&format!("s{i}"), "many").await;
    }
    let token = h.tokens.issue("user-many", "Name many", T0 / 1000);
    let err = h.api.connect("s8", Some(&token), h.now).await.unwrap_err();
    assert!(matches!(err, ConnectError::TooManySockets(8)), "{err:?}");
    assert!(h.store.get("s8", h.now / 1000).await.unwrap().is_none());
    // Another user is not counted against this one.
    h.connect("other").await;
    // One closes: its place is free again.
    h.disconnect("s3").await;
    h.api.connect("s8", Some(&token), h.now).await.unwrap();
}
