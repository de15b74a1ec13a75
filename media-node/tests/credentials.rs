//! TURN REST API credentials at the wire: a hand-built STUN client (the
//! stun crate's messages over a real UDP socket) against a real node.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tincan_media_node::TurnSecret;

#[tokio::test]
async fn a_fresh_credential_allocates_a_relay_in_the_configured_range() {
    let node = start_node_with(|c| {
        c.relay_port_min = 42000;
        c.relay_port_max = 42999;
    })
    .await;
    let mut client = TurnClient::for_user(node.udp_addr(), "alice").await;
    let relay = client.allocate().await.expect("reply").expect("allocated");
    assert_eq!(relay.ip(), LOCALHOST);
    assert!((42000..=42999).contains(&relay.port()), "{relay}");
    assert_eq!(node.allocations(), 1);
    // Deallocate (lifetime 0): the node gives the relay back.
    assert!(matches!(
        client.refresh(Duration::ZERO).await.expect("reply"),
        Outcome::Ok(_)
    ));
    assert!(
        node.drained(Duration::from_secs(5)).await,
        "allocation not released"
    );
    node.shutdown().await.expect("shutdown");
}

async fn refused_code(server: SocketAddr, username: &str, password: &str) -> u16 {
    let mut client = TurnClient::new(server, username, password).await;
    client
        .allocate()
        .await
        .expect("reply")
        .expect_err("allocated with a bad credential")
}

#[tokio::test]
async fn wrong_expired_foreign_and_malformed_credentials_get_401() {
    let node = start_node().await;
    let server = node.udp_addr();
    let good = secret().mint("bob", now(), 600);

    assert_eq!(
        refused_code(server, &good.username, "bm90IHRoZSBwYXNzd29yZA==").await,
        401
    );

    let expired = secret().mint("bob", now() - 3600, 60);
    assert_eq!(
        refused_code(server, &expired.username, &expired.password).await,
        401
    );

    let foreign = TurnSecret::new("another deployment's secret").mint("bob", now(), 600);
    assert_eq!(
        refused_code(server, &foreign.username, &foreign.password).await,
        401
    );

    // A stretched expiry keeps the old password: forged.
    let forged = good
        .username
        .replacen(&good.expires_at.to_string(), "99999999999", 1);
    assert_eq!(refused_code(server, &forged, &good.password).await, 401);

    let bare = "bob";
    assert_eq!(
        refused_code(server, bare, &secret().password_for(bare)).await,
        401
    );

    let m = node.metrics();
    assert_eq!(m.allocations_total, 0, "{m:?}");
    assert!(m.auth_failures_bad_integrity >= 3, "{m:?}");
    assert!(m.auth_failures_expired >= 1, "{m:?}");
    assert!(m.auth_failures_malformed >= 1, "{m:?}");
    assert!(m
        .to_prometheus()
        .contains("tincan_turn_auth_failures_total{reason=\"expired\"}"));

    // The node is still fine for a good credential.
    let mut ok = TurnClient::new(server, &good.username, &good.password).await;
    ok.allocate().await.expect("reply").expect("allocated");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_user_over_quota_gets_486_and_others_are_unaffected() {
    let node = start_node_with(|c| c.max_allocations_per_user = 2).await;
    let server = node.udp_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TurnClient::for_user(server, "carol").await;
        c.allocate().await.expect("reply").expect("within quota");
        held.push(c);
    }
    let mut third = TurnClient::for_user(server, "carol").await;
    assert_eq!(third.allocate().await.expect("reply"), Err(486));
    let mut dave = TurnClient::for_user(server, "dave").await;
    dave.allocate().await.expect("reply").expect("another user");
    assert_eq!(node.metrics().quota_rejections, 1);

    // Giving one back makes room again.
    let mut first = held.remove(0);
    assert!(matches!(
        first.refresh(Duration::ZERO).await.expect("reply"),
        Outcome::Ok(_)
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TurnClient::for_user(server, "carol").await;
        match again.allocate().await.expect("reply") {
            Ok(_) => break,
            Err(486) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after a release: {other:?}"),
        }
    }
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_draining_node_refuses_new_allocations_but_keeps_old_ones() {
    let node = start_node().await;
    let server = node.udp_addr();
    let mut old = TurnClient::for_user(server, "erin").await;
    old.allocate().await.expect("reply").expect("allocated");

    node.drain();
    assert!(node.is_draining());
    let mut new = TurnClient::for_user(server, "frank").await;
    assert_eq!(new.allocate().await.expect("reply"), Err(403));
    assert!(node
        .metrics()
        .to_prometheus()
        .contains("tincan_node_draining 1\n"));

    // The old allocation still refreshes, then runs out.
    assert!(matches!(
        old.refresh(Duration::from_secs(60)).await.expect("reply"),
        Outcome::Ok(_)
    ));
    assert!(!node.drained(Duration::from_millis(300)).await);
    assert!(matches!(
        old.refresh(Duration::ZERO).await.expect("reply"),
        Outcome::Ok(_)
    ));
    assert!(node.drained(Duration::from_secs(5)).await);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn relayed_data_reaches_only_the_allocation_that_permitted_the_peer() {
    let node = start_node().await;
    let server = node.udp_addr();
    let peer = tokio::net::UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("peer");
    let peer_addr = peer.local_addr().expect("addr");

    let mut a = TurnClient::for_user(server, "alice").await;
    let relay_a = a.allocate().await.expect("reply").expect("a");
    let mut b = TurnClient::for_user(server, "bob").await;
    let relay_b = b.allocate().await.expect("reply").expect("b");
    assert_ne!(relay_a, relay_b);
    assert!(matches!(
        a.create_permission(peer_addr).await.expect("reply"),
        Outcome::Ok(_)
    ));

    // Client A -> peer through A's relay.
    a.send_to_peer(peer_addr, b"hello peer")
        .await
        .expect("send");
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf))
        .await
        .expect("peer got data")
        .expect("recv");
    assert_eq!(&buf[..n], b"hello peer");
    assert_eq!(from, relay_a);

    // B has no permission for the peer: its Send is dropped, and what the
    // peer sends to B's relay never reaches B (nor A).
    b.send_to_peer(peer_addr, b"from b").await.expect("send");
    peer.send_to(b"to b", relay_b).await.expect("send");
    assert!(b.recv_data(Duration::from_millis(300)).await.is_none());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), peer.recv_from(&mut buf))
            .await
            .is_err()
    );

    // The peer -> A's relay arrives at A only.
    peer.send_to(b"to a", relay_a).await.expect("send");
    let (from, data) = a
        .recv_data(Duration::from_secs(2))
        .await
        .expect("A got data");
    assert_eq!((from, data.as_slice()), (peer_addr, &b"to a"[..]));
    assert!(b.recv_data(Duration::from_millis(200)).await.is_none());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn allocations_get_at_most_the_configured_lifetime_and_then_expire() {
    let node = start_node_with(|c| c.max_allocation_lifetime_secs = 2).await;
    let mut client = TurnClient::for_user(node.udp_addr(), "gina").await;
    client.allocate().await.expect("reply").expect("allocated");
    assert_eq!(client.granted_lifetime, Some(Duration::from_secs(2)));
    // A refresh asking for ten minutes is capped too.
    let Outcome::Ok(reply) = client
        .refresh(Duration::from_secs(600))
        .await
        .expect("reply")
    else {
        panic!("refresh refused");
    };
    let mut lifetime = turn::proto::lifetime::Lifetime::default();
    stun::message::Getter::get_from(&mut lifetime, &reply).expect("lifetime");
    assert_eq!(lifetime.0, Duration::from_secs(2));
    assert_eq!(node.allocations(), 1);
    assert!(
        node.drained(Duration::from_secs(6)).await,
        "allocation outlived its lifetime"
    );
    node.shutdown().await.expect("shutdown");
}
