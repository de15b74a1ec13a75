//! A call in progress when `tincan-local` is killed (kill -9: no close, no
//! `$disconnect`, no leave) is closed in the history by the next start of
//! the stack on the same data directory, at a time between its start and
//! the kill, not left open forever.

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn calls(addr: SocketAddr, token: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("http://{addr}/me/calls"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["calls"].as_array().cloned().unwrap_or_default()
}

#[cfg(unix)]
#[tokio::test]
async fn a_call_open_when_the_stack_is_killed_is_closed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_local(dir.path()).await;
    let ada = common::login(addr, "ada").await;
    let _a = common::join_as(addr, &ada, "killed").await;
    let open = calls(addr, &ada).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0]["endedAt"].is_null(), "{open:?}");

    child.kill().await.unwrap();
    let killed_at = now_ms();

    let (_child, addr) = common::spawn_local(dir.path()).await;
    let ada = common::login(addr, "ada").await;
    let after = calls(addr, &ada).await;
    assert_eq!(after.len(), 1, "{after:?}");
    let started = after[0]["startedAt"].as_u64().unwrap();
    let ended = after[0]["endedAt"]
        .as_u64()
        .unwrap_or_else(|| panic!("still open after the restart: {after:?}"));
    assert!(
        started <= ended && ended <= killed_at,
        "{after:?}, killed at {killed_at}"
    );
}
