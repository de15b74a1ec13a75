//! A call in progress when `tincan-local` is killed (kill -9: no close, no
//! `$disconnect`, no leave) is closed in the history by the next start of
//! the stack on the same data directory, at a time between its start and
//! the kill, not left open forever.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const PASSWORD: &str = "correct horse battery";

/// `tincan-local` in `dir`, and the address it serves.
async fn spawn_local(dir: &std::path::Path) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tincan-local"))
        .env("TINCAN_ADDR", "127.0.0.1:0")
        .env("TINCAN_MANAGEMENT_ADDR", "127.0.0.1:0")
        .env("TINCAN_TURN", "off")
        .env("TINCAN_DATA_DIR", dir)
        .env("TINCAN_RESUME_GRACE_SECS", "1")
        .env_remove("MONGODB_URI")
        .env_remove("DYNAMODB_ENDPOINT")
        .env_remove("TINCAN_LAMBDA_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tincan-local runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("tincan-local starts")
        .unwrap()
        .expect("a line on stdout");
    let addr = line
        .trim_start_matches("Tincan is running at http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));
    (child, addr)
}

/// Registers `user` (unless `registered`) and logs in: the access token.
async fn login(addr: SocketAddr, user: &str) -> String {
    let http = reqwest::Client::new();
    let _ = http
        .post(format!("http://{addr}/auth/register"))
        .json(&json!({"username": user, "password": PASSWORD, "displayName": user}))
        .send()
        .await
        .unwrap();
    let login: Value = http
        .post(format!("http://{addr}/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["accessToken"].as_str().unwrap().to_owned()
}

async fn join(addr: SocketAddr, token: &str, room: &str) -> common::Client {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .unwrap();
    common::send(&mut ws, json!({"action": "join", "room": room})).await;
    assert_eq!(common::recv(&mut ws).await["type"], "joined");
    ws
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
    let (mut child, addr) = spawn_local(dir.path()).await;
    let ada = login(addr, "ada").await;
    let _a = join(addr, &ada, "killed").await;
    let open = calls(addr, &ada).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0]["endedAt"].is_null(), "{open:?}");

    child.kill().await.unwrap();
    let killed_at = now_ms();

    let (_child, addr) = spawn_local(dir.path()).await;
    let ada = login(addr, "ada").await;
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
