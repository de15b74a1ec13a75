//! Fleet scenarios through the in-memory store on a virtual clock: three
//! nodes of different load, a draining node, a node that goes silent.

use tincan_fleet::{
    pick_node, place_room, FleetError, InMemoryMediaNodeStore, MediaNodeInfo, MediaNodeStore,
    NodeLoad, NodeState,
};

const TTL: u64 = 30;

fn node(id: &str, allocations: u64, cpu_percent: f64) -> MediaNodeInfo {
    MediaNodeInfo {
        id: id.into(),
        region: "local".into(),
        turn_addr: format!("127.0.0.1:{}", 3478 + id.len()),
        turns_addr: None,
        udp: true,
        tcp: true,
        relay_port_min: 49152,
        relay_port_max: 65535,
        load: NodeLoad {
            allocations,
            bandwidth_bps: allocations * 64_000,
            cpu_percent,
            ..NodeLoad::default()
        },
        state: NodeState::Active,
        sfu_control: None,
    }
}

async fn fleet(now: u64) -> InMemoryMediaNodeStore {
    let store = InMemoryMediaNodeStore::new();
    for info in [
        node("busy", 40, 30.0),
        node("idle", 2, 3.0),
        node("mid", 10, 9.0),
    ] {
        store.heartbeat(info, now, TTL).await.expect("heartbeat");
    }
    store
}

#[tokio::test]
async fn rooms_go_to_the_least_loaded_of_three_nodes() {
    let store = fleet(1000).await;
    let nodes = store.list_alive(1000).await.expect("list");
    assert_eq!(nodes.len(), 3);
    assert_eq!(pick_node(&nodes, 1000).expect("a node").info.id, "idle");

    // The idle node fills up: new rooms go to the next least loaded.
    store
        .heartbeat(node("idle", 60, 40.0), 1005, TTL)
        .await
        .expect("heartbeat");
    let nodes = store.list_alive(1005).await.expect("list");
    assert_eq!(pick_node(&nodes, 1005).expect("a node").info.id, "mid");
}

#[tokio::test]
async fn a_draining_node_gets_no_new_rooms_and_its_rooms_move() {
    let store = fleet(1000).await;
    store.set_draining("idle", 1001).await.expect("drain");
    let nodes = store.list_alive(1001).await.expect("list");
    assert_eq!(pick_node(&nodes, 1001).expect("a node").info.id, "mid");
    assert_eq!(
        place_room(Some("idle"), &nodes, 1001)
            .expect("a node")
            .info
            .id,
        "mid"
    );

    // Its own next heartbeat cannot undo the drain.
    store
        .heartbeat(node("idle", 1, 1.0), 1002, TTL)
        .await
        .expect("heartbeat");
    let nodes = store.list_alive(1002).await.expect("list");
    let idle = nodes
        .iter()
        .find(|n| n.info.id == "idle")
        .expect("still listed");
    assert_eq!(idle.info.state, NodeState::Draining);
    assert_eq!(pick_node(&nodes, 1002).expect("a node").info.id, "mid");
}

#[tokio::test]
async fn a_silent_node_drops_out_when_its_heartbeat_expires() {
    let store = fleet(1000).await;
    // Only busy and mid keep heartbeating.
    for t in [1010, 1020] {
        store
            .heartbeat(node("busy", 40, 30.0), t, TTL)
            .await
            .expect("hb");
        store
            .heartbeat(node("mid", 10, 9.0), t, TTL)
            .await
            .expect("hb");
    }
    let nodes = store.list_alive(1029).await.expect("list");
    assert_eq!(pick_node(&nodes, 1029).expect("a node").info.id, "idle");
    store
        .heartbeat(node("busy", 40, 30.0), 1030, TTL)
        .await
        .expect("hb");
    store
        .heartbeat(node("mid", 10, 9.0), 1030, TTL)
        .await
        .expect("hb");
    let nodes = store.list_alive(1030).await.expect("list");
    assert_eq!(nodes.len(), 2);
    assert_eq!(pick_node(&nodes, 1030).expect("a node").info.id, "mid");
    assert!(matches!(
        store.set_draining("idle", 1030).await,
        Err(FleetError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_room_stays_on_its_node_while_it_is_healthy() {
    let store = fleet(1000).await;
    let nodes = store.list_alive(1000).await.expect("list");
    let first = place_room(None, &nodes, 1000)
        .expect("a node")
        .info
        .id
        .clone();
    assert_eq!(first, "idle");
    // Even once another node is lighter, the room keeps its node.
    store
        .heartbeat(node("idle", 80, 50.0), 1001, TTL)
        .await
        .expect("hb");
    let nodes = store.list_alive(1001).await.expect("list");
    assert_eq!(
        place_room(Some(&first), &nodes, 1001)
            .expect("a node")
            .info
            .id,
        "idle"
    );
    // A room on an unknown node is placed afresh.
    assert_eq!(
        place_room(Some("gone"), &nodes, 1001)
            .expect("a node")
            .info
            .id,
        "mid"
    );
}

#[tokio::test]
async fn a_hot_cpu_node_comes_last_and_no_node_means_none() {
    let store = InMemoryMediaNodeStore::new();
    store
        .heartbeat(node("hot", 1, 97.0), 0, TTL)
        .await
        .expect("hb");
    store
        .heartbeat(node("cool", 30, 20.0), 0, TTL)
        .await
        .expect("hb");
    let nodes = store.list_alive(0).await.expect("list");
    assert_eq!(pick_node(&nodes, 0).expect("a node").info.id, "cool");
    store.remove("cool").await.expect("remove");
    let nodes = store.list_alive(0).await.expect("list");
    assert_eq!(pick_node(&nodes, 0).expect("a node").info.id, "hot");
    store.set_draining("hot", 0).await.expect("drain");
    let nodes = store.list_alive(0).await.expect("list");
    assert!(pick_node(&nodes, 0).is_none());
    assert!(pick_node(&[], 0).is_none());
}

#[tokio::test]
async fn sfu_participants_count_as_load() {
    let store = fleet(1000).await;
    // The idle node hosts a large SFU room: 80 participants, few allocations.
    let mut sfu = node("idle", 2, 3.0);
    sfu.load.sfu_participants = 80;
    sfu.load.sfu_streams = 240;
    sfu.sfu_control = Some("http://127.0.0.1:7881".into());
    assert_eq!(sfu.load.score(), 82);
    store.heartbeat(sfu, 1001, TTL).await.expect("heartbeat");
    let nodes = store.list_alive(1001).await.expect("list");
    assert_eq!(pick_node(&nodes, 1001).expect("a node").info.id, "mid");
}

#[test]
fn old_records_without_sfu_fields_parse() {
    let json = r#"{"id": "n", "region": "local", "turnAddr": "127.0.0.1:3478",
        "udp": true, "tcp": true, "relayPortMin": 1, "relayPortMax": 2,
        "load": {"allocations": 3, "bandwidthBps": 0, "cpuPercent": 1.0},
        "state": "active"}"#;
    let info: MediaNodeInfo = serde_json::from_str(json).expect("parses");
    assert_eq!(info.load.sfu_participants, 0);
    assert_eq!(info.sfu_control, None);
    let back = serde_json::to_value(&info).expect("serializes");
    assert!(back.get("sfuControl").is_none());
    assert_eq!(back["load"]["sfuParticipants"], 0);
}
