//! Fakes around the real handlers: an in-memory store and a push sink that
//! records every frame, on a virtual clock.

// Each scenario file uses part of the harness.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use tincan_signaling::Limits;
use tincan_store::{ConnectionStore, MemoryConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, SocketEnd, UserDirectory, WsApi, WsApiConfig};

pub(crate) const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub(crate) const T0: u64 = 1_700_000_000_000;
/// The API key whose join tokens the harness accepts.
pub(crate) const APP_KEY: (&str, &[u8]) = ("app1", b"app-key-secret-app-key-secret-app!");

/// Frames pushed to each connection; connections marked gone answer 410.
#[derive(Default)]
pub(crate) struct RecordingPush {
    frames: Mutex<HashMap<String, Vec<Value>>>,
    gone: Mutex<HashSet<String>>,
}

#[async_trait]
impl Push for RecordingPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        if self.gone.lock().unwrap().contains(connection_id) {
            return Err(PushError::Gone(connection_id.to_owned()));
        }
        let value: Value = serde_json::from_str(text).expect("server sends JSON");
        self.frames
            .lock()
            .unwrap()
            .entry(connection_id.to_owned())
            .or_default()
            .push(value);
        Ok(())
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.gone.lock().unwrap().insert(connection_id.to_owned());
        Ok(())
    }
}

impl RecordingPush {
    /// Takes the frames pushed to `id` so far.
    pub(crate) fn take(&self, id: &str) -> Vec<Value> {
        self.frames.lock().unwrap().remove(id).unwrap_or_default()
    }

    /// Whether `id` was closed (or marked gone).
    #[allow(dead_code)]
    pub(crate) fn is_gone(&self, id: &str) -> bool {
        self.gone.lock().unwrap().contains(id)
    }

    pub(crate) fn mark_gone(&self, id: &str) {
        self.gone.lock().unwrap().insert(id.to_owned());
    }
}

pub(crate) struct Harness {
    pub(crate) api: WsApi,
    pub(crate) push: Arc<RecordingPush>,
    pub(crate) store: Arc<MemoryConnectionStore>,
    pub(crate) tokens: TokenKeys,
    pub(crate) now: u64,
}

impl Harness {
    pub(crate) fn new(limits: Limits) -> Self {
        Self::with_users(limits, None)
    }

    /// A harness whose connects check `users`.
    pub(crate) fn with_users(limits: Limits, users: Option<Arc<dyn UserDirectory>>) -> Self {
        Self::build(limits, users, Arc::new(tincan_ws_api::NoSfu))
    }

    /// A harness whose rooms past the mesh size go to `sfu`.
    pub(crate) fn with_sfu(limits: Limits, sfu: Arc<dyn tincan_ws_api::SfuGateway>) -> Self {
        Self::build(limits, None, sfu)
    }

    fn build(
        limits: Limits,
        users: Option<Arc<dyn UserDirectory>>,
        sfu: Arc<dyn tincan_ws_api::SfuGateway>,
    ) -> Self {
        Self::with_parts(limits, users, sfu, None)
    }

    /// A harness over all of these.
    pub(crate) fn with_parts(
        limits: Limits,
        users: Option<Arc<dyn UserDirectory>>,
        sfu: Arc<dyn tincan_ws_api::SfuGateway>,
        calls: Option<Arc<dyn tincan_ws_api::CallLog>>,
    ) -> Self {
        let mut api_keys = tincan_token::join::ApiKeys::none();
        api_keys.add(APP_KEY.0, APP_KEY.1).unwrap();
        let push = Arc::new(RecordingPush::default());
        let store = Arc::new(MemoryConnectionStore::new());
        let tokens = TokenKeys::new(SECRET, 900).unwrap();
        let api = WsApi::new(WsApiConfig {
            limits,
            tokens: tokens.clone(),
            api_keys,
            store: store.clone(),
            push: push.clone(),
            ice: Arc::new(NoIceServers),
            sfu,
            calls,
            users,
        });
        Self {
            api,
            push,
            store,
            tokens,
            now: T0,
        }
    }

    /// Connects `id` as user `user-{id}` named `Name {id}`.
    pub(crate) async fn connect(&mut self, id: &str) {
        self.connect_as(id, id).await;
    }

    /// Connects `id` as user `user-{user}` named `Name {user}`.
    pub(crate) async fn connect_as(&mut self, id: &str, user: &str) {
        self.now += 1;
        let token = self.tokens.issue(
            &format!("user-{user}"),
            &format!("Name {user}"),
            self.now / 1000,
        );
        self.api.connect(id, Some(&token), self.now).await.unwrap();
    }

    /// Connects `id` with a join token of [`APP_KEY`] for `sub` in `room`.
    pub(crate) async fn connect_app(&mut self, id: &str, room: &str, sub: &str, speak: bool) {
        use tincan_token::join::{mint, JoinClaims, JoinGrants};
        self.now += 1;
        let claims = JoinClaims::new(
            room,
            sub,
            format!("Name {sub}"),
            JoinGrants { speak },
            self.now / 1000,
            300,
        );
        let token = mint(APP_KEY.0, APP_KEY.1, &claims).unwrap();
        self.api.connect(id, Some(&token), self.now).await.unwrap();
    }

    pub(crate) async fn send(&mut self, id: &str, frame: Value) {
        self.send_text(id, &frame.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, id: &str, text: &str) {
        self.now += 1;
        self.api.message(id, text, self.now).await;
    }

    /// The client closes connection `id` on purpose (close code 1000).
    pub(crate) async fn goodbye(&mut self, id: &str) {
        self.now += 1;
        self.api.disconnect(id, SocketEnd::Goodbye, self.now).await;
    }

    pub(crate) async fn disconnect(&mut self, id: &str) {
        self.now += 1;
        self.api.disconnect(id, SocketEnd::Dropped, self.now).await;
    }

    /// The participant connection `id` speaks for.
    pub(crate) async fn peer(&self, id: &str) -> String {
        self.store
            .get(id, self.now / 1000)
            .await
            .unwrap()
            .and_then(|r| r.seat)
            .map(|s| s.peer_id)
            .unwrap_or_else(|| panic!("{id} is in no room"))
    }

    /// The room of the participant connection `id` speaks for, if it is
    /// still in it.
    pub(crate) async fn room_of(&self, id: &str) -> Option<String> {
        let seat = self.store.get(id, self.now / 1000).await.unwrap()?.seat?;
        let room = self.store.room(&seat.room).await.unwrap();
        room.member(&seat.peer_id)
            .filter(|m| m.is_attached_to(id))
            .map(|_| seat.room)
    }

    /// Room `room` as stored.
    pub(crate) async fn store_room(&self, room: &str) -> tincan_signaling::RoomView {
        self.store.room(room).await.unwrap()
    }

    /// The single frame `id` received since the last take.
    pub(crate) fn only(&self, id: &str) -> Value {
        let mut frames = self.push.take(id);
        assert_eq!(frames.len(), 1, "{id} got {frames:?}");
        frames.remove(0)
    }
}
