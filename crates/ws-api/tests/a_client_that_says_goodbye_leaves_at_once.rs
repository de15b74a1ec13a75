//! A client that closes its socket on purpose (close code 1000, or a close
//! frame with no code) has left: the room is told at once, with no resume
//! grace, and its resume token no longer works. Only drops keep the grace.

mod support;

use serde_json::json;
use support::Harness;
use tincan_signaling::{Limits, SocketEnd};
use tincan_store::ConnectionStore as _;

#[test]
fn only_a_close_frame_of_1000_or_no_code_is_a_goodbye() {
    assert_eq!(SocketEnd::from_close_code(Some(1000)), SocketEnd::Goodbye);
    assert_eq!(SocketEnd::from_close_code(Some(1005)), SocketEnd::Goodbye);
    // No close frame, the gateway's idle or lifetime cut, a violation.
    for code in [1001, 1002, 1006, 1007, 1008, 1009, 1011, 4000] {
        assert_eq!(SocketEnd::from_close_code(Some(code)), SocketEnd::Dropped);
    }
    assert_eq!(SocketEnd::from_close_code(None), SocketEnd::Dropped);
}

#[tokio::test]
async fn the_room_hears_peer_left_at_once_and_the_token_is_dead() {
    let mut h = Harness::new(Limits::default());
    h.connect("a").await;
    h.connect("b").await;
    h.send("a", json!({"action": "join", "room": "r"})).await;
    let joined = h.only("a");
    let a = joined["self"]["peerId"].as_str().unwrap().to_owned();
    let token = joined["resume"]["token"].as_str().unwrap().to_owned();
    h.send("b", json!({"action": "join", "room": "r"})).await;
    h.push.take("a");
    h.push.take("b");

    h.goodbye("a").await;
    let heard = h.only("b");
    assert_eq!(heard["type"], "peer-left");
    assert_eq!(heard["peerId"], a.as_str());
    let room = h.store.room("r").await.unwrap();
    assert_eq!(room.members.len(), 1, "{room:?}");

    // Well within what would have been the grace, the token is refused.
    h.now += 1_000;
    h.connect_as("a2", "a").await;
    h.send(
        "a2",
        json!({"action": "resume", "peerId": a, "token": token}),
    )
    .await;
    assert_eq!(h.only("a2")["code"], "resume-failed");
}

#[tokio::test]
async fn a_drop_still_keeps_the_grace() {
    let mut h = Harness::new(Limits::default());
    h.connect("a").await;
    h.connect("b").await;
    h.send("a", json!({"action": "join", "room": "r"})).await;
    h.send("b", json!({"action": "join", "room": "r"})).await;
    h.push.take("a");
    h.push.take("b");
    h.disconnect("a").await;
    assert!(h.push.take("b").is_empty());
    assert_eq!(h.store.room("r").await.unwrap().members.len(), 2);
}

#[tokio::test]
async fn a_goodbye_from_a_socket_in_no_room_is_harmless() {
    let mut h = Harness::new(Limits::default());
    h.connect("a").await;
    h.goodbye("a").await;
    h.goodbye("a").await;
    h.goodbye("never-connected").await;
    assert!(h.push.take("a").is_empty());
}
