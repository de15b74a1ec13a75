//! A small client of Janus's REST API (`/janus`): sessions, plugin handles,
//! synchronous requests and asynchronous messages whose events arrive by
//! long poll, matched by transaction.

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long an asynchronous request may wait for its event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session (one per participant, as a browser has), kept alive by
/// its long poll.
pub(crate) struct Session {
    http: reqwest::Client,
    url: String,
    pending: Pending,
    poller: tokio::task::JoinHandle<()>,
}

fn transaction() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value> {
    body["transaction"] = json!(transaction());
    let reply: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .json()
        .await?;
    if reply["janus"] == "error" {
        bail!("Janus error: {}", reply["error"]);
    }
    Ok(reply)
}

impl Session {
    /// `base`: the API root, e.g. `http://127.0.0.1:8088/janus`.
    pub(crate) async fn create(http: reqwest::Client, base: &str) -> Result<Self> {
        let reply = post(&http, base, json!({"janus": "create"})).await?;
        let id = reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session id in {reply}"))?;
        let url = format!("{base}/{id}");
        let pending: Pending = Arc::default();
        let poller = tokio::spawn(poll(http.clone(), url.clone(), Arc::clone(&pending)));
        Ok(Self {
            http,
            url,
            pending,
            poller,
        })
    }

    /// Attaches a handle to `plugin` (`janus.plugin.videoroom`, ...).
    pub(crate) async fn attach(&self, plugin: &str) -> Result<u64> {
        let reply = post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": plugin}),
        )
        .await?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle id in {reply}"))
    }

    /// A request the plugin answers at once; returns `plugindata.data`.
    pub(crate) async fn request(&self, handle: u64, body: Value) -> Result<Value> {
        let reply = post(
            &self.http,
            &format!("{}/{handle}", self.url),
            json!({"janus": "message", "body": body}),
        )
        .await?;
        plugin_data(&reply)
    }

    /// A request answered by an event (join, configure, start): returns the
    /// whole event (`plugindata`, and `jsep` when there is one).
    pub(crate) async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value> {
        let tx = transaction();
        let (done, event) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(tx.clone(), done);
        }
        let mut msg = json!({"janus": "message", "body": body, "transaction": tx});
        if let Some(jsep) = jsep {
            msg["jsep"] = jsep;
        }
        let reply: Value = self
            .http
            .post(format!("{}/{handle}", self.url))
            .json(&msg)
            .send()
            .await?
            .json()
            .await?;
        if reply["janus"] != "ack" && reply["janus"] != "event" {
            bail!("Janus refused a message: {reply}");
        }
        let event = if reply["janus"] == "event" {
            reply
        } else {
            tokio::time::timeout(EVENT_TIMEOUT, event)
                .await
                .context("no event from Janus")??
        };
        plugin_data(&event)?;
        Ok(event)
    }

    pub(crate) async fn destroy(&self) {
        self.poller.abort();
        let _ = post(&self.http, &self.url, json!({"janus": "destroy"})).await;
    }
}

/// `plugindata.data` of a reply or event, or the plugin's error.
fn plugin_data(reply: &Value) -> Result<Value> {
    let data = &reply["plugindata"]["data"];
    if data.is_null() {
        bail!("no plugin data in {reply}");
    }
    if !data["error"].is_null() {
        bail!("plugin error {}: {}", data["error_code"], data["error"]);
    }
    Ok(data.clone())
}

/// The session's long poll: hands each event with a transaction to whoever
/// waits for it. Also what keeps the session alive.
async fn poll(http: reqwest::Client, url: String, pending: Pending) {
    let url = format!("{url}?maxev=16");
    loop {
        let events: Value = match http.get(&url).send().await {
            Ok(r) => match r.json().await {
                Ok(v) => v,
                Err(_) => return,
            },
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let events = match events {
            Value::Array(events) => events,
            other => vec![other],
        };
        for event in events {
            if event["janus"] == "error" && event["error"]["code"] == 458 {
                return; // no such session: destroyed or timed out
            }
            let Some(tx) = event["transaction"].as_str() else {
                continue;
            };
            let waiter = pending.lock().ok().and_then(|mut p| p.remove(tx));
            if let Some(waiter) = waiter {
                let _ = waiter.send(event);
            }
        }
    }
}

/// An SDP as Janus's `jsep` field.
pub(crate) fn jsep(kind: &str, sdp: String) -> Value {
    json!({"type": kind, "sdp": sdp})
}

/// The SDP of an event's `jsep`.
pub(crate) fn sdp_of(event: &Value) -> Result<String> {
    event["jsep"]["sdp"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no jsep in {event}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_data_or_the_plugins_error() {
        let ok = json!({"janus": "success", "plugindata": {"data": {"videoroom": "created"}}});
        assert_eq!(plugin_data(&ok).unwrap()["videoroom"], "created");
        let refused = json!({"janus": "event", "plugindata": {"data": {
            "videoroom": "event", "error_code": 426, "error": "No such room"}}});
        let e = plugin_data(&refused).unwrap_err().to_string();
        assert!(e.contains("426") && e.contains("No such room"), "{e}");
        assert!(plugin_data(&json!({"janus": "ack"})).is_err());
    }

    #[test]
    fn jsep_round_trips_its_sdp() {
        let event = json!({"jsep": jsep("offer", "v=0\r\n".to_owned())});
        assert_eq!(sdp_of(&event).unwrap(), "v=0\r\n");
        assert!(sdp_of(&json!({})).is_err());
    }
}
