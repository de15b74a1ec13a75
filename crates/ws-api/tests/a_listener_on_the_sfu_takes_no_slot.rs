//! A listen-only participant (a join token that may not speak) reaches the
//! SFU muted, so the node never gives it anyone's slot and drops whatever
//! it sends (docs/sfu.md: muted participants are never forwarded); its
//! unmute never reaches the node. App participants leave no call history:
//! they have no Tincan account to read it from.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use support::Harness;
use tincan_signaling::{Limits, MediaPath, Peer};
use tincan_ws_api::{CallLog, CallLogError, SfuError, SfuGateway};

/// Records what the node is told.
#[derive(Default)]
struct RecordingSfu {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl SfuGateway for RecordingSfu {
    async fn join(&self, room: &str, peer: &Peer, _: &str, _: u64) -> Result<String, SfuError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("join {room} {} muted={}", peer.user_id, peer.muted));
        Ok("v=0 answer".into())
    }

    async fn mute(&self, _: &str, peer_id: &str, muted: bool, _: u64) -> Result<(), SfuError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("mute {peer_id} {muted}"));
        Ok(())
    }

    async fn leave(&self, _: &str, peer_id: &str, _: u64) -> Result<(), SfuError> {
        self.calls.lock().unwrap().push(format!("leave {peer_id}"));
        Ok(())
    }
}

/// Records whose history is written.
#[derive(Default)]
struct RecordingCalls(Mutex<Vec<String>>);

#[async_trait]
impl CallLog for RecordingCalls {
    async fn joined(&self, p: &Peer, room: &str, _: u64) -> Result<(), CallLogError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("joined {room} {}", p.user_id));
        Ok(())
    }

    async fn left(&self, p: &Peer, room: &str, _: u64) -> Result<(), CallLogError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("left {room} {}", p.user_id));
        Ok(())
    }

    async fn media_path(&self, p: &Peer, room: &str, _: MediaPath) -> Result<(), CallLogError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("media {room} {}", p.user_id));
        Ok(())
    }
}

#[tokio::test]
async fn a_listener_joins_the_sfu_muted_and_stays_so() {
    let sfu = Arc::new(RecordingSfu::default());
    let calls = Arc::new(RecordingCalls::default());
    let limits = Limits {
        mesh_max: 1,
        room_max: 100,
        ..Limits::default()
    };
    let mut h = Harness::with_parts(limits, None, sfu.clone(), Some(calls.clone()));
    h.connect("a").await;
    h.connect_app("l", "hall", "viewer-7", false).await;
    h.send("a", json!({"action": "join", "room": "hall"})).await;
    h.send("l", json!({"action": "join", "room": "hall"})).await;
    let joined = h.push.take("l");
    let joined = joined.iter().find(|f| f["type"] == "joined").unwrap();
    assert_eq!(joined["mode"], "sfu");
    assert_eq!(joined["self"]["listenOnly"], true);
    let listener = joined["self"]["peerId"].as_str().unwrap().to_owned();

    h.send("a", json!({"action": "sfu-offer", "sdp": "v=0 a"}))
        .await;
    h.send("l", json!({"action": "sfu-offer", "sdp": "v=0 l"}))
        .await;
    assert_eq!(h.push.take("l").last().unwrap()["type"], "sfu-answer");
    h.send("l", json!({"action": "mute", "muted": false})).await;
    assert_eq!(h.push.take("l")[0]["code"], "listen-only");
    h.send("l", json!({"action": "media", "path": "direct"}))
        .await;
    h.send("l", json!({"action": "leave"})).await;

    let told = sfu.calls.lock().unwrap().clone();
    assert_eq!(
        told,
        [
            "join hall user-a muted=false".to_owned(),
            "join hall app:app1:viewer-7 muted=true".to_owned(),
            format!("leave {listener}"),
        ]
    );
    // History for the account only.
    assert_eq!(
        calls.0.lock().unwrap().clone(),
        ["joined hall user-a".to_owned()]
    );
}
