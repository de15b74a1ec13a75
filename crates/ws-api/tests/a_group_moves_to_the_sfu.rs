//! Group calls (docs/sfu.md): the join past `mesh_max` moves the room to
//! the SFU, `sfu-offer` reaches the room's node and its answer comes back,
//! mute and departures reach the node, and a refusing or missing node gives
//! a clear error without harming anyone.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use support::Harness;
use tincan_signaling::{Limits, Peer};
use tincan_ws_api::{SfuError, SfuGateway};

/// Stands in for a media node's control API: records calls, answers or
/// refuses as told.
#[derive(Default)]
struct RecordingSfu {
    calls: Mutex<Vec<String>>,
    refuse: Mutex<Option<&'static str>>,
}

#[async_trait]
impl SfuGateway for RecordingSfu {
    async fn join(&self, room: &str, peer: &Peer, offer: &str, _: u64) -> Result<String, SfuError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("join {room} {} {offer}", peer.display_name));
        match *self.refuse.lock().unwrap() {
            Some("room-full") => Err(SfuError::Refused {
                code: "room-full".into(),
                message: "full".into(),
            }),
            Some(_) => Err(SfuError::Unreachable("connection refused".into())),
            None => Ok(format!("v=0 answer for {}", peer.peer_id)),
        }
    }

    async fn mute(&self, room: &str, peer_id: &str, muted: bool, _: u64) -> Result<(), SfuError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("mute {room} {peer_id} {muted}"));
        Ok(())
    }

    async fn leave(&self, room: &str, peer_id: &str, _: u64) -> Result<(), SfuError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("leave {room} {peer_id}"));
        Ok(())
    }
}

fn limits() -> Limits {
    Limits {
        mesh_max: 2,
        sfu_slots: 3,
        room_max: 100,
        ..Limits::default()
    }
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

#[tokio::test]
async fn the_third_joiner_moves_a_two_person_call_to_the_sfu() {
    let sfu = Arc::new(RecordingSfu::default());
    let mut h = Harness::with_sfu(limits(), sfu.clone());
    for id in ["a", "b", "c"] {
        h.connect(id).await;
    }
    h.send("a", json!({"action": "join", "room": "g"})).await;
    h.send("b", json!({"action": "join", "room": "g"})).await;
    let a = h.push.take("a");
    assert_eq!(of_type(&a, "joined")[0]["mode"], "mesh");
    assert!(of_type(&a, "joined")[0].get("sfu").is_none());
    assert_eq!(of_type(&h.push.take("b"), "joined")[0]["mode"], "mesh");

    h.send("c", json!({"action": "join", "room": "g"})).await;
    let c = h.push.take("c");
    let joined = of_type(&c, "joined")[0];
    assert_eq!(joined["mode"], "sfu");
    assert_eq!(joined["sfu"], json!({"slots": 3}));
    for id in ["a", "b"] {
        let frames = h.push.take(id);
        assert_eq!(of_type(&frames, "peer-joined").len(), 1, "{id}: {frames:?}");
        assert_eq!(
            of_type(&frames, "room-mode"),
            [&json!({"type": "room-mode", "mode": "sfu", "sfu": {"slots": 3}})],
            "{id}"
        );
    }

    // Each offers; the node's answer comes back to the offerer only.
    for id in ["a", "b", "c"] {
        h.send(
            id,
            json!({"action": "sfu-offer", "sdp": format!("v=0 offer {id}")}),
        )
        .await;
        let peer = h.peer(id).await;
        let frames = h.push.take(id);
        assert_eq!(
            frames,
            [json!({"type": "sfu-answer", "sdp": format!("v=0 answer for {peer}")})],
            "{id}"
        );
    }
    assert_eq!(sfu.calls.lock().unwrap().len(), 3);
    assert_eq!(
        sfu.calls.lock().unwrap()[0],
        "join g Name a v=0 offer a",
        "the node hears the stored name, not a claimed one"
    );

    // Mute reaches the node and the room.
    let a_peer = h.peer("a").await;
    h.send("a", json!({"action": "mute", "muted": true})).await;
    assert!(sfu
        .calls
        .lock()
        .unwrap()
        .contains(&format!("mute g {a_peer} true")));
    assert_eq!(of_type(&h.push.take("b"), "peer-muted").len(), 1);

    // The room shrinks to one: it stays on the SFU, and a newcomer goes
    // straight there, told by `joined` alone.
    h.send("a", json!({"action": "leave"})).await;
    h.send("b", json!({"action": "leave"})).await;
    assert!(sfu
        .calls
        .lock()
        .unwrap()
        .contains(&format!("leave g {a_peer}")));
    h.connect("d").await;
    h.send("d", json!({"action": "join", "room": "g"})).await;
    let d = h.push.take("d");
    assert_eq!(of_type(&d, "joined")[0]["mode"], "sfu");
    assert!(of_type(&h.push.take("c"), "room-mode").is_empty());

    // Once everyone has left, the room starts over as a mesh.
    h.send("c", json!({"action": "leave"})).await;
    h.send("d", json!({"action": "leave"})).await;
    h.connect("e").await;
    h.send("e", json!({"action": "join", "room": "g"})).await;
    assert_eq!(of_type(&h.push.take("e"), "joined")[0]["mode"], "mesh");
}

#[tokio::test]
async fn offers_outside_an_sfu_room_or_refused_by_the_node_get_clear_errors() {
    let sfu = Arc::new(RecordingSfu::default());
    let mut h = Harness::with_sfu(limits(), sfu.clone());
    for id in ["a", "b", "c", "x"] {
        h.connect(id).await;
    }
    // In no room, and in a mesh room.
    h.send("x", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    assert_eq!(h.push.take("x")[0]["code"], "not-in-room");
    h.send("a", json!({"action": "join", "room": "g"})).await;
    h.push.take("a");
    h.send("a", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    assert_eq!(h.push.take("a")[0]["code"], "not-sfu");
    // Not an SDP at all.
    h.send("a", json!({"action": "sfu-offer", "sdp": "hello"}))
        .await;
    assert_eq!(h.push.take("a")[0]["code"], "bad-request");
    assert!(sfu.calls.lock().unwrap().is_empty());

    h.send("b", json!({"action": "join", "room": "g"})).await;
    h.send("c", json!({"action": "join", "room": "g"})).await;
    for id in ["a", "b", "c"] {
        h.push.take(id);
    }
    *sfu.refuse.lock().unwrap() = Some("room-full");
    h.send("a", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    assert_eq!(h.push.take("a")[0]["code"], "room-full");
    *sfu.refuse.lock().unwrap() = Some("down");
    h.send("b", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    let frames = h.push.take("b");
    assert_eq!(frames[0]["code"], "sfu-unavailable", "{frames:?}");
    // Nobody else heard anything, and the room is intact.
    assert!(h.push.take("c").is_empty());
    *sfu.refuse.lock().unwrap() = None;
    h.send("b", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    assert_eq!(h.push.take("b")[0]["type"], "sfu-answer");
}

#[tokio::test]
async fn without_an_sfu_an_offer_is_unavailable() {
    let mut h = Harness::new(limits());
    for id in ["a", "b", "c"] {
        h.connect(id).await;
        h.send(id, json!({"action": "join", "room": "g"})).await;
    }
    h.push.take("c");
    h.send("c", json!({"action": "sfu-offer", "sdp": "v=0"}))
        .await;
    assert_eq!(h.push.take("c")[0]["code"], "sfu-unavailable");
}
