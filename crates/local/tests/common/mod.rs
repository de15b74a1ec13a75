//! What the gateway's scenario tests share: a local stack on loopback with
//! its limits set per test, and WebSocket clients for it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tincan_token::TokenKeys;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "scenario-secret-scenario-secret-xx";
pub const STEP: Duration = Duration::from_secs(5);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Stack {
    pub stack: LocalStack,
    _dir: tempfile::TempDir,
    pub tokens: TokenKeys,
}

/// A stack with the test defaults, changed by `tweak`.
pub async fn start(tweak: impl FnOnce(&mut LocalConfig)) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    // Tokens are minted here for users never registered.
    config.users_must_exist = false;
    config.jwt_secret = Some(SECRET.into());
    tweak(&mut config);
    let stack = LocalStack::start(config).await.unwrap();
    Stack {
        stack,
        _dir: dir,
        tokens: TokenKeys::new(SECRET.as_bytes(), 900).unwrap(),
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Stack {
    pub fn ws_url(&self, user: &str) -> String {
        let token = self.tokens.issue(user, &format!("Name {user}"), now_secs());
        format!("ws://{}/ws?token={token}", self.stack.addr)
    }

    pub async fn client(&self, user: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.ws_url(user))
            .await
            .unwrap();
        ws
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.stack.addr, path)
    }

    pub fn management(&self, path: &str) -> String {
        format!("http://{}{}", self.stack.management_addr, path)
    }
}

pub async fn send(ws: &mut Client, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next JSON text frame.
pub async fn recv(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

pub async fn join(ws: &mut Client, room: &str) -> Value {
    send(ws, serde_json::json!({"action": "join", "room": room})).await;
    loop {
        let msg = recv(ws).await;
        if msg["type"] == "joined" {
            return msg;
        }
    }
}

/// Reads until the server closes the socket, within `within`: its close
/// frame, or `None` if it dropped the connection without one.
pub async fn closed(ws: &mut Client, within: Duration) -> Option<CloseFrame> {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server closes the socket in time")
}

// The `tincan-local` binary in a process of its own.

pub const PASSWORD: &str = "correct horse battery";

/// `tincan-local` in `dir`, and the address it serves.
pub async fn spawn_local(dir: &std::path::Path) -> (tokio::process::Child, SocketAddr) {
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
    let addr = announced_addr(&mut child).await;
    (child, addr)
}

/// The address a `tincan-local` child (spawned with stdout piped) says it
/// runs at, in the first line it prints.
pub async fn announced_addr(child: &mut tokio::process::Child) -> SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("tincan-local starts")
        .unwrap()
        .expect("a line on stdout");
    line.trim_start_matches("Tincan is running at http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"))
}

/// Registers `user` (if it is new) and logs in: the access token.
pub async fn login(addr: SocketAddr, user: &str) -> String {
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

/// A socket for `token` that has joined `room`.
pub async fn join_as(addr: SocketAddr, token: &str, room: &str) -> Client {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .unwrap();
    send(&mut ws, json!({"action": "join", "room": room})).await;
    assert_eq!(recv(&mut ws).await["type"], "joined");
    ws
}
