//! The item shapes of the media-nodes table, and their codecs (on
//! `tincan_aws::item`'s typed getters). Decoding never panics: an item we
//! did not write is [`FleetError::Corrupt`].

use aws_sdk_dynamodb::types::AttributeValue;
pub(crate) use tincan_aws::item::{n, s};
use tincan_aws::item::{Attributes, Item};

use crate::{FleetError, MediaNodeInfo, NodeLoad, NodeRecord, NodeState, RoomAssignment};

/// Partition key: a node id, or [`room_key`].
pub(crate) const PK: &str = "nodeId";
/// Present (= [`FLEET_NODES`]) on node items only: the sparse
/// [`super::FLEET_INDEX`]'s partition key.
pub(crate) const FLEET: &str = "fleet";
pub(crate) const FLEET_NODES: &str = "nodes";
pub(crate) const REGION: &str = "region";
pub(crate) const TURN_ADDR: &str = "turnAddr";
/// Optional: absent when the node advertises no `turns:`.
pub(crate) const TURNS_ADDR: &str = "turnsAddr";
pub(crate) const UDP: &str = "udp";
pub(crate) const TCP: &str = "tcp";
pub(crate) const RELAY_PORT_MIN: &str = "relayPortMin";
pub(crate) const RELAY_PORT_MAX: &str = "relayPortMax";
pub(crate) const ALLOCATIONS: &str = "allocations";
pub(crate) const BANDWIDTH_BPS: &str = "bandwidthBps";
pub(crate) const CPU_PERCENT: &str = "cpuPercent";
/// Optional (absent in items written before the SFU): SFU load.
pub(crate) const SFU_PARTICIPANTS: &str = "sfuParticipants";
pub(crate) const SFU_STREAMS: &str = "sfuStreams";
/// Optional: the SFU control API's base URL.
pub(crate) const SFU_CONTROL: &str = "sfuControl";
/// `active` or `draining`.
pub(crate) const STATE: &str = "state";
pub(crate) const HEARTBEAT_AT: &str = "heartbeatAt";
/// Seconds since the epoch; the table's TTL attribute.
pub(crate) const EXPIRES_AT: &str = "expiresAt";
/// Room items: the node id the room is on.
pub(crate) const NODE: &str = "node";

pub(crate) const ACTIVE: &str = "active";
pub(crate) const DRAINING: &str = "draining";

/// The key of a room's assignment item. Node ids never contain `#`
/// ([`crate::validate_node_id`]), so the two cannot collide.
pub(crate) fn room_key(room: &str) -> String {
    format!("room#{room}")
}

pub(crate) fn key(pk: &str) -> Item {
    tincan_aws::item::key(PK, pk)
}

pub(crate) fn state_value(state: NodeState) -> AttributeValue {
    s(match state {
        NodeState::Active => ACTIVE,
        NodeState::Draining => DRAINING,
    })
}

/// CPU percent as a DynamoDB number: finite, not negative, two decimals
/// (DynamoDB refuses NaN, infinities and over 38 digits).
fn cpu_value(cpu: f64) -> AttributeValue {
    let cpu = if cpu.is_finite() {
        cpu.clamp(0.0, 1e9)
    } else {
        0.0
    };
    AttributeValue::N(format!("{cpu:.2}"))
}

pub(crate) fn node_to_item(info: &MediaNodeInfo, heartbeat_at: u64, expires_at: u64) -> Item {
    let mut item = key(&info.id);
    item.insert(FLEET.into(), s(FLEET_NODES));
    item.insert(REGION.into(), s(&info.region));
    item.insert(TURN_ADDR.into(), s(&info.turn_addr));
    if let Some(turns_addr) = &info.turns_addr {
        item.insert(TURNS_ADDR.into(), s(turns_addr));
    }
    item.insert(UDP.into(), AttributeValue::Bool(info.udp));
    item.insert(TCP.into(), AttributeValue::Bool(info.tcp));
    item.insert(RELAY_PORT_MIN.into(), n(info.relay_port_min.into()));
    item.insert(RELAY_PORT_MAX.into(), n(info.relay_port_max.into()));
    item.insert(ALLOCATIONS.into(), n(info.load.allocations));
    item.insert(BANDWIDTH_BPS.into(), n(info.load.bandwidth_bps));
    item.insert(CPU_PERCENT.into(), cpu_value(info.load.cpu_percent));
    item.insert(SFU_PARTICIPANTS.into(), n(info.load.sfu_participants));
    item.insert(SFU_STREAMS.into(), n(info.load.sfu_streams));
    if let Some(control) = &info.sfu_control {
        item.insert(SFU_CONTROL.into(), s(control));
    }
    item.insert(STATE.into(), state_value(info.state));
    item.insert(HEARTBEAT_AT.into(), n(heartbeat_at));
    item.insert(EXPIRES_AT.into(), n(expires_at));
    item
}

pub(crate) fn node_from_item(item: &Item) -> Result<NodeRecord, FleetError> {
    let a = Attributes::keyed(item, PK)?;
    let port = |name: &str| u16::try_from(a.number(name)?).map_err(|_| a.corrupt(name));
    let state = match a.string(STATE)? {
        ACTIVE => NodeState::Active,
        DRAINING => NodeState::Draining,
        _ => return Err(a.corrupt(STATE).into()),
    };
    Ok(NodeRecord {
        info: MediaNodeInfo {
            id: a.key().to_owned(),
            region: a.string(REGION)?.to_owned(),
            turn_addr: a.string(TURN_ADDR)?.to_owned(),
            turns_addr: a.opt_string(TURNS_ADDR)?.map(str::to_owned),
            udp: a.boolean(UDP)?,
            tcp: a.boolean(TCP)?,
            relay_port_min: port(RELAY_PORT_MIN)?,
            relay_port_max: port(RELAY_PORT_MAX)?,
            load: NodeLoad {
                allocations: a.number(ALLOCATIONS)?,
                bandwidth_bps: a.number(BANDWIDTH_BPS)?,
                cpu_percent: a.finite(CPU_PERCENT)?,
                sfu_participants: a.opt_number(SFU_PARTICIPANTS)?.unwrap_or(0),
                sfu_streams: a.opt_number(SFU_STREAMS)?.unwrap_or(0),
            },
            state,
            sfu_control: a.opt_string(SFU_CONTROL)?.map(str::to_owned),
        },
        heartbeat_at: a.number(HEARTBEAT_AT)?,
        expires_at: a.number(EXPIRES_AT)?,
    })
}

pub(crate) fn room_to_item(room: &str, node_id: &str, expires_at: u64) -> Item {
    let mut item = key(&room_key(room));
    item.insert(NODE.into(), s(node_id));
    item.insert(EXPIRES_AT.into(), n(expires_at));
    item
}

pub(crate) fn room_from_item(item: &Item) -> Result<RoomAssignment, FleetError> {
    let a = Attributes::keyed(item, PK)?;
    Ok(RoomAssignment {
        node_id: a.string(NODE)?.to_owned(),
        expires_at: a.number(EXPIRES_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> MediaNodeInfo {
        MediaNodeInfo {
            id: "i-0abc".into(),
            region: "eu-west-1".into(),
            turn_addr: "203.0.113.7:3478".into(),
            turns_addr: Some("turn-7.example.com:443".into()),
            udp: true,
            tcp: false,
            relay_port_min: 49152,
            relay_port_max: 65535,
            load: NodeLoad {
                allocations: 12,
                bandwidth_bps: 768_000,
                cpu_percent: 12.25,
                sfu_participants: 7,
                sfu_streams: 21,
            },
            state: NodeState::Draining,
            sfu_control: Some("http://203.0.113.7:7881".into()),
        }
    }

    #[test]
    fn node_round_trips() {
        let item = node_to_item(&info(), 100, 130);
        let record = node_from_item(&item).expect("decodes");
        assert_eq!(record.info, info());
        assert_eq!((record.heartbeat_at, record.expires_at), (100, 130));
    }

    #[test]
    fn turns_addr_is_optional_and_old_items_still_decode() {
        let mut plain = info();
        plain.turns_addr = None;
        let item = node_to_item(&plain, 100, 130);
        assert!(!item.contains_key(TURNS_ADDR), "absent, not null");
        assert_eq!(node_from_item(&item).expect("decodes").info, plain);

        // Items written before the SFU: no load, no control URL.
        let mut old = node_to_item(&info(), 100, 130);
        for name in [SFU_PARTICIPANTS, SFU_STREAMS, SFU_CONTROL] {
            old.remove(name);
        }
        let decoded = node_from_item(&old).expect("decodes").info;
        assert_eq!(
            (
                decoded.load.sfu_participants,
                decoded.load.sfu_streams,
                decoded.sfu_control
            ),
            (0, 0, None)
        );

        // An item written before the attribute existed: no `turns:`.
        let mut old = node_to_item(&info(), 100, 130);
        old.remove(TURNS_ADDR);
        assert_eq!(node_from_item(&old).expect("decodes").info.turns_addr, None);

        // Present but not a string: corrupt, not a panic.
        let mut bad = node_to_item(&info(), 100, 130);
        bad.insert(TURNS_ADDR.into(), n(443));
        assert!(matches!(
            node_from_item(&bad),
            Err(FleetError::Corrupt { key, reason }) if key == "i-0abc" && reason.contains(TURNS_ADDR)
        ));
    }

    #[test]
    fn cpu_that_dynamodb_would_refuse_is_written_as_a_plain_number() {
        let mut bad = info();
        for cpu in [f64::NAN, f64::INFINITY, -3.0, 1e300] {
            bad.load.cpu_percent = cpu;
            let item = node_to_item(&bad, 1, 2);
            let Some(AttributeValue::N(text)) = item.get(CPU_PERCENT) else {
                panic!("cpu is a number");
            };
            assert!(text.len() < 20, "{text}");
            assert!(node_from_item(&item).is_ok());
        }
    }

    #[test]
    fn foreign_items_are_corrupt_not_a_panic() {
        let mut item = node_to_item(&info(), 1, 2);
        item.insert(STATE.into(), s("asleep"));
        assert!(matches!(
            node_from_item(&item),
            Err(FleetError::Corrupt { key, .. }) if key == "i-0abc"
        ));
        let mut item = node_to_item(&info(), 1, 2);
        item.insert(RELAY_PORT_MAX.into(), n(70_000));
        assert!(node_from_item(&item).is_err());
        item.remove(PK);
        assert!(node_from_item(&item).is_err());
        let mut room = room_to_item("lobby", "n1", 5);
        assert_eq!(
            room_from_item(&room).expect("decodes"),
            RoomAssignment {
                node_id: "n1".into(),
                expires_at: 5
            }
        );
        room.insert(EXPIRES_AT.into(), s("soon"));
        assert!(room_from_item(&room).is_err());
    }
}
