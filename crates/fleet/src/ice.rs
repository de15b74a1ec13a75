//! `iceServers` for a joiner: the TURN node its room is placed on.

use std::sync::Arc;

use async_trait::async_trait;
use tincan_media_routing::IceServerSource;
use tincan_signaling::IceServer;
use tincan_turn_credentials::{ice_servers, ice_servers_with_tls, TurnSecret};

use crate::placement::{place, DEFAULT_ROOM_TTL_SECS};
use crate::selection::{pick_node, place_room};
use crate::{MediaNodeInfo, MediaNodeStore, NodeRecord};

/// The signaling side's [`IceServerSource`] for a fleet of media nodes:
/// each room is placed on a healthy, least-loaded, active node and kept
/// there ([`place`]); a joiner gets STUN and TURN (UDP, TCP as the node
/// offers) on that node with a fresh TURN REST API credential, and TURN
/// over TLS (`turns:`, after the `turn:` URLs, same credential) when the
/// node advertises a [`MediaNodeInfo::turns_addr`].
///
/// With no node available, or the store failing, it logs a warning and
/// hands out the fallback TURN address ([`FleetIceServers::with_fallback`],
/// `TINCAN_TURN_URL`) if one is set, else no servers: peers still try to
/// connect directly.
#[derive(Clone)]
pub struct FleetIceServers {
    store: Arc<dyn MediaNodeStore>,
    secret: TurnSecret,
    credential_ttl_secs: u64,
    room_ttl_secs: u64,
    fallback: Option<String>,
}

impl std::fmt::Debug for FleetIceServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetIceServers")
            .field("credential_ttl_secs", &self.credential_ttl_secs)
            .field("room_ttl_secs", &self.room_ttl_secs)
            .field("fallback", &self.fallback)
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
            fallback: None,
        }
    }

    /// When no node is available (or the registry cannot be read), hand out
    /// TURN on `host_port` (UDP and TCP) instead of nothing: typically a
    /// load balancer in front of the fleet (`TINCAN_TURN_URL`).
    pub fn with_fallback(mut self, host_port: impl Into<String>) -> Self {
        self.fallback = Some(host_port.into()).filter(|s| !s.is_empty());
        self
    }

    /// The fallback servers, or none.
    fn fallback_servers(&self, user_id: &str, now_secs: u64) -> Vec<IceServer> {
        match &self.fallback {
            Some(host_port) => {
                let credential = self
                    .secret
                    .mint(user_id, now_secs, self.credential_ttl_secs);
                ice_servers(host_port, &credential)
            }
            None => Vec::new(),
        }
    }

    /// Servers for a caller outside the signaling path (the HTTP API's
    /// `GET /turn-credentials`), without writing anything: with a `room`,
    /// the node that room is on (or would be placed on now, by the same
    /// rule as [`place`]); without one, the least-loaded node; with no node
    /// available, the fallback.
    pub async fn ice_servers_for(
        &self,
        user_id: &str,
        room: Option<&str>,
        now_secs: u64,
    ) -> Vec<IceServer> {
        let nodes = match self.store.list_alive(now_secs).await {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::warn!(error = %err, "media node list failed: fallback TURN servers");
                return self.fallback_servers(user_id, now_secs);
            }
        };
        let current = match room {
            Some(room) => match self.store.room_node(room, now_secs).await {
                Ok(assignment) => assignment.map(|a| a.node_id),
                Err(err) => {
                    tracing::warn!(room, error = %err, "room assignment read failed");
                    None
                }
            },
            None => None,
        };
        match place_room(current.as_deref(), &nodes, now_secs) {
            Some(node) => self.servers_on(&node.info, user_id, now_secs),
            None => {
                tracing::warn!("no media node available: fallback TURN servers");
                self.fallback_servers(user_id, now_secs)
            }
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
                tracing::warn!(
                    room,
                    "no media node available: fallback TURN servers, if any"
                );
                None
            }
            Err(err) => {
                tracing::warn!(room, error = %err, "media node placement failed: fallback TURN servers, if any");
                None
            }
        }
    }

    /// Servers on the least-loaded node, for a user in no room; the
    /// fallback (or nothing, logged) if none is available.
    pub async fn ice_servers_any_node(&self, user_id: &str, now_secs: u64) -> Vec<IceServer> {
        let nodes = match self.store.list_alive(now_secs).await {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::warn!(error = %err, "media node list failed: fallback TURN servers");
                return self.fallback_servers(user_id, now_secs);
            }
        };
        match pick_node(&nodes, now_secs) {
            Some(node) => self.servers_on(&node.info, user_id, now_secs),
            None => {
                tracing::warn!("no media node available: fallback TURN servers");
                self.fallback_servers(user_id, now_secs)
            }
        }
    }

    fn servers_on(&self, node: &MediaNodeInfo, user_id: &str, now_secs: u64) -> Vec<IceServer> {
        let credential = self
            .secret
            .mint(user_id, now_secs, self.credential_ttl_secs);
        let mut servers =
            ice_servers_with_tls(&node.turn_addr, node.turns_addr.as_deref(), &credential);
        for server in &mut servers {
            // `turns:` is its own listener: it stays whatever plain TCP does.
            server.urls.retain(|url| {
                url.starts_with("turns:")
                    || ((node.udp || !url.ends_with("?transport=udp"))
                        && (node.tcp || !url.ends_with("?transport=tcp")))
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
            None => self.fallback_servers(user_id, now_secs),
        }
    }
}

/// The SFU of a room is on the node the room is placed on (the same node
/// whose TURN its participants get), when that node runs one.
#[async_trait]
impl tincan_media_routing::SfuLocator for FleetIceServers {
    async fn control_url(&self, room: &str, now_secs: u64) -> Option<String> {
        self.node_for_room(room, now_secs)
            .await
            .and_then(|node| node.info.sfu_control)
    }
}
