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
//! The room -> node assignment is kept in the same store, written with a
//! compare-and-set ([`MediaNodeStore::assign_room`]), so every signaling
//! instance placing joiners of one room at once agrees on one node
//! ([`place`]). [`FleetIceServers`] wraps that as the signaling side's
//! [`tincan_media_routing::IceServerSource`]. [`DynamoMediaNodeStore`] is the
//! DynamoDB backend; one conformance suite (`tests/media_node_store.rs`)
//! runs against both.
//!
//! Every function takes `now` (seconds since the Unix epoch); nothing here
//! reads a clock.

mod dynamo;
mod ice;
mod memory;
mod placement;
pub mod selection;

pub use dynamo::{
    create_media_nodes_table, DynamoMediaNodeStore, DEFAULT_MEDIA_NODES_TABLE, FLEET_INDEX,
};
pub use ice::FleetIceServers;
pub use memory::InMemoryMediaNodeStore;
pub use placement::{place, DEFAULT_ROOM_TTL_SECS};
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
    /// SFU participants (one peer connection each); 0 in records written
    /// before the SFU existed.
    #[serde(default)]
    pub sfu_participants: u64,
    /// SFU streams being forwarded (filled receive slots over all
    /// participants).
    #[serde(default)]
    pub sfu_streams: u64,
}

/// Bits per second of one relayed audio stream (Opus with RTP/UDP/TURN
/// overhead, roughly), to weigh bandwidth against allocations.
pub const AUDIO_STREAM_BPS: u64 = 64_000;

/// CPU above which a node is picked only if every other node is as hot.
pub const CPU_HOT_PERCENT: f64 = 85.0;

/// A node's load as one figure: live TURN allocations plus SFU
/// participants (a participant holds about what a relayed user does).
///
/// Placement compares nodes by it ([`NodeLoad::score`]), a draining node
/// waits for it to reach 0, and on AWS the node publishes it as the metric
/// the group scales on and keeps itself protected from scale-in while it
/// is above 0 (`tincan_node_load` in the node's `/metrics`). A node that
/// carries only group calls is therefore as busy as one relaying as many
/// users.
pub fn node_load(allocations: u64, sfu_participants: u64) -> u64 {
    allocations.saturating_add(sfu_participants)
}

impl NodeLoad {
    /// [`node_load`] of this report: allocations plus SFU participants.
    pub fn sessions(&self) -> u64 {
        node_load(self.allocations, self.sfu_participants)
    }

    /// One number to compare nodes by: [`NodeLoad::sessions`], or audio
    /// streams of bandwidth, whichever is larger.
    pub fn score(&self) -> u64 {
        self.sessions().max(self.bandwidth_bps / AUDIO_STREAM_BPS)
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
    /// Advertised TURN-over-TLS `host:port` (clients' `turns:` URLs), when
    /// the node serves TLS and knows its certificate's DNS name: the host is
    /// that name, so browsers can verify the certificate. `None` (and absent
    /// from records written before it existed): no `turns:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns_addr: Option<String>,
    /// TURN over UDP / TCP offered.
    pub udp: bool,
    pub tcp: bool,
    /// Relay port range, inclusive.
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    pub load: NodeLoad,
    pub state: NodeState,
    /// The SFU control API's base URL (`http://host:7881`), when the node
    /// runs the SFU; `None` (and absent from older records) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfu_control: Option<String>,
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

/// Longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 128;

/// Checks a node id: 1-[`MAX_NODE_ID_LEN`] printable ASCII characters
/// without `#` (room assignments are keyed `room#<room>` in the same table,
/// so a node id can never be mistaken for one) or whitespace.
pub fn validate_node_id(id: &str) -> Result<(), FleetError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(FleetError::InvalidNodeId(id.to_owned()))
    }
}

/// Which node a room is on, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAssignment {
    pub node_id: String,
    /// When the assignment lapses unless refreshed (the TTL attribute).
    pub expires_at: u64,
}

impl RoomAssignment {
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No live record for this node id.
    #[error("no media node {0}")]
    NotFound(String),
    /// A node id that [`validate_node_id`] refuses.
    #[error("invalid media node id {0:?}")]
    InvalidNodeId(String),
    /// An item in the store that we did not write (or an older layout).
    #[error("media node store item {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// Concurrent writers kept winning a compare-and-set; try again later.
    #[error("gave up placing room {0} after repeated write conflicts")]
    Contention(String),
    /// The backend failed (network, throttling, ...).
    #[error("media node store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<tincan_aws::DynamoError> for FleetError {
    fn from(err: tincan_aws::DynamoError) -> Self {
        Self::Backend(Box::new(err))
    }
}

impl From<tincan_aws::ItemError> for FleetError {
    fn from(err: tincan_aws::ItemError) -> Self {
        Self::Corrupt {
            reason: err.reason(),
            key: err.key,
        }
    }
}

/// The `media_nodes` registry, and which node each room is on.
#[async_trait::async_trait]
pub trait MediaNodeStore: Send + Sync {
    /// Registers or refreshes a node: its record lives until `now + ttl`.
    /// A node that once drained stays draining even if it reports active
    /// (until its record expires). [`FleetError::InvalidNodeId`] for an id
    /// [`validate_node_id`] refuses.
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

    /// The live assignment of `room`, if any.
    async fn room_node(&self, room: &str, now: u64) -> Result<Option<RoomAssignment>, FleetError>;

    /// Compare-and-set: assigns `room` to `node_id` until `now + ttl_secs`
    /// if its live assignment at `now` is still on `expected` (`None`: no
    /// live assignment). `Ok(false)` when another writer changed it first;
    /// re-read and decide again. Also used with `expected == node_id` to
    /// extend an assignment.
    async fn assign_room(
        &self,
        room: &str,
        expected: Option<&str>,
        node_id: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<bool, FleetError>;
}
