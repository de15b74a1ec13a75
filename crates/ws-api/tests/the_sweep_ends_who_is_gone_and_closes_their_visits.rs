//! The periodic sweep ends participants that are gone for good, in rooms
//! nobody reads again, and closes their visits in call history at the time
//! they were last seen.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use support::{RecordingPush, SECRET, T0};
use tincan_signaling::{Limits, MediaPath, Peer};
use tincan_store::{ConnectionStore, MemoryConnectionStore, CONNECTION_TTL_SECS};
use tincan_token::TokenKeys;
use tincan_ws_api::{
    CallLog, CallLogError, NoIceServers, NoSfu, SocketEnd, Swept, WsApi, WsApiConfig,
};

/// Every call-history write: (peer id, "joined" or "left", at).
#[derive(Default)]
struct RecordingCalls(Mutex<Vec<(String, &'static str, u64)>>);

#[async_trait]
impl CallLog for RecordingCalls {
    async fn joined(&self, peer: &Peer, _room: &str, at_ms: u64) -> Result<(), CallLogError> {
        let entry = (peer.peer_id.clone(), "joined", at_ms);
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
    async fn left(&self, peer: &Peer, _room: &str, at_ms: u64) -> Result<(), CallLogError> {
        let entry = (peer.peer_id.clone(), "left", at_ms);
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
    async fn media_path(&self, _: &Peer, _: &str, _: MediaPath) -> Result<(), CallLogError> {
        Ok(())
    }
}

impl RecordingCalls {
    fn left(&self, peer: &str) -> Vec<u64> {
        let entries = self.0.lock().unwrap();
        entries
            .iter()
            .filter(|(p, what, _)| p == peer && *what == "left")
            .map(|(_, _, at)| *at)
            .collect()
    }
}

struct World {
    api: WsApi,
    push: Arc<RecordingPush>,
    store: Arc<MemoryConnectionStore>,
    calls: Arc<RecordingCalls>,
    tokens: TokenKeys,
}

fn world() -> World {
    let push = Arc::new(RecordingPush::default());
    let store = Arc::new(MemoryConnectionStore::new());
    let calls = Arc::new(RecordingCalls::default());
    let tokens = TokenKeys::new(SECRET, 900).unwrap();
    let api = WsApi::new(WsApiConfig {
        limits: Limits::default(),
        tokens: tokens.clone(),
        store: store.clone(),
        push: push.clone(),
        ice: Arc::new(NoIceServers),
        sfu: Arc::new(NoSfu),
        calls: Some(calls.clone()),
        users: None,
        api_keys: tincan_token::join::ApiKeys::none(),
    });
    World {
        api,
        push,
        store,
        calls,
        tokens,
    }
}

impl World {
    async fn connect(&self, id: &str, now: u64) {
        let token = self
            .tokens
            .issue(&format!("user-{id}"), &format!("Name {id}"), now / 1000);
        self.api.connect(id, Some(&token), now).await.unwrap();
    }

    async fn send(&self, id: &str, frame: serde_json::Value, now: u64) {
        self.api.message(id, &frame.to_string(), now).await;
    }

    async fn peer(&self, id: &str, now: u64) -> String {
        let record = self.store.get(id, now / 1000).await.unwrap().unwrap();
        record.seat.unwrap().peer_id
    }
}

#[tokio::test]
async fn a_connection_that_ended_without_a_disconnect_is_swept_at_its_last_ping() {
    let w = world();
    w.connect("a", T0).await;
    w.send("a", json!({"action": "join", "room": "r"}), T0 + 1)
        .await;
    let a = w.peer("a", T0 + 1).await;
    // a's last sign of life: a keepalive a minute in.
    w.send("a", json!({"action": "ping"}), T0 + 60_000).await;
    // b comes an hour later, so its connection outlives a's.
    let hour = 3_600_000;
    w.connect("b", T0 + hour).await;
    w.send("b", json!({"action": "join", "room": "r"}), T0 + hour + 1)
        .await;
    w.push.take("a");
    w.push.take("b");

    // Before a's record expires, it is a live connection: nothing to do.
    assert_eq!(w.api.sweep(T0 + hour + 2).await, Swept::default());

    // API Gateway cut a at 2 hours and no $disconnect came; its record has
    // expired since. The sweep ends it, tells b, and closes a's visit at
    // its last ping.
    let later = T0 + CONNECTION_TTL_SECS * 1000 + 1_000;
    let swept = w.api.sweep(later).await;
    assert_eq!(swept.stranded, 1, "{swept:?}");
    assert_eq!(swept.expired, 0, "{swept:?}");
    assert_eq!(
        w.push.take("b"),
        vec![json!({"type": "peer-left", "peerId": a})]
    );
    assert_eq!(w.calls.left(&a), vec![T0 + 60_000]);
    let room = w.store.room("r").await.unwrap();
    assert_eq!(room.members.len(), 1);
    // Done once.
    assert_eq!(w.api.sweep(later + 60_000).await, Swept::default());
    assert_eq!(w.calls.left(&a).len(), 1);
}

#[tokio::test]
async fn a_visit_whose_grace_ran_out_ends_at_the_drop_not_the_deadline() {
    let w = world();
    for id in ["a", "b"] {
        w.connect(id, T0).await;
        w.send(id, json!({"action": "join", "room": "g"}), T0 + 1)
            .await;
    }
    let a = w.peer("a", T0 + 1).await;
    // a's socket drops ten seconds in; nobody resumes it, nobody speaks.
    let dropped = T0 + 10_000;
    w.api.disconnect("a", SocketEnd::Dropped, dropped).await;
    let grace = Limits::default().resume_grace_secs * 1000;
    assert_eq!(w.api.sweep(dropped + grace - 1).await, Swept::default());
    // The sweep comes well after the grace ran out.
    let swept = w.api.sweep(dropped + grace + 45_000).await;
    assert_eq!(swept.expired, 1, "{swept:?}");
    assert_eq!(w.calls.left(&a), vec![dropped]);
    w.push.take("b");

    // Likewise when the room is read again, not swept: b's ping reaps c.
    w.connect("c", T0).await;
    w.send("c", json!({"action": "join", "room": "g"}), T0 + 2)
        .await;
    let c = w.peer("c", T0 + 2).await;
    let dropped = T0 + 200_000;
    w.api.disconnect("c", SocketEnd::Dropped, dropped).await;
    w.send("b", json!({"action": "ping"}), dropped + grace + 5_000)
        .await;
    assert_eq!(w.calls.left(&c), vec![dropped]);
}

#[tokio::test]
async fn a_goodbye_closes_the_visit_at_the_goodbye() {
    let w = world();
    for id in ["a", "b"] {
        w.connect(id, T0).await;
        w.send(id, json!({"action": "join", "room": "bye"}), T0 + 1)
            .await;
    }
    let a = w.peer("a", T0 + 1).await;
    // Five seconds in: well inside what would have been a grace.
    let closed = T0 + 5_000;
    w.api.disconnect("a", SocketEnd::Goodbye, closed).await;
    assert_eq!(w.calls.left(&a), vec![closed]);
    // Nothing left for the sweep.
    assert_eq!(w.api.sweep(closed + 120_000).await, Swept::default());
    assert_eq!(w.calls.left(&a).len(), 1);
}
