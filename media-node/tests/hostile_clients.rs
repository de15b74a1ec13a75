//! Hostile and careless clients against a real node on loopback: the node
//! fails safe as coturn does by default (issue 10).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use stun::message::METHOD_CHANNEL_BIND;
use support::*;
use tincan_media_node::{ConfigError, MediaNodeConfig, MediaNodeError, PeerFilter, TurnSecret};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use turn::proto::channum::ChannelNumber;
use turn::proto::peeraddr::PeerAddress;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[tokio::test]
async fn a_default_node_refuses_private_peers_with_403_and_grants_public_ones() {
    // The default filter: loopback is denied too.
    let node = start_node_with(|c| c.peers = PeerFilter::default()).await;
    let mut client = TurnClient::for_user(node.udp_addr(), "mallory").await;
    client.allocate().await.expect("reply").expect("allocated");
    for denied in [
        "127.0.0.1:9",
        "10.1.2.3:9",
        "169.254.169.254:80",
        "192.168.1.1:9",
    ] {
        let outcome = client.create_permission(addr(denied)).await.expect("reply");
        assert_eq!(outcome.code(), Some(403), "{denied}");
    }
    let bind = client
        .request(
            METHOD_CHANNEL_BIND,
            vec![
                Box::new(ChannelNumber(0x4000)),
                Box::new(PeerAddress {
                    ip: "10.1.2.3".parse().expect("ip"),
                    port: 9,
                }),
            ],
        )
        .await
        .expect("reply");
    assert_eq!(bind.code(), Some(403), "ChannelBind to a private peer");
    // Public peers: permission granted (nothing is sent to them).
    for public in ["203.0.113.5:9", "8.8.8.8:53"] {
        let outcome = client.create_permission(addr(public)).await.expect("reply");
        assert!(matches!(outcome, Outcome::Ok(_)), "{public}: {outcome:?}");
    }
    assert_eq!(node.metrics().peer_denials, 5);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_closed_tcp_connection_takes_its_allocation_with_it() {
    let node = start_node().await;
    let server = node.tcp_addr().expect("TCP on");
    let mut client = TurnClient::over_tcp(server, "alice").await;
    client.allocate().await.expect("reply").expect("allocated");
    assert_eq!(node.allocations(), 1);
    client.close_tcp();
    assert!(
        node.drained(Duration::from_secs(5)).await,
        "allocation outlived its TCP connection"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed_and_deallocated() {
    let node = start_node_with(|c| c.tcp_idle_secs = 1).await;
    let server = node.tcp_addr().expect("TCP on");
    let mut client = TurnClient::over_tcp(server, "alice").await;
    client.allocate().await.expect("reply").expect("allocated");
    assert_eq!(node.allocations(), 1);
    // Keep the socket, say nothing.
    assert!(
        node.drained(Duration::from_secs(5)).await,
        "idle connection kept its allocation"
    );
    assert_eq!(node.metrics().tcp_timeouts, 1);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tcp_connections_per_address_are_capped() {
    let node = start_node_with(|c| c.max_tcp_connections_per_ip = 3).await;
    let server = node.tcp_addr().expect("TCP on");
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(TcpStream::connect(server).await.expect("connect"));
    }
    // Let the node count them, then one more is refused (closed at once).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(server).await.expect("connect");
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert_eq!(node.metrics().tcp_refused, 1);
    // A TURN client over one of the admitted connections still works.
    drop(kept);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut client = TurnClient::over_tcp(server, "alice").await;
    client.allocate().await.expect("reply").expect("allocated");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn one_user_holds_a_full_rooms_fourteen_allocations() {
    let node = start_node().await;
    let mut clients = Vec::new();
    for i in 0..14 {
        let mut client = TurnClient::for_user(node.udp_addr(), "relayed-user").await;
        let relay = client.allocate().await.expect("reply");
        assert!(relay.is_ok(), "allocation {i}: {relay:?}");
        clients.push(client);
    }
    assert_eq!(node.allocations(), 14);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn allocations_per_client_address_are_capped() {
    let node = start_node_with(|c| c.max_allocations_per_ip = 3).await;
    let mut clients = Vec::new();
    for user in ["free-1", "free-2", "free-3"] {
        let mut client = TurnClient::for_user(node.udp_addr(), user).await;
        client.allocate().await.expect("reply").expect("allocated");
        clients.push(client);
    }
    let mut fourth = TurnClient::for_user(node.udp_addr(), "free-4").await;
    assert_eq!(fourth.allocate().await.expect("reply"), Err(486));
    assert_eq!(node.metrics().ip_quota_rejections, 1);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_node_refuses_to_start_with_a_short_secret() {
    let config = MediaNodeConfig::new(TurnSecret::new("tincan-dev-turn-secret"))
        .with_listen(SocketAddr::new(LOCALHOST, 0));
    let err = tincan_media_node::start(config)
        .await
        .expect_err("a 22-byte secret");
    assert!(
        matches!(
            err,
            MediaNodeError::Config(ConfigError::WeakSecret { len: 22 })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[tokio::test]
async fn the_binary_refuses_to_start_without_strong_secrets() {
    let run = |secret: Option<&str>, control: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tincan-media-node"));
        cmd.env_remove("TINCAN_TURN_SECRET")
            .env_remove("TINCAN_SFU_CONTROL_SECRET")
            .env("TINCAN_TURN_ADDR", "127.0.0.1:0")
            .env("TINCAN_METRICS_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_CONTROL_ADDR", "127.0.0.1:0")
            .env("TINCAN_SFU_UDP_PORT", "0");
        if let Some(secret) = secret {
            cmd.env("TINCAN_TURN_SECRET", secret);
        }
        if let Some(control) = control {
            cmd.env("TINCAN_SFU_CONTROL_SECRET", control);
        }
        let out = cmd.output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(None, Some(CONTROL_SECRET));
    assert!(!ok);
    assert!(
        stderr.contains("TINCAN_TURN_SECRET") || stderr.contains("--turn-secret"),
        "{stderr}"
    );
    let (ok, stderr) = run(Some("short"), Some(CONTROL_SECRET));
    assert!(!ok);
    assert!(stderr.contains("at least 32"), "{stderr}");
    // The SFU's control secret is its own, as strong, and never the TURN
    // secret by default.
    let (ok, stderr) = run(Some(SECRET), None);
    assert!(!ok);
    assert!(stderr.contains("TINCAN_SFU_CONTROL_SECRET"), "{stderr}");
    let (ok, stderr) = run(Some(SECRET), Some("short"));
    assert!(!ok);
    assert!(
        stderr.contains("SFU control secret") && stderr.contains("at least 32"),
        "{stderr}"
    );
}
