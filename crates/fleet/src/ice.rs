//! `iceServers` for a joiner: the TURN node its room is placed on.

use std::sync::Arc;

use async_trait::async_trait;
use tincan_signaling::IceServer;
use tincan_turn_credentials::{ice_servers, TurnSecret};
use tincan_ws_api::IceServerSource;

use crate::placement::{place, DEFAULT_ROOM_TTL_SECS};
use crate::selection::pick_node;
use crate::{MediaNodeInfo, MediaNodeStore, NodeRecord};

/// The signaling side's [`IceServerSource`] for a fleet of media nodes:
/// each room is placed on a healthy, least-loaded, active node and kept
/// there ([`place`]); a joiner gets STUN and TURN (UDP, TCP as the node
/// offers) on that node with a fresh TURN REST API credential.
///
/// With no node available, or the store failing, it logs a warning and
/// returns no servers: peers still try to connect directly.
#[derive(Clone)]
pub struct FleetIceServers {
    store: Arc<dyn MediaNodeStore>,
    secret: TurnSecret,
    credential_ttl_secs: u64,
    room_ttl_secs: u64,
}

impl std::fmt::Debug for FleetIceServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetIceServers")
            .field("credential_ttl_secs", &self.credential_ttl_secs)
            .field("room_ttl_secs", &self.room_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl FleetIceServers {
    /// Nodes from `store`; credentials under `secret` (the nodes' shared
    /// secret), valid `credential_ttl_secs`. Rooms stay assigned for
    /// [`DEFAULT_ROOM_TTL_SECS`] after their last join.
    pub fn new(
        store: Arc<dyn MediaNodeStore>,
        secret: TurnSecret,
        credential_ttl_secs: u64,
    ) -> Self {
        Self {
            store,
            secret,
            credential_ttl_secs,
            room_ttl_secs: DEFAULT_ROOM_TTL_SECS,
        }
    }

    /// Keeps room assignments `secs` after their last refresh.
    pub fn with_room_ttl(mut self, secs: u64) -> Self {
        self.room_ttl_secs = secs;
        self
    }

    /// The node `room` is (now) placed on, or `None` (logged) if no node is
    /// available or the store fails.
    pub async fn node_for_room(&self, room: &str, now_secs: u64) -> Option<NodeRecord> {
        match place(self.store.as_ref(), room, now_secs, self.room_ttl_secs).await {
            Ok(Some(node)) => Some(node),
            Ok(None) => {
                tracing::warn!(room, "no media node available: peers get no TURN servers");
                None
            }
            Err(err) => {
                tracing::warn!(room, error = %err, "media node placement failed: no TURN servers");
                None
            }
        }
    }

    /// Servers on the least-loaded node, for a user in no room (the HTTP
    /// API's `GET /turn-credentials`); empty (logged) if none is available.
    pub async fn ice_servers_any_node(&self, user_id: &str, now_secs: u64) -> Vec<IceServer> {
        let nodes = match self.store.list_alive(now_secs).await {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::warn!(error = %err, "media node list failed: no TURN servers");
                return Vec::new();
            }
        };
        match pick_node(&nodes, now_secs) {
            Some(node) => self.servers_on(&node.info, user_id, now_secs),
            None => {
                tracing::warn!("no media node available: no TURN servers");
                Vec::new()
            }
        }
    }

    fn servers_on(&self, node: &MediaNodeInfo, user_id: &str, now_secs: u64) -> Vec<IceServer> {
        let credential = self
            .secret
            .mint(user_id, now_secs, self.credential_ttl_secs);
        let mut servers = ice_servers(&node.turn_addr, &credential);
        for server in &mut servers {
            server.urls.retain(|url| {
                (node.udp || !url.ends_with("?transport=udp"))
                    && (node.tcp || !url.ends_with("?transport=tcp"))
            });
        }
        servers.retain(|server| !server.urls.is_empty());
        servers
    }
}

#[async_trait]
impl IceServerSource for FleetIceServers {
    async fn ice_servers(&self, user_id: &str, room: &str, now_secs: u64) -> Vec<IceServer> {
        match self.node_for_room(room, now_secs).await {
            Some(node) => self.servers_on(&node.info, user_id, now_secs),
            None => Vec::new(),
        }
    }
}
