//! A join's announcements go to the room's members concurrently, not one
//! push after another; frames for one recipient keep their order; a member
//! found gone (410) in the fan-out is still detached for resume.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tincan_signaling::Limits;
use tincan_store::{ConnectionStore, MemoryConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, WsApi, WsApiConfig};

const SECRET: &[u8] = b"fan-out-secret-fan-out-secret-fan-out";
const T0: u64 = 1_700_000_000_000;

/// A push that takes 50 ms (virtual time) per frame and records how many
/// were in flight at once.
#[derive(Default)]
struct SlowPush {
    state: Mutex<SlowState>,
}

#[derive(Default)]
struct SlowState {
    in_flight: usize,
    most_in_flight: usize,
    frames: HashMap<String, Vec<Value>>,
    gone: Vec<String>,
}

#[async_trait]
impl Push for SlowPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        {
            let mut state = self.state.lock().unwrap();
            state.in_flight += 1;
            state.most_in_flight = state.most_in_flight.max(state.in_flight);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut state = self.state.lock().unwrap();
        state.in_flight -= 1;
        if state.gone.iter().any(|g| g == connection_id) {
            return Err(PushError::Gone(connection_id.to_owned()));
        }
        let value = serde_json::from_str(text).expect("server sends JSON");
        state
            .frames
            .entry(connection_id.to_owned())
            .or_default()
            .push(value);
        Ok(())
    }

    async fn close(&self, _connection_id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_join_is_announced_to_every_member_at_once() {
    let push = Arc::new(SlowPush::default());
    let store = Arc::new(MemoryConnectionStore::new());
    let tokens = TokenKeys::new(SECRET, 900).unwrap();
    let api = WsApi::new(WsApiConfig {
        limits: Limits::default(),
        tokens: tokens.clone(),
        api_keys: tincan_token::join::ApiKeys::none(),
        store: store.clone(),
        push: push.clone(),
        ice: Arc::new(NoIceServers),
        sfu: Arc::new(tincan_ws_api::NoSfu),
        calls: None,
        users: None,
    });
    let mut now = T0;
    for id in ["a", "b", "c", "d", "e"] {
        now += 1;
        let token = tokens.issue(&format!("user-{id}"), id, now / 1000);
        api.connect(id, Some(&token), now).await.unwrap();
    }
    for id in ["a", "b", "c", "d"] {
        now += 1;
        api.message(id, r#"{"action":"join","room":"fan"}"#, now)
            .await;
    }
    // "d" dropped without API Gateway telling us yet: its push answers 410.
    {
        let mut state = push.state.lock().unwrap();
        state.frames.clear();
        state.most_in_flight = 0;
        state.gone.push("d".to_owned());
    }

    let started = tokio::time::Instant::now();
    api.message("e", r#"{"action":"join","room":"fan"}"#, now + 1)
        .await;
    let took = started.elapsed();

    {
        let state = push.state.lock().unwrap();
        // e's `joined` and a, b, c's `peer-joined` (d's answered 410), together.
        assert!(
            state.most_in_flight >= 4,
            "at most {} pushes were in flight",
            state.most_in_flight
        );
        // Concurrency is proven by `most_in_flight`; the wall clock only
        // informs (one after another would take 5 x 50 ms).
        println!("the fan-out took {took:?}");
        for id in ["a", "b", "c"] {
            let frames = &state.frames[id];
            assert_eq!(frames.len(), 1, "{id}: {frames:?}");
            assert_eq!(frames[0]["type"], "peer-joined");
        }
        assert_eq!(state.frames["e"][0]["type"], "joined");
    }

    // The member found gone is detached (resumable), not removed: the room
    // still holds it, and its connection record is gone.
    assert!(store.get("d", now / 1000).await.unwrap().is_none());
    let room = store.room("fan").await.unwrap();
    assert_eq!(room.members.len(), 5);
    assert_eq!(
        room.members
            .iter()
            .filter(|m| m.connection_id.is_none())
            .count(),
        1
    );
}
