//! Twenty pairs of real WebSocket clients join their rooms at the same
//! moment on the local stack: every pair learns of each other exactly once
//! (one in `joined.peers`, the other by one `peer-joined`), whatever order
//! the gateway's concurrent invocations run in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tincan_token::TokenKeys;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "simultaneous-joins-secret-simultaneous";
const PAIRS: usize = 20;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Joins `room` once the barrier falls; returns (own peer id, every peer id
/// announced to it, one entry per announcement), after `settle`.
async fn join_and_listen(
    url: String,
    room: String,
    barrier: Arc<Barrier>,
) -> (String, Vec<String>) {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    barrier.wait().await;
    sink.send(Message::text(
        json!({"action": "join", "room": room}).to_string(),
    ))
    .await
    .unwrap();
    let mut me = String::new();
    let mut announced = Vec::new();
    // Listen until quiet: every announcement of this pair has arrived.
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await
    {
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        match v["type"].as_str() {
            Some("joined") => {
                me = v["self"]["peerId"].as_str().unwrap().to_owned();
                for p in v["peers"].as_array().unwrap() {
                    announced.push(p["peerId"].as_str().unwrap().to_owned());
                }
            }
            Some("peer-joined") => {
                announced.push(v["peer"]["peerId"].as_str().unwrap().to_owned());
            }
            other => panic!("unexpected {other:?}: {v}"),
        }
    }
    (me, announced)
}

async fn twenty_pairs_join_at_once(config: LocalConfig) {
    let stack = LocalStack::start(config).await.unwrap();
    let tokens = TokenKeys::new(SECRET.as_bytes(), 900).unwrap();
    let barrier = Arc::new(Barrier::new(PAIRS * 2));
    let mut tasks = Vec::new();
    for pair in 0..PAIRS {
        for side in ["a", "b"] {
            let user = format!("{side}{pair}");
            let token = tokens.issue(&user, &user, now_secs());
            let url = format!("ws://{}/ws?token={token}", stack.addr);
            tasks.push(tokio::spawn(join_and_listen(
                url,
                format!("pair-{pair}"),
                barrier.clone(),
            )));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for pair in results.chunks(2) {
        let [(a, heard_a), (b, heard_b)] = pair else {
            unreachable!()
        };
        assert_eq!(heard_a, std::slice::from_ref(b), "{a} heard {heard_a:?}");
        assert_eq!(heard_b, std::slice::from_ref(a), "{b} heard {heard_b:?}");
    }
    stack.stop().await;
}

fn config(dir: &tempfile::TempDir) -> LocalConfig {
    let mut config =
        LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    config.jwt_secret = Some(SECRET.into());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_pairs_each_learn_of_each_other_once() {
    let dir = tempfile::tempdir().unwrap();
    twenty_pairs_join_at_once(config(&dir)).await;
}
