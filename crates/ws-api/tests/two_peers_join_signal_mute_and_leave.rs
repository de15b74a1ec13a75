//! Two authenticated peers meet in a room, negotiate, mute and part.

mod support;

use serde_json::json;
use support::Harness;
use tincan_signaling::Limits;
use tincan_store::ConnectionStore;

#[tokio::test]
async fn two_peers_join_signal_mute_and_leave() {
    let mut h = Harness::new(Limits::default());
    h.connect("a").await;
    h.connect("b").await;
    h.connect("c").await; // in no room: must hear nothing

    h.send("a", json!({"action": "join", "room": "standup"}))
        .await;
    let joined = h.only("a");
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"], "standup");
    assert_eq!(joined["self"]["peerId"], "a");
    assert_eq!(joined["self"]["userId"], "user-a");
    assert_eq!(joined["self"]["displayName"], "Name a");
    assert_eq!(joined["peers"], json!([]));

    h.send("b", json!({"action": "join", "room": "standup"}))
        .await;
    let joined = h.only("b");
    assert_eq!(joined["peers"].as_array().unwrap().len(), 1);
    assert_eq!(joined["peers"][0]["peerId"], "a");
    let peer_joined = h.only("a");
    assert_eq!(peer_joined["type"], "peer-joined");
    assert_eq!(peer_joined["peer"]["peerId"], "b");
    assert_eq!(peer_joined["peer"]["displayName"], "Name b");

    // Signals are relayed verbatim to the named peer only, from the stored id.
    let offer = json!({"sdp": {"type": "offer", "sdp": "v=0\r\n..."}, "extra": [1, {"x": null}]});
    h.send(
        "a",
        json!({"action": "signal", "to": "b", "data": offer, "from": "forged"}),
    )
    .await;
    assert_eq!(
        h.only("b"),
        json!({"type": "signal", "from": "a", "data": offer})
    );
    assert!(h.push.take("a").is_empty());
    assert!(h.push.take("c").is_empty());

    h.send("b", json!({"action": "mute", "muted": true})).await;
    assert_eq!(
        h.only("a"),
        json!({"type": "peer-muted", "peerId": "b", "muted": true})
    );
    assert!(h.store.get("b", h.now / 1000).await.unwrap().unwrap().muted);

    h.send("a", json!({"action": "ping"})).await;
    assert_eq!(h.only("a"), json!({"type": "pong"}));

    h.send("b", json!({"action": "leave"})).await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": "b"}));

    // Back in, then the socket closes: that counts as leaving.
    h.send("b", json!({"action": "join", "room": "standup"}))
        .await;
    let joined = h.only("b");
    assert_eq!(joined["self"]["muted"], true, "mute state is kept");
    h.push.take("a");
    h.disconnect("b").await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": "b"}));
    assert!(h.store.get("b", h.now / 1000).await.unwrap().is_none());
    assert!(h.push.take("c").is_empty());
}

#[tokio::test]
async fn switching_rooms_leaves_the_old_one() {
    let mut h = Harness::new(Limits::default());
    for id in ["a", "b", "c"] {
        h.connect(id).await;
    }
    h.send("a", json!({"action": "join", "room": "one"})).await;
    h.send("b", json!({"action": "join", "room": "one"})).await;
    h.send("c", json!({"action": "join", "room": "two"})).await;
    for id in ["a", "b", "c"] {
        h.push.take(id);
    }
    h.send("b", json!({"action": "join", "room": "two"})).await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": "b"}));
    assert_eq!(h.only("c")["type"], "peer-joined");
    assert_eq!(h.only("b")["peers"][0]["peerId"], "c");
}
