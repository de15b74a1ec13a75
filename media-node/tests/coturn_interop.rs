//! Interop with an independent TURN implementation: coturn's
//! `turnutils_uclient` allocates on our node with TURN REST API credentials
//! and relays audio-sized packets to `turnutils_peer`, over UDP and TCP, with
//! no loss on loopback.

mod support;

use std::time::Duration;

use support::*;

const CLIENTS: u64 = 4;
const MESSAGES: u64 = 40;

async fn relay_without_loss(transport_flags: &[&str]) {
    require_coturn_tools();
    let node = start_node().await;
    assert_uclient_relays_without_loss(node.udp_addr(), transport_flags, CLIENTS, MESSAGES).await;

    let m = node.metrics();
    assert!(m.allocations_total >= CLIENTS, "{m:?}");
    assert!(m.peer_packets_out >= CLIENTS * MESSAGES, "{m:?}");
    assert!(m.peer_packets_in >= CLIENTS * MESSAGES, "{m:?}");
    assert_eq!(m.auth_failures(), 0, "{m:?}");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_udp_without_loss() {
    relay_without_loss(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tcp_without_loss() {
    relay_without_loss(&["-t"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_with_a_wrong_password_cannot_allocate() {
    require_coturn_tools();
    let node = start_node().await;
    let peer = EchoPeer::start().await.expect("peer");
    let cred = secret().mint("mallory", now(), 600);
    let peer_port = peer.addr.port().to_string();
    let report = run_uclient(
        node.udp_addr(),
        &cred.username,
        "d3JvbmcgcGFzc3dvcmQ=",
        &["-e", "127.0.0.1", "-r", &peer_port, "-n", "3", "-c"],
        Duration::from_secs(60),
    )
    .await
    .expect("uclient ran");
    assert!(
        !report.success,
        "allocated with a wrong password:\n{}",
        report.output
    );
    let m = node.metrics();
    assert_eq!(m.allocations_total, 0, "{m:?}");
    assert!(m.auth_failures_bad_integrity >= 1, "{m:?}");
    node.shutdown().await.expect("shutdown");
}
