//! A valid token of an account that no longer exists opens no socket, and
//! deleting an account closes its sockets: its participants leave at once
//! (no resume grace) and their rooms are told.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use support::{Harness, T0};
use tincan_signaling::Limits;
use tincan_store::ConnectionStore;
use tincan_ws_api::{ConnectError, UserDirectory, UserLookupError};

/// Users that exist; `down` makes every lookup fail.
#[derive(Default)]
struct Users {
    live: Mutex<HashSet<String>>,
    down: Mutex<bool>,
}

#[async_trait]
impl UserDirectory for Users {
    async fn exists(&self, user_id: &str) -> Result<bool, UserLookupError> {
        if *self.down.lock().unwrap() {
            return Err(UserLookupError("directory down".into()));
        }
        Ok(self.live.lock().unwrap().contains(user_id))
    }
}

#[tokio::test]
async fn deleted_users_are_refused_and_their_sockets_closed() {
    let users = Arc::new(Users::default());
    for u in ["user-a", "user-b"] {
        users.live.lock().unwrap().insert(u.into());
    }
    let mut h = Harness::with_users(Limits::default(), Some(users.clone()));
    h.connect("a").await;
    h.connect("b").await;
    h.send("a", json!({"action": "join", "room": "r"})).await;
    h.send("b", json!({"action": "join", "room": "r"})).await;
    let b = h.peer("b").await;
    h.push.take("a");

    // b's account is deleted: its sockets close, a hears it left at once.
    users.live.lock().unwrap().remove("user-b");
    let closed = h.api.disconnect_user("user-b", h.now).await.unwrap();
    assert_eq!(closed, 1);
    assert_eq!(h.only("a"), json!({"type": "peer-left", "peerId": b}));
    assert!(h.store.get("b", h.now / 1000).await.unwrap().is_none());
    assert_eq!(h.store_room("r").await.members.len(), 1);

    // Its still-valid token opens no socket.
    let token = h.tokens.issue("user-b", "Name b", T0 / 1000);
    let err = h.api.connect("b2", Some(&token), T0).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");
    assert!(h.store.get("b2", T0 / 1000).await.unwrap().is_none());

    // A directory that cannot answer refuses (503), never admits.
    *users.down.lock().unwrap() = true;
    let token = h.tokens.issue("user-a", "Name a", T0 / 1000);
    let err = h.api.connect("a2", Some(&token), T0).await.unwrap_err();
    assert!(matches!(err, ConnectError::UserLookup(_)), "{err:?}");
}
