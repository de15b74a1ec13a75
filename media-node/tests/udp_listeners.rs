//! The UDP listener as several sockets on one port, and the socket buffer
//! sizes asked of the kernel: applied, validated, and every client still
//! served end to end wherever the kernel routes it.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tincan_media_node::{ConfigError, MediaNodeConfig, MediaNodeError, MAX_UDP_LISTENERS};
use tokio::net::UdpSocket;

#[tokio::test]
async fn clients_spread_over_several_udp_listeners_all_relay_both_ways() {
    let node = start_node_with(|c| {
        c.udp_listeners = 4;
        c.tcp = false;
    })
    .await;
    assert_eq!(node.udp_listeners(), 4);
    let peer = UdpSocket::bind((LOCALHOST, 0)).await.expect("peer");
    let peer_addr = peer.local_addr().expect("addr");

    // Each client has its own port, so the kernel spreads them over the
    // four sockets; each must find its allocation on every packet.
    let mut clients = Vec::new();
    for i in 0..12 {
        let mut client = TurnClient::for_user(node.udp_addr(), &format!("user-{i}")).await;
        let relay = client.allocate().await.expect("reply").expect("allocated");
        assert!(matches!(
            client.create_permission(peer_addr).await.expect("reply"),
            Outcome::Ok(_)
        ));
        clients.push((client, relay));
    }
    assert_eq!(node.allocations(), 12);

    let mut buf = [0u8; 64];
    for (i, (client, relay)) in clients.iter().enumerate() {
        let out = format!("out-{i}");
        client
            .send_to_peer(peer_addr, out.as_bytes())
            .await
            .expect("send");
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf))
            .await
            .expect("peer got data")
            .expect("recv");
        assert_eq!((&buf[..n], from), (out.as_bytes(), *relay));

        let back = format!("back-{i}");
        peer.send_to(back.as_bytes(), relay).await.expect("send");
        let (from, data) = client
            .recv_data(Duration::from_secs(2))
            .await
            .expect("client got data");
        assert_eq!((from, data), (peer_addr, back.into_bytes()));
    }
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_configured_udp_buffer_is_applied_to_the_listener() {
    // Under Linux's default maximum (208 KiB), so the kernel grants it all
    // (and reports twice as much).
    let asked = 100_000;
    let node = start_node_with(|c| c.udp_buffer_bytes = asked).await;
    let (receive, send) = node.udp_buffer_sizes();
    assert!(receive >= asked && send >= asked, "{receive} {send}");

    // 0 keeps the kernel's default, whatever it is: what a plain socket gets.
    let plain = std::net::UdpSocket::bind((LOCALHOST, 0)).expect("bind");
    let default = socket_buffers(&plain);
    let node_default = start_node_with(|c| c.udp_buffer_bytes = 0).await;
    assert_eq!(node_default.udp_buffer_sizes(), default);

    node.shutdown().await.expect("shutdown");
    node_default.shutdown().await.expect("shutdown");
}

/// SO_RCVBUF and SO_SNDBUF of `socket`, as the kernel reports them.
fn socket_buffers(socket: &std::net::UdpSocket) -> (usize, usize) {
    let socket = socket2::SockRef::from(socket);
    (
        socket.recv_buffer_size().expect("SO_RCVBUF"),
        socket.send_buffer_size().expect("SO_SNDBUF"),
    )
}

#[tokio::test]
async fn out_of_range_udp_settings_are_refused_at_start() {
    let start = |tweak: fn(&mut MediaNodeConfig)| async move {
        let mut config = MediaNodeConfig::new(secret()).with_listen(SocketAddr::new(LOCALHOST, 0));
        tweak(&mut config);
        tincan_media_node::start(config).await.map(|_| ())
    };
    for (tweak, want) in [
        (
            (|c: &mut MediaNodeConfig| c.udp_listeners = 0) as fn(&mut MediaNodeConfig),
            ConfigError::UdpListeners(0),
        ),
        (
            |c| c.udp_listeners = MAX_UDP_LISTENERS + 1,
            ConfigError::UdpListeners(MAX_UDP_LISTENERS + 1),
        ),
        (
            |c| c.udp_buffer_bytes = (1 << 30) + 1,
            ConfigError::UdpBuffer((1 << 30) + 1),
        ),
    ] {
        match start(tweak).await {
            Err(MediaNodeError::Config(got)) => assert_eq!(got, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_second_node_cannot_share_a_taken_turn_port() {
    // The UDP listeners allow SO_REUSEPORT among themselves; the TCP
    // listener on the same port does not, so a second node (same user,
    // same port) fails to start instead of taking half the clients.
    let node = start_node_with(|c| c.udp_listeners = 2).await;
    let mut config = MediaNodeConfig::new(secret())
        .with_listen(SocketAddr::new(LOCALHOST, node.udp_addr().port()));
    config.udp_listeners = 2;
    match tincan_media_node::start(config).await {
        Err(MediaNodeError::Bind { .. }) => {}
        other => panic!("a second node started on a taken port: {other:?}"),
    }
    node.shutdown().await.expect("shutdown");
}
