//! Which STUN/TURN servers a peer joining a room is told to use.

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
