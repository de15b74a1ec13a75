#![allow(dead_code, unreachable_pub)] // each test binary uses part of the suite

//! The media-node store conformance suite: every backend must pass it.
//!
//! Each check runs at its own point in (virtual) time, far from the others',
//! so records an earlier check left behind have expired and one store can
//! run them all in sequence.

use std::sync::Arc;

use tincan_fleet::{
    place, FleetError, MediaNodeInfo, MediaNodeStore, NodeLoad, NodeState, RoomAssignment,
};

pub const TTL: u64 = 30;
const ROOM_TTL: u64 = 600;

pub fn node(id: &str, allocations: u64, cpu_percent: f64) -> MediaNodeInfo {
    MediaNodeInfo {
        id: id.into(),
        region: "local".into(),
        turn_addr: format!("127.0.0.{}:3478", 1 + id.len()),
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

pub async fn run_all(store: &dyn MediaNodeStore) {
    heartbeat_registers_and_lists_in_id_order(store, 1_000_000).await;
    a_silent_node_expires(store, 2_000_000).await;
    draining_sticks_until_the_record_expires(store, 3_000_000).await;
    remove_and_unknown_ids(store, 4_000_000).await;
    invalid_node_ids_are_refused(store, 5_000_000).await;
    room_assignment_is_compare_and_set(store, 6_000_000).await;
    placement_is_least_loaded_and_sticky(store, 7_000_000).await;
}

async fn hb(store: &dyn MediaNodeStore, info: MediaNodeInfo, now: u64) {
    store.heartbeat(info, now, TTL).await.expect("heartbeat");
}

async fn ids(store: &dyn MediaNodeStore, now: u64) -> Vec<String> {
    store
        .list_alive(now)
        .await
        .expect("list")
        .into_iter()
        .map(|n| n.info.id)
        .collect()
}

async fn heartbeat_registers_and_lists_in_id_order(store: &dyn MediaNodeStore, t: u64) {
    assert!(ids(store, t).await.is_empty(), "a fresh time has no nodes");
    hb(store, node("n-b", 3, 12.5), t).await;
    let mut with_tls = node("n-a", 7, 40.25);
    with_tls.turns_addr = Some("turn-a.example.com:443".into());
    hb(store, with_tls.clone(), t).await;
    let listed = store.list_alive(t + 1).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|n| n.info.id.as_str())
            .collect::<Vec<_>>(),
        ["n-a", "n-b"]
    );
    assert_eq!(listed[0].info, with_tls, "every field round-trips");
    assert_eq!(listed[1].info.turns_addr, None, "no TLS, no turns_addr");
    assert_eq!((listed[0].heartbeat_at, listed[0].expires_at), (t, t + TTL));

    // A later heartbeat replaces the load and pushes the expiry out.
    let mut busier = node("n-b", 50, 80.0);
    busier.region = "eu-west-1".into();
    busier.tcp = false;
    hb(store, busier.clone(), t + 10).await;
    let listed = store.list_alive(t + 10).await.expect("list");
    let b = listed.iter().find(|n| n.info.id == "n-b").expect("n-b");
    assert_eq!(b.info, busier);
    assert_eq!((b.heartbeat_at, b.expires_at), (t + 10, t + 10 + TTL));

    // A heartbeat without `turns_addr` (TLS turned off) clears it.
    hb(store, node("n-a", 7, 40.25), t + 10).await;
    let listed = store.list_alive(t + 10).await.expect("list");
    let a = listed.iter().find(|n| n.info.id == "n-a").expect("n-a");
    assert_eq!(a.info.turns_addr, None);
}

async fn a_silent_node_expires(store: &dyn MediaNodeStore, t: u64) {
    hb(store, node("quiet", 0, 0.0), t).await;
    hb(store, node("chatty", 0, 0.0), t).await;
    hb(store, node("chatty", 0, 0.0), t + 20).await;
    assert_eq!(ids(store, t + TTL - 1).await, ["chatty", "quiet"]);
    // Expired records are filtered on read, whether or not TTL deleted them.
    assert_eq!(ids(store, t + TTL).await, ["chatty"]);
    assert!(ids(store, t + 20 + TTL).await.is_empty());
}

async fn draining_sticks_until_the_record_expires(store: &dyn MediaNodeStore, t: u64) {
    hb(store, node("d1", 1, 1.0), t).await;
    store.set_draining("d1", t + 1).await.expect("drain");
    let state = |now| async move { store.list_alive(now).await.expect("list")[0].info.state };
    assert_eq!(state(t + 1).await, NodeState::Draining);
    // The node's own "active" heartbeat cannot undo an operator's drain...
    hb(store, node("d1", 1, 1.0), t + 5).await;
    assert_eq!(state(t + 5).await, NodeState::Draining);
    // ...and a node that reports draining itself is draining.
    let mut own = node("d2", 1, 1.0);
    own.state = NodeState::Draining;
    hb(store, own, t + 5).await;
    let listed = store.list_alive(t + 5).await.expect("list");
    assert!(listed.iter().all(|n| n.info.state == NodeState::Draining));
    // Once the record has expired, a new heartbeat is a new life.
    hb(store, node("d1", 0, 0.0), t + 5 + TTL).await;
    assert_eq!(state(t + 5 + TTL).await, NodeState::Active);
}

async fn remove_and_unknown_ids(store: &dyn MediaNodeStore, t: u64) {
    hb(store, node("gone", 1, 1.0), t).await;
    hb(store, node("stays", 1, 1.0), t).await;
    store.remove("gone").await.expect("remove");
    store.remove("gone").await.expect("removing twice is fine");
    store.remove("never-was").await.expect("removing unknown");
    assert_eq!(ids(store, t).await, ["stays"]);
    assert!(matches!(
        store.set_draining("gone", t).await,
        Err(FleetError::NotFound(id)) if id == "gone"
    ));
    // An expired node cannot be drained either.
    assert!(matches!(
        store.set_draining("stays", t + TTL).await,
        Err(FleetError::NotFound(_))
    ));
}

async fn invalid_node_ids_are_refused(store: &dyn MediaNodeStore, t: u64) {
    let long = "x".repeat(129);
    for bad in ["", "room#lobby", "has space", long.as_str()] {
        assert!(
            matches!(
                store.heartbeat(node(bad, 0, 0.0), t, TTL).await,
                Err(FleetError::InvalidNodeId(_))
            ),
            "{bad:?} refused"
        );
        assert!(matches!(
            store.assign_room("r", None, bad, t, ROOM_TTL).await,
            Err(FleetError::InvalidNodeId(_))
        ));
    }
    assert!(ids(store, t).await.is_empty());
    // A room id can never be drained or removed through the node calls.
    store
        .assign_room("lobby", None, "n1", t, ROOM_TTL)
        .await
        .expect("assign");
    assert!(store.set_draining("room#lobby", t).await.is_err());
    store.remove("room#lobby").await.expect("no-op");
    assert_eq!(
        store
            .room_node("lobby", t)
            .await
            .expect("read")
            .map(|a| a.node_id),
        Some("n1".to_owned())
    );
}

async fn room_assignment_is_compare_and_set(store: &dyn MediaNodeStore, t: u64) {
    let room = "cas-room";
    assert_eq!(store.room_node(room, t).await.expect("read"), None);
    assert!(store
        .assign_room(room, None, "a", t, ROOM_TTL)
        .await
        .expect("cas"));
    // A second "first" placement loses.
    assert!(!store
        .assign_room(room, None, "b", t, ROOM_TTL)
        .await
        .expect("cas"));
    assert_eq!(
        store.room_node(room, t + 1).await.expect("read"),
        Some(RoomAssignment {
            node_id: "a".into(),
            expires_at: t + ROOM_TTL
        })
    );
    // Moving needs the current node.
    assert!(!store
        .assign_room(room, Some("b"), "c", t + 1, ROOM_TTL)
        .await
        .expect("cas"));
    assert!(store
        .assign_room(room, Some("a"), "b", t + 1, ROOM_TTL)
        .await
        .expect("cas"));
    // Refreshing in place extends the expiry.
    assert!(store
        .assign_room(room, Some("b"), "b", t + 2, ROOM_TTL)
        .await
        .expect("cas"));
    let live = store
        .room_node(room, t + 2)
        .await
        .expect("read")
        .expect("assigned");
    assert_eq!(
        (live.node_id.as_str(), live.expires_at),
        ("b", t + 2 + ROOM_TTL)
    );
    // Expired: gone on read, and only a "no assignment" write takes it.
    let later = t + 2 + ROOM_TTL;
    assert_eq!(store.room_node(room, later).await.expect("read"), None);
    assert!(!store
        .assign_room(room, Some("b"), "c", later, ROOM_TTL)
        .await
        .expect("cas"));
    assert!(store
        .assign_room(room, None, "c", later, ROOM_TTL)
        .await
        .expect("cas"));
    // Rooms are independent, and never listed as nodes.
    assert_eq!(
        store.room_node("other-room", later).await.expect("read"),
        None
    );
    assert!(ids(store, later).await.is_empty());
}

async fn placement_is_least_loaded_and_sticky(store: &dyn MediaNodeStore, t: u64) {
    let placed = |room: &'static str, now: u64| async move {
        place(store, room, now, ROOM_TTL)
            .await
            .expect("place")
            .map(|n| n.info.id)
    };
    assert_eq!(placed("p1", t).await, None, "no nodes, no placement");
    hb(store, node("busy", 40, 30.0), t).await;
    hb(store, node("idle", 2, 3.0), t).await;
    hb(store, node("mid", 10, 9.0), t).await;
    assert_eq!(placed("p1", t).await.as_deref(), Some("idle"));
    assert_eq!(
        store
            .room_node("p1", t)
            .await
            .expect("read")
            .map(|a| a.node_id),
        Some("idle".to_owned()),
        "the placement is stored"
    );
    // idle fills up: new rooms go to mid, p1 stays on idle.
    hb(store, node("idle", 90, 60.0), t + 5).await;
    assert_eq!(placed("p2", t + 5).await.as_deref(), Some("mid"));
    assert_eq!(placed("p1", t + 5).await.as_deref(), Some("idle"));
    // idle drains: its rooms move, and it gets no new ones.
    store.set_draining("idle", t + 6).await.expect("drain");
    assert_eq!(placed("p1", t + 6).await.as_deref(), Some("mid"));
    assert_eq!(placed("p3", t + 6).await.as_deref(), Some("mid"));
    // mid goes silent: its rooms move to busy, the only active node left.
    hb(store, node("busy", 40, 30.0), t + 20).await;
    hb(store, node("idle", 0, 0.0), t + 20).await;
    let after = t + TTL + 1;
    assert_eq!(placed("p2", after).await.as_deref(), Some("busy"));
    assert_eq!(placed("p1", after).await.as_deref(), Some("busy"));
}

/// Joiners of one room placed at the same moment through separate calls all
/// get one node, even when their views of the load differ.
pub async fn concurrent_placements_agree(store: Arc<dyn MediaNodeStore>) {
    let t = 9_000_000;
    for (id, load) in [("c-1", 5), ("c-2", 5), ("c-3", 5)] {
        store
            .heartbeat(node(id, load, 1.0), t, TTL)
            .await
            .expect("hb");
    }
    // Racing first placements, each naming a different node: one wins.
    let mut racers = Vec::new();
    for i in 0..12 {
        let store = Arc::clone(&store);
        racers.push(tokio::spawn(async move {
            let node = format!("c-{}", 1 + i % 3);
            store
                .assign_room("race", None, &node, t, ROOM_TTL)
                .await
                .expect("cas")
        }));
    }
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.expect("task"));
    }
    assert_eq!(wins, 1, "exactly one first placement commits");
    let winner = store
        .room_node("race", t)
        .await
        .expect("read")
        .expect("placed")
        .node_id;

    // And concurrent joins through `place` all agree, on the stored node
    // for a placed room and on one node for a new room.
    for room in ["race", "fresh"] {
        let mut joins = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            joins.push(tokio::spawn(async move {
                place(store.as_ref(), room, t + 1, ROOM_TTL)
                    .await
                    .expect("place")
                    .expect("a node")
                    .info
                    .id
            }));
        }
        let mut nodes = Vec::new();
        for join in joins {
            nodes.push(join.await.expect("task"));
        }
        nodes.dedup();
        assert_eq!(nodes.len(), 1, "{room}: {nodes:?}");
        if room == "race" {
            assert_eq!(nodes[0], winner);
        }
    }
}
