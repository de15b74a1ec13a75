//! Two authenticated peers meet in a room, negotiate, mute and part; peer
//! ids are participant ids, not connection ids.

mod support;

use serde_json::json;
use support::Harness;
use tincan_signaling::Limits;

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
    let a = joined["self"]["peerId"].as_str().unwrap().to_owned();
    assert_ne!(a, "a", "a peer id is not the connection id");
    assert_eq!(joined["self"]["userId"], "user-a");
    assert_eq!(joined["self"]["displayName"], "Name a");
    assert_eq!(joined["peers"], json!([]));
    assert!(joined["resume"]["token"]
        .as_str()
        .unwrap()
        .starts_with("standup."));
    assert_eq!(joined["resume"]["graceSecs"], 30);

    h.send("b", json!({"action": "join", "room": "standup"}))
        .await;
    let joined = h.only("b");
    let b = joined["self"]["peerId"].as_str().unwrap().to_owned();
    assert_eq!(joined["peers"].as_array().unwrap().len(), 1);
    assert_eq!(joined["peers"][0]["peerId"], a.as_str());
    let peer_joined = h.only("a");
    assert_eq!(peer_joined["type"], "peer-joined");
    assert_eq!(peer_joined["peer"]["peerId"], b.as_str());
    assert_eq!(peer_joined["peer"]["displayName"], "Name b");

    // Signals are relayed verbatim to the named peer only, from the stored id.
    let offer = json!({"sdp": {"type": "offer", "sdp": "v=0\r\n..."}, "extra": [1, {"x": null}]});
    h.send(
        "a",
        json!({"action": "signal", "to": b, "data": offer, "from": "forged"}),
    )
    .await;
    assert_eq!(
        h.only("b"),
        json!({"type": "signal", "from": a, "to": b, "data": offer})
    );
    assert!(h.push.take("a").is_empty());
    assert!(h.push.take("c").is_empty());

    h.send("b", json!({"action": "mute", "muted": true})).await;
    assert_eq!(
        h.only("a"),
        json!({"type": "peer-muted", "peerId": b, "muted": true})
    );
    let room = h.store_room("standup").await;
    assert!(room.member(&b).unwrap().peer.muted);

    h.send("b", json!({"action": "leave"})).await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": b}));
    assert!(h.push.take("b").is_empty());
    assert!(h.push.take("c").is_empty());
    assert_eq!(h.store_room("standup").await.members.len(), 1);
}

#[tokio::test]
async fn moving_rooms_tells_the_old_room_and_the_new() {
    let mut h = Harness::new(Limits::default());
    for id in ["a", "b", "c"] {
        h.connect(id).await;
    }
    h.send("a", json!({"action": "join", "room": "one"})).await;
    h.send("b", json!({"action": "join", "room": "one"})).await;
    h.send("c", json!({"action": "join", "room": "two"})).await;
    let b_old = h.peer("b").await;
    for id in ["a", "b", "c"] {
        h.push.take(id);
    }
    h.send("b", json!({"action": "join", "room": "two"})).await;
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": b_old}));
    let joined = h.only("b");
    assert_eq!(joined["room"], "two");
    assert_eq!(joined["peers"].as_array().unwrap().len(), 1);
    assert_eq!(h.only("c")["type"], "peer-joined");
    // Joining the room you are in renews the token and announces nothing.
    h.send("b", json!({"action": "join", "room": "two"})).await;
    assert_eq!(h.only("b")["type"], "resumed");
    assert!(h.push.take("c").is_empty());
}
