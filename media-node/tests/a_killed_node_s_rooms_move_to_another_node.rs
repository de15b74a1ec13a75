//! A media node dies in the middle of a call: two nodes heartbeat into the
//! fleet registry, a room is placed on one, a caller relays through it, and
//! the node is killed (its heartbeat and its sockets gone, no
//! deregistration, as in a crash). Once its record's TTL lapses, the room's
//! TURN servers, as `GET /turn-credentials?room=` ([`FleetIceServers::
//! ice_servers_for`]) and a rejoin's `joined.iceServers` ([`IceServerSource`])
//! give them, name the other node, and a TURN client with those credentials
//! allocates and relays through it. Prints the recovery time: from the kill
//! to the first packet relayed through the other node. The heartbeat here is
//! 250 ms with a 2 s TTL, so the test takes seconds; recovery is bounded by
//! the TTL (3 heartbeats: 30 s with the default `TINCAN_HEARTBEAT_SECS=10`).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{now, two_node_fleet, TurnClient, TwoNodeFleet, LOCALHOST};
use tincan_media_routing::IceServerSource;
use tokio::net::UdpSocket;

const ROOM: &str = "standup";
const USER: &str = "user-1";
/// Whole seconds (records expire on whole seconds): at least one more
/// than the heartbeat interval, or a live node blinks out between beats.
const TTL_SECS: u64 = 2;
/// The most the whole test may take.
const LIMIT: Duration = Duration::from_secs(60);

/// The TURN server (UDP) and credential in the ICE servers `servers` (a
/// macro, to name no type of the signaling crate).
macro_rules! turn_of {
    ($servers:expr) => {{
        let servers = $servers;
        let server = servers
            .iter()
            .find(|s| s.username.is_some())
            .expect("a TURN server");
        let url = server
            .urls
            .iter()
            .find(|u| u.starts_with("turn:") && u.ends_with("?transport=udp"))
            .expect("a turn: UDP URL");
        let addr: SocketAddr = url["turn:".len()..url.len() - "?transport=udp".len()]
            .parse()
            .expect("host:port");
        (
            addr,
            server.username.clone().unwrap(),
            server.credential.clone().unwrap(),
        )
    }};
}

/// A UDP peer that echoes every datagram.
async fn echo_peer() -> SocketAddr {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// Allocates on `server` and relays `payload` to `peer` and back: `Ok` once
/// the echo comes back through the relay.
async fn relay_once(
    server: SocketAddr,
    username: &str,
    password: &str,
    peer: SocketAddr,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut client = TurnClient::new(server, username, password).await;
    let relayed = tokio::time::timeout(Duration::from_secs(2), client.allocate())
        .await??
        .map_err(|code| anyhow::anyhow!("allocate refused: {code}"))?;
    anyhow::ensure!(relayed.ip() == server.ip(), "relayed on {relayed}");
    let permitted = client.create_permission(peer).await?;
    anyhow::ensure!(permitted.code().is_none(), "permission: {permitted:?}");
    client.send_to_peer(peer, payload).await?;
    match client.recv_data(Duration::from_secs(1)).await {
        Some((from, data)) if from == peer && data == payload => Ok(()),
        other => anyhow::bail!("no echo through {server}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_room_moves_to_the_other_node_within_its_ttl() {
    tokio::time::timeout(LIMIT, async {
        let TwoNodeFleet {
            store,
            nodes: [a, b],
            mut beats,
            fleet,
        } = two_node_fleet(TTL_SECS).await;
        let peer = echo_peer().await;

        // The room lands on a node (equal load: the smaller id), and the
        // call relays through it.
        let (first, user, pass) = turn_of!(fleet.ice_servers(USER, ROOM, now()).await);
        let (dead, alive, dead_index, alive_id) = if first == a.udp_addr() {
            (a, b, 0, "node-b")
        } else {
            assert_eq!(first, b.udp_addr());
            (b, a, 1, "node-a")
        };
        relay_once(first, &user, &pass, peer, b"before")
            .await
            .expect("relays through the room's node");

        // The node dies: no more heartbeats, no deregistration, no sockets.
        let killed = Instant::now();
        drop(beats[dead_index].take());
        dead.shutdown().await.expect("node stops");
        drop(dead);

        // Until its record lapses, the registry still names it; then
        // `/turn-credentials?room=` names the other node.
        let moved_after = loop {
            let servers = fleet.ice_servers_for(USER, Some(ROOM), now()).await;
            if turn_of!(&servers).0 == alive.udp_addr() {
                break killed.elapsed();
            }
            assert_eq!(turn_of!(&servers).0, first, "a node nobody runs");
            assert!(
                killed.elapsed() < Duration::from_secs(TTL_SECS + 3),
                "the room stayed on the dead node {:?} after its TTL",
                killed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // A rejoin is placed on the live node and its credentials work there.
        let (server, user, pass) = turn_of!(fleet.ice_servers(USER, ROOM, now()).await);
        assert_eq!(server, alive.udp_addr());
        let mut attempts = 0;
        loop {
            attempts += 1;
            match relay_once(server, &user, &pass, peer, b"after").await {
                Ok(()) => break,
                Err(err) => assert!(attempts < 5, "no relay through {server}: {err}"),
            }
        }
        let recovered = killed.elapsed();
        // The room's assignment moved too: later joiners follow.
        let assigned = store.room_node(ROOM, now()).await.unwrap().unwrap();
        assert_eq!(assigned.node_id, alive_id);
        // Figures for the record, not assertions.
        eprintln!(
            "media node killed: credentials name the other node {moved_after:?} after the kill, \
             first packet relayed through it {recovered:?} after (heartbeat 250 ms, TTL {TTL_SECS} s)"
        );
    })
    .await
    .expect("finished in time");
}
