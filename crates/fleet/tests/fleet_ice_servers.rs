//! `FleetIceServers`, the signaling side's view of the fleet: which node's
//! TURN servers a joiner is given, on both store backends.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::{node, TTL};
use tincan_aws::testing::{self, MotoServer};
use tincan_fleet::{
    create_media_nodes_table, DynamoMediaNodeStore, FleetIceServers, InMemoryMediaNodeStore,
    MediaNodeStore,
};
use tincan_media_routing::IceServerSource;
use tincan_signaling::IceServer;
use tincan_turn_credentials::TurnSecret;

const SECRET: &str = "fleet-test-secret";
const CREDENTIAL_TTL: u64 = 600;

fn ice(store: Arc<dyn MediaNodeStore>) -> FleetIceServers {
    FleetIceServers::new(store, TurnSecret::new(SECRET), CREDENTIAL_TTL)
}

/// The node a list of servers points at (`host:port` of its TURN URLs),
/// after checking the credential is ours, fresh and for `user`.
fn node_of(servers: &[IceServer], user: &str, now: u64) -> Option<String> {
    let turn = servers.iter().find(|s| s.username.is_some())?;
    let username = turn.username.as_deref()?;
    let password = turn.credential.as_deref()?;
    assert_eq!(
        TurnSecret::new(SECRET).verify(username, password, now),
        Ok(user)
    );
    assert_eq!(username, format!("{}:{user}", now + CREDENTIAL_TTL));
    let url = turn.urls.first()?;
    let host_port = url.strip_prefix("turn:")?.split('?').next()?.to_owned();
    assert!(
        servers
            .iter()
            .any(|s| s.urls == [format!("stun:{host_port}")]),
        "STUN on the same node: {servers:?}"
    );
    Some(host_port)
}

/// Every node's TURN address is `127.0.0.{1 + id length}:3478`.
fn addr(id: &str) -> String {
    node(id, 0, 0.0).turn_addr
}

async fn three_nodes(store: &dyn MediaNodeStore, now: u64) {
    for info in [
        node("busy", 40, 30.0),
        node("quiet", 2, 3.0),
        node("middling", 10, 9.0),
    ] {
        store.heartbeat(info, now, TTL).await.expect("heartbeat");
    }
}

async fn joins_go_to_the_least_loaded_and_stay(store: Arc<dyn MediaNodeStore>) {
    let t = 1_000;
    let fleet = ice(Arc::clone(&store));
    assert!(
        fleet.ice_servers("u1", "early", t).await.is_empty(),
        "no node: no servers, peers try direct"
    );
    three_nodes(store.as_ref(), t).await;

    let servers = fleet.ice_servers("u1", "standup", t).await;
    assert_eq!(node_of(&servers, "u1", t), Some(addr("quiet")));
    assert_eq!(servers.len(), 2);
    assert_eq!(
        servers[1].urls,
        [
            format!("turn:{}?transport=udp", addr("quiet")),
            format!("turn:{}?transport=tcp", addr("quiet"))
        ]
    );

    // quiet fills up. New rooms go to middling; standup's next joiner
    // still lands on quiet, with the peers already there.
    store
        .heartbeat(node("quiet", 80, 50.0), t + 10, TTL)
        .await
        .expect("hb");
    let later = fleet.ice_servers("u2", "retro", t + 10).await;
    assert_eq!(node_of(&later, "u2", t + 10), Some(addr("middling")));
    let joiner = fleet.ice_servers("u3", "standup", t + 10).await;
    assert_eq!(node_of(&joiner, "u3", t + 10), Some(addr("quiet")));

    // No room: the least-loaded node (for GET /turn-credentials).
    let any = fleet.ice_servers_any_node("u4", t + 10).await;
    assert_eq!(node_of(&any, "u4", t + 10), Some(addr("middling")));
}

async fn draining_and_silent_nodes_get_no_rooms(store: Arc<dyn MediaNodeStore>) {
    let t = 100_000;
    let fleet = ice(Arc::clone(&store));
    three_nodes(store.as_ref(), t).await;
    assert_eq!(
        node_of(&fleet.ice_servers("u1", "a", t).await, "u1", t),
        Some(addr("quiet"))
    );
    store.set_draining("quiet", t + 1).await.expect("drain");
    // Room a moves off the draining node; new rooms never go there.
    for room in ["a", "b", "c"] {
        let servers = fleet.ice_servers("u1", room, t + 1).await;
        assert_eq!(node_of(&servers, "u1", t + 1), Some(addr("middling")));
    }
    // middling goes silent: only busy keeps heartbeating.
    store
        .heartbeat(node("busy", 40, 30.0), t + 20, TTL)
        .await
        .expect("hb");
    let silent = t + TTL + 1;
    for room in ["a", "d"] {
        let servers = fleet.ice_servers("u2", room, silent).await;
        assert_eq!(node_of(&servers, "u2", silent), Some(addr("busy")));
    }
    // busy drains too: nobody left to relay.
    store.set_draining("busy", silent).await.expect("drain");
    assert!(fleet.ice_servers("u2", "a", silent).await.is_empty());
    assert!(fleet.ice_servers_any_node("u2", silent).await.is_empty());
}

async fn transports_follow_what_the_node_offers(store: Arc<dyn MediaNodeStore>) {
    let t = 200_000;
    let mut udp_only = node("udp-only", 0, 0.0);
    udp_only.tcp = false;
    store.heartbeat(udp_only, t, TTL).await.expect("hb");
    let servers = ice(store).ice_servers("u", "r", t).await;
    assert_eq!(
        servers[1].urls,
        [format!("turn:{}?transport=udp", addr("udp-only"))]
    );
}

async fn turns_is_listed_when_the_node_serves_tls(store: Arc<dyn MediaNodeStore>) {
    let t = 300_000;
    let fleet = ice(Arc::clone(&store));
    // Without TLS: no `turns:` anywhere.
    store
        .heartbeat(node("plain", 0, 0.0), t, TTL)
        .await
        .expect("hb");
    let plain = fleet.ice_servers("u", "plain-room", t).await;
    assert_eq!(node_of(&plain, "u", t), Some(addr("plain")));
    assert!(
        plain
            .iter()
            .flat_map(|s| &s.urls)
            .all(|u| !u.starts_with("turns:")),
        "{plain:?}"
    );
    store.remove("plain").await.expect("remove");

    // With TLS (and no plain TCP): `turns:` after the `turn:` URL, in the
    // same entry, so with the same credential.
    let mut tls = node("tls", 0, 0.0);
    tls.tcp = false;
    tls.turns_addr = Some("turn-1.example.com:443".into());
    store.heartbeat(tls, t, TTL).await.expect("hb");
    for servers in [
        fleet.ice_servers("u", "tls-room", t).await,
        fleet.ice_servers_any_node("u", t).await,
        fleet.ice_servers_for("u", None, t).await,
    ] {
        assert_eq!(node_of(&servers, "u", t), Some(addr("tls")));
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(
            servers[1].urls,
            [
                format!("turn:{}?transport=udp", addr("tls")),
                "turns:turn-1.example.com:443?transport=tcp".to_owned(),
            ]
        );
    }
}

#[tokio::test]
async fn in_memory_fleet() {
    let store: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
    joins_go_to_the_least_loaded_and_stay(Arc::clone(&store)).await;
    draining_and_silent_nodes_get_no_rooms(Arc::clone(&store)).await;
    transports_follow_what_the_node_offers(Arc::clone(&store)).await;
    turns_is_listed_when_the_node_serves_tls(store).await;
}

#[tokio::test]
async fn dynamo_fleet() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let (_moto, endpoint): (MotoServer, String) =
            MotoServer::start().await.expect("moto starts");
        let client = testing::dynamo_client(&endpoint);
        let table = testing::unique_table_name("media-nodes");
        create_media_nodes_table(&client, &table)
            .await
            .expect("table");
        let store: Arc<dyn MediaNodeStore> = Arc::new(DynamoMediaNodeStore::new(client, table));
        joins_go_to_the_least_loaded_and_stay(Arc::clone(&store)).await;
        draining_and_silent_nodes_get_no_rooms(Arc::clone(&store)).await;
        transports_follow_what_the_node_offers(Arc::clone(&store)).await;
        turns_is_listed_when_the_node_serves_tls(store).await;
    })
    .await
    .expect("finished in time");
}

/// A store that is down: no servers (logged), no error to the joiner.
#[tokio::test]
async fn a_store_that_is_down_means_no_servers() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let store = DynamoMediaNodeStore::new(testing::dynamo_client(&refused), "media-nodes");
    let servers = tokio::time::timeout(
        Duration::from_secs(15),
        ice(Arc::new(store)).ice_servers("u", "r", 1),
    )
    .await
    .expect("bounded");
    assert!(servers.is_empty());
}

/// With no node alive, the configured TURN address is handed out (as the
/// templates promise), in `joined` and for `GET /turn-credentials`.
#[tokio::test]
async fn no_live_node_means_the_fallback_address() {
    let store: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
    let fleet = ice(Arc::clone(&store)).with_fallback("turn.example.test:3478");
    let t = 5_000;
    for servers in [
        fleet.ice_servers("u", "room", t).await,
        fleet.ice_servers_any_node("u", t).await,
        fleet.ice_servers_for("u", Some("room"), t).await,
        fleet.ice_servers_for("u", None, t).await,
    ] {
        assert_eq!(
            node_of(&servers, "u", t).as_deref(),
            Some("turn.example.test:3478")
        );
    }
    // A node comes up: it wins over the fallback.
    store
        .heartbeat(node("up", 1, 1.0), t, TTL)
        .await
        .expect("hb");
    let servers = fleet.ice_servers_for("u", None, t).await;
    assert_eq!(node_of(&servers, "u", t), Some(addr("up")));
    // A registry that is down: the fallback too.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let down = DynamoMediaNodeStore::new(testing::dynamo_client(&refused), "media-nodes");
    let servers = tokio::time::timeout(
        Duration::from_secs(15),
        ice(Arc::new(down))
            .with_fallback("turn.example.test:3478")
            .ice_servers_for("u", Some("r"), t),
    )
    .await
    .expect("bounded");
    assert_eq!(
        node_of(&servers, "u", t).as_deref(),
        Some("turn.example.test:3478")
    );
}

/// `ice_servers_for` (the HTTP API's lookup) names the caller's room's node,
/// and writes no assignment.
#[tokio::test]
async fn the_http_lookup_follows_the_room_and_writes_nothing() {
    let store: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
    let fleet = ice(Arc::clone(&store));
    let t = 7_000;
    three_nodes(store.as_ref(), t).await;
    // The room is placed by a join on quiet; then quiet gets busy.
    let joined = fleet.ice_servers("u1", "standup", t).await;
    assert_eq!(node_of(&joined, "u1", t), Some(addr("quiet")));
    store
        .heartbeat(node("quiet", 80, 50.0), t + 1, TTL)
        .await
        .expect("hb");
    let in_room = fleet.ice_servers_for("u2", Some("standup"), t + 1).await;
    assert_eq!(node_of(&in_room, "u2", t + 1), Some(addr("quiet")));
    let no_room = fleet.ice_servers_for("u2", None, t + 1).await;
    assert_eq!(node_of(&no_room, "u2", t + 1), Some(addr("middling")));
    let unplaced = fleet.ice_servers_for("u2", Some("elsewhere"), t + 1).await;
    assert_eq!(node_of(&unplaced, "u2", t + 1), Some(addr("middling")));
    assert_eq!(
        store.room_node("elsewhere", t + 1).await.expect("read"),
        None,
        "read-only"
    );
}
