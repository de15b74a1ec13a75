//! The media-node fleet, IO-free where it decides.
//!
//! Each media node heartbeats a [`MediaNodeInfo`] (address, ports, region,
//! load, state) into a [`MediaNodeStore`] with a TTL: in AWS a DynamoDB
//! table with a TTL attribute, locally [`InMemoryMediaNodeStore`]. A node
//! that stops heartbeating drops out when its record expires.
//!
//! The signaling side lists the healthy nodes and calls [`place_room`]: a
//! room stays on its node while that node is alive and active, and otherwise
//! goes to the least-loaded active node ([`pick_node`]). A draining node
//! gets no new rooms.
//!
//! Every function takes `now` (seconds since the Unix epoch); nothing here
//! reads a clock.

mod memory;
pub mod selection;

pub use memory::InMemoryMediaNodeStore;
pub use selection::{pick_node, place_room};

use serde::{Deserialize, Serialize};

/// Default heartbeat TTL: three missed 10-second heartbeats.
pub const DEFAULT_HEARTBEAT_TTL_SECS: u64 = 30;

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    #[default]
    Active,
    /// Finishing its allocations; gets no new rooms.
    Draining,
}

/// What a node reports about its load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    /// Live TURN allocations.
    pub allocations: u64,
    /// Relayed bits per second, both directions.
    pub bandwidth_bps: u64,
    /// Process CPU use, percent of one core (may exceed 100).
    pub cpu_percent: f64,
}

/// Bits per second of one relayed audio stream (Opus with RTP/UDP/TURN
/// overhead, roughly), to weigh bandwidth against allocations.
pub const AUDIO_STREAM_BPS: u64 = 64_000;

/// CPU above which a node is picked only if every other node is as hot.
pub const CPU_HOT_PERCENT: f64 = 85.0;

impl NodeLoad {
    /// One number to compare nodes by: allocations, or audio streams of
    /// bandwidth, whichever is larger.
    pub fn score(&self) -> u64 {
        self.allocations.max(self.bandwidth_bps / AUDIO_STREAM_BPS)
    }

    /// Too busy to take a room while a cooler node exists.
    pub fn is_hot(&self) -> bool {
        self.cpu_percent >= CPU_HOT_PERCENT
    }
}

/// One node's self-description, sent with each heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaNodeInfo {
    /// Stable id (instance id in AWS, a name locally).
    pub id: String,
    /// Region or zone, for future affinity.
    pub region: String,
    /// Advertised TURN `host:port` (clients' `turn:` URLs).
    pub turn_addr: String,
    /// TURN over UDP / TCP offered.
    pub udp: bool,
    pub tcp: bool,
    /// Relay port range, inclusive.
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    pub load: NodeLoad,
    pub state: NodeState,
}

/// A registered node as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub info: MediaNodeInfo,
    /// When the last heartbeat arrived.
    pub heartbeat_at: u64,
    /// When the record stops counting (the DynamoDB TTL attribute).
    pub expires_at: u64,
}

impl NodeRecord {
    /// Heard from recently enough.
    pub fn is_alive(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Alive and taking new rooms.
    pub fn is_available(&self, now: u64) -> bool {
        self.is_alive(now) && self.info.state == NodeState::Active
    }
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No live record for this node id.
    #[error("no media node {0}")]
    NotFound(String),
    /// The backend failed (network, throttling, ...).
    #[error("media node store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The `media_nodes` registry.
#[async_trait::async_trait]
pub trait MediaNodeStore: Send + Sync {
    /// Registers or refreshes a node: its record lives until `now + ttl`.
    /// A node that once drained stays draining even if it reports active.
    async fn heartbeat(
        &self,
        info: MediaNodeInfo,
        now: u64,
        ttl_secs: u64,
    ) -> Result<(), FleetError>;

    /// Marks a live node draining (also done by the node's own heartbeat).
    async fn set_draining(&self, id: &str, now: u64) -> Result<(), FleetError>;

    /// Removes a node (clean shutdown).
    async fn remove(&self, id: &str) -> Result<(), FleetError>;

    /// Nodes alive at `now`, draining or not, in id order.
    async fn list_alive(&self, now: u64) -> Result<Vec<NodeRecord>, FleetError>;
}
