//! A flood of unauthenticated Allocates from many source ports: the node
//! answers each with a stateless nonce and keeps nothing (issue 10). Its own
//! test binary, so that no other test shares the CPU or the RSS figure.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stun::agent::TransactionId;
use stun::message::{Message, MessageType, Setter, CLASS_REQUEST, METHOD_ALLOCATE};
use support::*;
use tokio::net::UdpSocket;

/// Resident set size of this process (node and test client), bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn bare_allocate() -> Vec<u8> {
    let mut m = Message::new();
    m.build(&[
        Box::new(TransactionId::new()) as Box<dyn Setter>,
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
    ])
    .expect("valid message");
    m.raw
}

/// Sends `total` unauthenticated Allocates from `sockets` source ports, a
/// few in flight per port, and counts the answers.
async fn flood(server: SocketAddr, sockets: usize, total: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sockets {
        let (sent, answered) = (Arc::clone(&sent), Arc::clone(&answered));
        tasks.spawn(async move {
            let socket = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind");
            let mut buf = [0u8; 1500];
            while sent.fetch_add(4, Ordering::Relaxed) < total {
                for _ in 0..4 {
                    let _ = socket.send_to(&bare_allocate(), server).await;
                }
                for _ in 0..4 {
                    match tokio::time::timeout(
                        Duration::from_millis(200),
                        socket.recv_from(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(_)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    answered.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_allocate_floods_cost_no_memory() {
    let node = start_node().await;
    // Warm up allocator arenas and socket buffers first.
    flood(node.udp_addr(), 200, 10_000).await;
    let before = rss_bytes();
    let answered = flood(node.udp_addr(), 200, 200_000).await;
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    eprintln!(
        "200k unauthenticated Allocates ({answered} answered): RSS {} -> {} KiB (+{} KiB)",
        before / 1024,
        after / 1024,
        grown / 1024
    );
    assert!(answered > 150_000, "the node answered only {answered}");
    assert!(grown < 10 << 20, "RSS grew by {grown} bytes");
    assert!(node.metrics().nonce_challenges >= answered);
    // And it still serves real clients.
    let mut client = TurnClient::for_user(node.udp_addr(), "alice").await;
    client.allocate().await.expect("reply").expect("allocated");
    node.shutdown().await.expect("shutdown");
}
