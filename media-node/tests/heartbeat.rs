//! The fleet heartbeat against DynamoDB (moto on loopback): a real node
//! registers itself with its address and load, the signaling side places a
//! room on it, and once it drains it gets no new rooms and, stopped, drops
//! out.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use support::{now, secret, start_node, start_node_with, TurnClient, LOCALHOST};
use tincan_aws::testing::{self, MotoServer};
use tincan_fleet::{
    create_media_nodes_table, DynamoMediaNodeStore, FleetIceServers, InMemoryMediaNodeStore,
    MediaNodeStore, NodeRecord, NodeState,
};
use tincan_media_node::heartbeat::{self, HeartbeatConfig, TlsName};
use tincan_media_routing::IceServerSource;

const NODE_ID: &str = "test-node-1";

/// Polls `store` until this node's record satisfies `want` (at most 10 s).
async fn wait_for(
    store: &dyn MediaNodeStore,
    what: &str,
    want: impl Fn(Option<&NodeRecord>) -> bool,
) -> Option<NodeRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = store.list_alive(now()).await.expect("list");
        let record = nodes.into_iter().find(|n| n.info.id == NODE_ID);
        if want(record.as_ref()) {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registers_reports_load_and_drains() {
    bounded(async {
        let (_moto, endpoint): (MotoServer, String) =
            MotoServer::start().await.expect("moto starts");
        let client = testing::dynamo_client(&endpoint);
        let table = testing::unique_table_name("media-nodes");
        create_media_nodes_table(&client, &table)
            .await
            .expect("table");
        let store: Arc<dyn MediaNodeStore> = Arc::new(DynamoMediaNodeStore::new(client, table));

        let node = Arc::new(start_node().await);
        let beat = heartbeat::spawn(
            Arc::clone(&node),
            Arc::clone(&store),
            HeartbeatConfig::new(NODE_ID, "test-region", Duration::from_millis(200))
                .with_ttl_secs(30),
        );

        // It appears, describing itself.
        let record = wait_for(store.as_ref(), "registration", |r| r.is_some())
            .await
            .expect("registered");
        assert_eq!(record.info.turn_addr, node.public_addr().to_string());
        assert_eq!(record.info.region, "test-region");
        assert!(record.info.udp && record.info.tcp);
        assert_eq!(
            (record.info.relay_port_min, record.info.relay_port_max),
            node.relay_ports()
        );
        assert_eq!(record.info.state, NodeState::Active);
        assert_eq!(record.info.load.allocations, 0);
        assert_eq!(record.info.load.sfu_participants, 0);
        assert_eq!(
            record.info.sfu_control,
            node.sfu_control_addr().map(|a| format!("http://{a}")),
            "the SFU control URL"
        );
        assert_eq!(record.expires_at - record.heartbeat_at, 30);

        // The signaling side places rooms on it.
        let fleet = FleetIceServers::new(Arc::clone(&store), secret(), 600);
        let servers = fleet.ice_servers("alice", "standup", now()).await;
        assert!(
            servers
                .iter()
                .any(|s| s.urls.contains(&format!("stun:{}", node.public_addr()))),
            "{servers:?}"
        );

        // An allocation shows up as load.
        let mut client = TurnClient::for_user(node.udp_addr(), "alice").await;
        client.allocate().await.expect("reply").expect("allocated");
        wait_for(store.as_ref(), "one allocation", |r| {
            r.is_some_and(|r| r.info.load.allocations == 1)
        })
        .await;

        // Draining: the next beat (forced now) says so, and no room is
        // placed here any more.
        node.drain();
        beat.beat_now();
        wait_for(store.as_ref(), "draining", |r| {
            r.is_some_and(|r| r.info.state == NodeState::Draining)
        })
        .await;
        assert!(fleet.ice_servers("bob", "retro", now()).await.is_empty());
        assert!(fleet.ice_servers("bob", "standup", now()).await.is_empty());

        // Stopped and deregistered: gone at once.
        beat.stop(true).await;
        let nodes = store.list_alive(now()).await.expect("list");
        assert!(nodes.is_empty(), "{nodes:?}");
        node.shutdown().await.expect("shutdown");
    })
    .await;
}

/// A node serving TURN over TLS, with a self-signed certificate for
/// `localhost` (the temporary directory holding it goes with the node).
async fn start_tls_node() -> (tincan_media_node::MediaNode, tempfile::TempDir) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let node = start_node_with(|c| {
        c.tls_listen = Some(std::net::SocketAddr::new(LOCALHOST, 0));
        c.tls_cert_path = Some(cert);
        c.tls_key_path = Some(key);
    })
    .await;
    (node, dir)
}

/// The `turns_addr` a node with `config` publishes.
async fn published_turns_addr(
    node: tincan_media_node::MediaNode,
    config: HeartbeatConfig,
) -> Option<String> {
    let store: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
    let node = Arc::new(node);
    let beat = heartbeat::spawn(Arc::clone(&node), Arc::clone(&store), config);
    let record = wait_for(store.as_ref(), "registration", |r| r.is_some())
        .await
        .expect("registered");
    beat.stop(true).await;
    node.shutdown().await.expect("shutdown");
    record.info.turns_addr
}

/// A node with TLS and a name for it publishes `turns_addr` (the name and
/// the TLS port, or the port given with the name), and the fleet hands out
/// `turns:` for it; without either, none.
#[tokio::test]
async fn a_tls_node_with_a_name_publishes_turns_addr() {
    bounded(async {
        let config = || HeartbeatConfig::new(NODE_ID, "r", Duration::from_millis(100));
        let name = |text: &str| text.parse::<TlsName>().expect("a TLS name");

        let (node, _cert) = start_tls_node().await;
        let tls_port = node.tls_addr().expect("TLS on").port();
        let store: Arc<dyn MediaNodeStore> = Arc::new(InMemoryMediaNodeStore::new());
        let node = Arc::new(node);
        let beat = heartbeat::spawn(
            Arc::clone(&node),
            Arc::clone(&store),
            config().with_tls_name(name("localhost")),
        );
        let record = wait_for(store.as_ref(), "registration", |r| r.is_some())
            .await
            .expect("registered");
        assert_eq!(
            record.info.turns_addr,
            Some(format!("localhost:{tls_port}"))
        );
        let fleet = FleetIceServers::new(Arc::clone(&store), secret(), 600);
        let servers = fleet.ice_servers("alice", "standup", now()).await;
        let turn = servers
            .iter()
            .find(|s| s.username.is_some())
            .expect("TURN entry");
        assert_eq!(
            turn.urls.last(),
            Some(&format!("turns:localhost:{tls_port}?transport=tcp")),
            "{servers:?}"
        );
        beat.stop(true).await;
        node.shutdown().await.expect("shutdown");

        // A port given with the name (a load balancer's) wins.
        let (node, _cert) = start_tls_node().await;
        assert_eq!(
            published_turns_addr(node, config().with_tls_name(name("localhost:443"))).await,
            Some("localhost:443".to_owned())
        );
        // TLS without a name: nothing to advertise.
        let (node, _cert) = start_tls_node().await;
        assert_eq!(published_turns_addr(node, config()).await, None);
        // A name without TLS: nothing either.
        let node = start_node().await;
        assert_eq!(
            published_turns_addr(node, config().with_tls_name(name("localhost"))).await,
            None
        );
    })
    .await;
}

/// A heartbeat into a store that is down keeps the node running and
/// recovers by itself; here it simply must not panic or block `stop`.
#[tokio::test]
async fn a_store_that_is_down_does_not_stop_the_node() {
    bounded(async {
        let refused = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", listener.local_addr().expect("addr"))
        };
        let store: Arc<dyn MediaNodeStore> = Arc::new(DynamoMediaNodeStore::new(
            testing::dynamo_client(&refused),
            "media-nodes",
        ));
        let node = Arc::new(start_node().await);
        let beat = heartbeat::spawn(
            Arc::clone(&node),
            store,
            HeartbeatConfig::new(NODE_ID, "r", Duration::from_millis(100)),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut client = TurnClient::for_user(node.udp_addr(), "carol").await;
        assert!(client.allocate().await.expect("reply").is_ok());
        beat.stop(true).await;
        node.shutdown().await.expect("shutdown");
    })
    .await;
}

/// The `tincan-media-node` binary with `TINCAN_MEDIA_NODES_TABLE`: it
/// registers, and on SIGTERM reports draining while an allocation runs out,
/// then deregisters and exits.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_heartbeats_and_drains_on_sigterm() {
    bounded(async {
        let (_moto, endpoint): (MotoServer, String) =
            MotoServer::start().await.expect("moto starts");
        let client = testing::dynamo_client(&endpoint);
        let table = testing::unique_table_name("media-nodes");
        create_media_nodes_table(&client, &table)
            .await
            .expect("table");
        let store = DynamoMediaNodeStore::new(client, table.clone());

        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tincan-media-node"))
            .env("TINCAN_TURN_ADDR", "127.0.0.1:0")
            .env("TINCAN_METRICS_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_CONTROL_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_UDP_PORT", "0")
            .env("TINCAN_TURN_SECRET", support::SECRET)
            .env("TINCAN_SFU_CONTROL_SECRET", support::CONTROL_SECRET)
            .env("TINCAN_MEDIA_NODES_TABLE", &table)
            .env("DYNAMODB_ENDPOINT", &endpoint)
            .env("TINCAN_NODE_ID", NODE_ID)
            .env("TINCAN_REGION", "eu-test-1")
            .env("TINCAN_HEARTBEAT_SECS", "1")
            .env("TINCAN_DRAIN_GRACE_SECS", "2")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_PROFILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the binary");

        let record = wait_for(&store, "registration", |r| r.is_some())
            .await
            .expect("registered");
        assert_eq!(record.info.region, "eu-test-1");
        assert_eq!(record.info.state, NodeState::Active);
        assert_eq!(record.expires_at - record.heartbeat_at, 3);
        let turn_addr = record.info.turn_addr.parse().expect("a socket address");

        // Hold an allocation so the drain has something to wait for.
        let mut client = TurnClient::for_user(turn_addr, "dave").await;
        client.allocate().await.expect("reply").expect("allocated");

        let pid = child.id().expect("running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        wait_for(&store, "draining", |r| {
            r.is_some_and(|r| r.info.state == NodeState::Draining && r.info.load.allocations == 1)
        })
        .await;

        // After the grace period: exits cleanly and deregisters.
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("exits after the drain grace")
            .expect("wait");
        assert!(status.success(), "{status}");
        let nodes = store.list_alive(now()).await.expect("list");
        assert!(nodes.is_empty(), "{nodes:?}");
    })
    .await;
}

/// The binary refuses a `TINCAN_TURN_TLS_NAME` that is not a DNS name, or
/// that names no TLS listener, at start-up rather than advertising nothing.
#[tokio::test]
async fn the_binary_refuses_a_bad_or_useless_tls_name() {
    bounded(async {
        for (name, why) in [
            ("203.0.113.5", "IP address"),
            ("turn example.com", "not a DNS name"),
            ("localhost", "needs TINCAN_TURN_TLS_ADDR"),
        ] {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tincan-media-node"))
                .env("TINCAN_TURN_ADDR", "127.0.0.1:0")
                .env("TINCAN_METRICS_ADDR", "127.0.0.1:0")
                .env("TINCAN_SFU_CONTROL_ADDR", "127.0.0.1:0")
                .env("TINCAN_SFU_UDP_PORT", "0")
                .env("TINCAN_TURN_SECRET", support::SECRET)
                .env("TINCAN_SFU_CONTROL_SECRET", support::CONTROL_SECRET)
                .env("TINCAN_TURN_TLS_NAME", name)
                .env_remove("TINCAN_TURN_TLS_ADDR")
                .env_remove("TINCAN_TURN_TLS_CERT")
                .env_remove("TINCAN_TURN_TLS_KEY")
                .env_remove("TINCAN_MEDIA_NODES_TABLE")
                .kill_on_drop(true)
                .output()
                .await
                .expect("run the binary");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}: {stderr}");
            assert!(stderr.contains(why), "{name}: {stderr}");
        }
    })
    .await;
}

/// TLS on without `TINCAN_TURN_TLS_NAME`: the binary runs, and says at
/// start-up why it advertises no `turns:`.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_logs_why_it_advertises_no_turns() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    bounded(async {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tincan-media-node"))
            .env("TINCAN_TURN_ADDR", "127.0.0.1:0")
            .env("TINCAN_METRICS_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_CONTROL_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_UDP_PORT", "0")
            .env("TINCAN_TURN_SECRET", support::SECRET)
            .env("TINCAN_SFU_CONTROL_SECRET", support::CONTROL_SECRET)
            .env("TINCAN_TURN_TLS_ADDR", "127.0.0.1:0")
            .env("TINCAN_TURN_TLS_CERT", &cert)
            .env("TINCAN_TURN_TLS_KEY", &key)
            .env_remove("TINCAN_TURN_TLS_NAME")
            .env_remove("TINCAN_MEDIA_NODES_TABLE")
            .env_remove("TINCAN_LOG_JSON")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the binary");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("TINCAN_TURN_TLS_NAME is unset") {
                    return true;
                }
                seen.push(line);
            }
            false
        })
        .await;
        child.kill().await.expect("kill");
        assert_eq!(found, Ok(true), "{seen:?}");
    })
    .await;
}
