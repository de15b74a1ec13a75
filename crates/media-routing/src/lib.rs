//! Where a participant's media goes: the STUN/TURN servers a joiner is told
//! to use ([`IceServerSource`]) and the media node whose SFU carries a room
//! past the mesh size ([`SfuLocator`]).
//!
//! These are the contracts the signaling side (`tincan-ws-api`, which asks)
//! and the media-node fleet (`tincan-fleet`, which answers from its
//! registry) share. They live here, below both, so that neither the media
//! node nor the HTTP API links the signaling handlers to implement them.

use async_trait::async_trait;
use tincan_signaling::IceServer;
use tincan_turn_credentials::{ice_servers, TurnSecret};

/// Hands out `iceServers` for `joined`.
#[async_trait]
pub trait IceServerSource: Send + Sync {
    /// Servers, with fresh credentials, for `user_id` joining `room` at
    /// `now_secs`.
    async fn ice_servers(&self, user_id: &str, room: &str, now_secs: u64) -> Vec<IceServer>;
}

/// No STUN/TURN at all: peers connect only by host candidates.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIceServers;

#[async_trait]
impl IceServerSource for NoIceServers {
    async fn ice_servers(&self, _user_id: &str, _room: &str, _now_secs: u64) -> Vec<IceServer> {
        Vec::new()
    }
}

/// One TURN server (STUN + TURN over UDP and TCP) with short-lived REST-API
/// credentials.
#[derive(Debug, Clone)]
pub struct TurnRestIceServers {
    secret: TurnSecret,
    host_port: String,
    ttl_secs: u64,
}

impl TurnRestIceServers {
    /// Credentials under `secret` for the server at `host_port`, valid
    /// `ttl_secs`.
    pub fn new(secret: TurnSecret, host_port: impl Into<String>, ttl_secs: u64) -> Self {
        Self {
            secret,
            host_port: host_port.into(),
            ttl_secs,
        }
    }
}

#[async_trait]
impl IceServerSource for TurnRestIceServers {
    async fn ice_servers(&self, user_id: &str, _room: &str, now_secs: u64) -> Vec<IceServer> {
        let credential = self.secret.mint(user_id, now_secs, self.ttl_secs);
        ice_servers(&self.host_port, &credential)
    }
}

/// Where a room's SFU is: the base URL of its media node's control API.
#[async_trait]
pub trait SfuLocator: Send + Sync {
    /// The control URL (e.g. `http://10.0.0.5:7881`) of the node `room` is
    /// on, or `None` if no node with an SFU is available.
    async fn control_url(&self, room: &str, now_secs: u64) -> Option<String>;
}

#[async_trait]
impl<T: SfuLocator + ?Sized> SfuLocator for std::sync::Arc<T> {
    async fn control_url(&self, room: &str, now_secs: u64) -> Option<String> {
        (**self).control_url(room, now_secs).await
    }
}

/// One node for every room: the local stack's embedded media node.
#[derive(Debug, Clone)]
pub struct FixedSfuNode(pub String);

#[async_trait]
impl SfuLocator for FixedSfuNode {
    async fn control_url(&self, _room: &str, _now_secs: u64) -> Option<String> {
        Some(self.0.clone())
    }
}
