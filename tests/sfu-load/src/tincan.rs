//! Tincan's own client side: sign-in over the HTTP API and the signaling
//! WebSocket (docs/protocol.md, docs/sfu.md).

use anyhow::{anyhow, bail, Context as _, Result};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long a reply from the signaling may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Registers `username` (an existing account is fine) and logs in; returns
/// the access token.
pub(crate) async fn sign_in(http: &reqwest::Client, base: &str, username: &str) -> Result<String> {
    // A throwaway password per account name: the accounts exist only for
    // the bench's own data dir.
    let password = format!("sfu-load-{username}-pw");
    let reply = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"username": username, "password": password, "displayName": username}))
        .send()
        .await?;
    let status = reply.status();
    if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
        bail!("register {username}: {status} {}", reply.text().await?);
    }
    let reply = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    let status = reply.status();
    if !status.is_success() {
        bail!("login {username}: {status} {}", reply.text().await?);
    }
    let body: Value = reply.json().await?;
    body["accessToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no accessToken in the login reply"))
}

/// A signaling socket: messages out through `send`, server messages in
/// through `recv`.
pub(crate) struct Signaling {
    out: mpsc::UnboundedSender<Value>,
    inbox: mpsc::UnboundedReceiver<Value>,
}

impl Signaling {
    pub(crate) async fn connect(base: &str, token: &str) -> Result<Self> {
        let ws = base.replacen("http", "ws", 1);
        let (socket, _) = tokio_tungstenite::connect_async(format!("{ws}/ws?token={token}"))
            .await
            .context("signaling WebSocket")?;
        let (mut write, mut read) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Value>();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if write.send(Message::text(msg.to_string())).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(msg)) = read.next().await {
                if let Message::Text(text) = msg {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        if inbox_tx.send(v).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self { out, inbox })
    }

    pub(crate) fn send(&self, msg: Value) -> Result<()> {
        self.out
            .send(msg)
            .map_err(|_| anyhow!("signaling socket closed"))
    }

    /// The next server message whose `type` is one of `types`; an `error`
    /// fails. Other messages (peer-joined, ...) are skipped.
    pub(crate) async fn expect(&mut self, types: &[&str]) -> Result<Value> {
        tokio::time::timeout(REPLY_TIMEOUT, async {
            while let Some(msg) = self.inbox.recv().await {
                let t = msg["type"].as_str().unwrap_or_default();
                if types.contains(&t) {
                    return Ok(msg);
                }
                if t == "error" {
                    bail!("signaling error {}: {}", msg["code"], msg["message"]);
                }
            }
            bail!("signaling socket closed")
        })
        .await
        .with_context(|| format!("waiting for {types:?}"))?
    }

    /// Drops whatever the server sends from now on, so the socket keeps
    /// being read.
    pub(crate) fn drain(mut self) -> mpsc::UnboundedSender<Value> {
        tokio::spawn(async move { while self.inbox.recv().await.is_some() {} });
        self.out
    }
}

/// The receive-slot count of a room in SFU mode, from `joined` or
/// `room-mode`; `None` while the room is a mesh.
pub(crate) fn sfu_slots(msg: &Value) -> Option<usize> {
    if msg["mode"] != "sfu" {
        return None;
    }
    let slots = if msg["type"] == "joined" {
        &msg["sfu"]["slots"]
    } else {
        &msg["slots"]
    };
    Some(slots.as_u64().unwrap_or(3) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_from_joined_or_room_mode() {
        let joined = json!({"type": "joined", "mode": "sfu", "sfu": {"slots": 3}});
        assert_eq!(sfu_slots(&joined), Some(3));
        let mesh = json!({"type": "joined", "mode": "mesh"});
        assert_eq!(sfu_slots(&mesh), None);
        let old = json!({"type": "joined"});
        assert_eq!(sfu_slots(&old), None);
        let moved = json!({"type": "room-mode", "mode": "sfu", "slots": 4});
        assert_eq!(sfu_slots(&moved), Some(4));
    }
}
