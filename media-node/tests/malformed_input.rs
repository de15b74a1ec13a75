//! Garbage on the TURN ports neither crashes nor stalls the node: after a
//! burst of random and truncated packets over UDP and broken frames over
//! TCP, a valid allocation still works at once.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A valid unauthenticated Allocate request (20-byte header + transport).
fn allocate_bytes() -> Vec<u8> {
    let mut m = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_garbage_then_a_valid_allocation() {
    let node = start_node().await;
    let server = node.udp_addr();
    let sock = tokio::net::UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7ea5e);
    let valid = allocate_bytes();
    for i in 0..3000u32 {
        let packet: Vec<u8> = match i % 6 {
            0 => (0..rng.random_range(0..1600))
                .map(|_| rng.random())
                .collect(),
            // Truncated STUN.
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            // Valid STUN with random bytes flipped.
            2 => {
                let mut p = valid.clone();
                for _ in 0..3 {
                    let at = rng.random_range(0..p.len());
                    p[at] = rng.random();
                }
                p
            }
            // ChannelData lying about its length, or for no allocation.
            3 => vec![0x40, 0x00, 0xff, 0xff, 1, 2, 3],
            4 => vec![0x4f, 0xff, 0x00, 0x02, 9, 9],
            // STUN header claiming attributes that are not there.
            _ => {
                let mut p = valid[..20].to_vec();
                p[2] = 0xff;
                p[3] = 0xfc;
                p
            }
        };
        let _ = sock.send_to(&packet, server).await;
        if i % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut client = TurnClient::for_user(server, "survivor").await;
    let relay = tokio::time::timeout(Duration::from_secs(5), client.allocate())
        .await
        .expect("node stalled")
        .expect("reply")
        .expect("allocated after garbage");
    assert_eq!(relay.ip(), LOCALHOST);
    assert!(node.metrics().malformed_packets > 0);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_garbage_closes_only_that_connection() {
    let node = start_node().await;
    let tcp = node.tcp_addr().expect("tcp on");

    // Not STUN, not ChannelData: the node hangs up.
    let mut bad = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    bad.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0])
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), bad.read(&mut buf))
        .await
        .expect("node hung up")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // A half frame, left hanging, does not block others.
    let mut slow = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    slow.write_all(&allocate_bytes()[..10])
        .await
        .expect("write");

    // A well-framed Allocate on a fresh connection gets its 401 challenge.
    let mut good = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    good.write_all(&allocate_bytes()).await.expect("write");
    let mut header = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(2), good.read_exact(&mut header))
        .await
        .expect("answered")
        .expect("read");
    // Allocate error response (0x0113) with our magic cookie.
    assert_eq!(&header[..2], &[0x01, 0x13]);
    assert_eq!(&header[4..8], &[0x21, 0x12, 0xA4, 0x42]);

    // And UDP is unaffected.
    let mut client = TurnClient::for_user(node.udp_addr(), "udp").await;
    client.allocate().await.expect("reply").expect("allocated");
    drop(slow);
    node.shutdown().await.expect("shutdown");
}
