//! What the media node reads from the network: TCP framing (`frame_len`),
//! the peer deny-list (`parse_ranges`), and the STUN/TURN front layer that
//! sees every UDP datagram and TCP frame before the TURN server does.
//! Whatever arrives, nothing panics, refusals are typed, a frame is never
//! longer than 64 KiB + 20, garbage allocates nothing, and the node keeps
//! answering: a Binding request gets its success, an Allocate its 401.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{start_node, LOCALHOST};
use tincan_media_node::peer_filter::{parse_ranges, PeerFilterError};
use tincan_media_node::tcp::{frame_len, FrameError};
use tincan_media_node::PeerFilter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// A fixed, small budget, and no failure files written.
fn budget(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A STUN request of `method` with a random transaction id, and `attrs`.
fn stun(method: u16, id: [u8; 12], attrs: &[u8]) -> Vec<u8> {
    let mut m = method.to_be_bytes().to_vec();
    m.extend_from_slice(&u16::try_from(attrs.len()).unwrap_or(0).to_be_bytes());
    m.extend_from_slice(&COOKIE);
    m.extend_from_slice(&id);
    m.extend_from_slice(attrs);
    m
}

/// Binding request (0x0001), no attributes.
fn binding(id: [u8; 12]) -> Vec<u8> {
    stun(0x0001, id, &[])
}

/// Unauthenticated Allocate (0x0003) with REQUESTED-TRANSPORT UDP.
fn allocate(id: [u8; 12]) -> Vec<u8> {
    stun(0x0003, id, &[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0])
}

/// A packet as a hostile or broken client sends it.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        any::<[u8; 12]>().prop_map(binding),
        any::<[u8; 12]>().prop_map(allocate),
        // Any method and class, attributes of any bytes.
        (
            any::<u16>(),
            any::<[u8; 12]>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(t, id, attrs)| stun(t & 0x3fff, id, &attrs)),
        // ChannelData of any channel and stated length.
        (
            0x4000u16..=0x7fff,
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(channel, len, data)| {
                let mut p = channel.to_be_bytes().to_vec();
                p.extend_from_slice(&len.to_be_bytes());
                p.extend_from_slice(&data);
                p
            }),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1600),
        (
            valid,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            any::<usize>()
        )
            .prop_map(|(mut p, flips, cut)| {
                for (at, byte) in flips {
                    if !p.is_empty() {
                        let at = at % p.len();
                        p[at] = byte;
                    }
                }
                if cut % 3 == 0 {
                    p.truncate(cut % (p.len() + 1));
                }
                p
            }),
    ]
}

#[test]
fn frame_len_follows_the_rfc_framing() {
    TestRunner::new(budget(4096))
        .run(&any::<[u8; 4]>(), |header| {
            let stated = usize::from(u16::from_be_bytes([header[2], header[3]]));
            match (header[0] >> 6, frame_len(header)) {
                (0, Ok(len)) => {
                    prop_assert_eq!(stated % 4, 0);
                    prop_assert_eq!(len, 20 + stated);
                }
                (0, Err(err)) => {
                    prop_assert_eq!(err, FrameError::BadLength);
                    prop_assert_ne!(stated % 4, 0);
                }
                (1, Ok(len)) => {
                    prop_assert_eq!(len % 4, 0);
                    prop_assert!(len >= 4 + stated && len < 4 + stated + 4);
                }
                (_, Err(err)) => prop_assert_eq!(err, FrameError::UnknownFrame),
                (kind, Ok(len)) => prop_assert!(false, "kind {kind} framed as {len}"),
            }
            // No frame makes the reader buffer more than this.
            if let Ok(len) = frame_len(header) {
                prop_assert!(len <= 20 + 65_535 + 1);
            }
            Ok(())
        })
        .unwrap();
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

#[test]
fn any_range_list_parses_or_names_its_bad_entry() {
    let text = prop_oneof![
        proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        "[0-9a-f.:/, ]{0,64}",
        proptest::collection::vec((ip(), proptest::option::of(0u8..=129)), 0..5).prop_map(|nets| {
            nets.iter()
                .map(|(ip, prefix)| match prefix {
                    Some(p) => format!("{ip}/{p}"),
                    None => ip.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }),
    ];
    TestRunner::new(budget(1024))
        .run(&text, |list| {
            let entries: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect();
            match parse_ranges(&list) {
                Ok(nets) => {
                    prop_assert_eq!(nets.len(), entries.len());
                    // Each parsed range is in canonical form and parses back
                    // to itself.
                    for net in &nets {
                        prop_assert_eq!(net.trunc(), *net);
                        let again = parse_ranges(&net.to_string())
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(again, vec![*net]);
                    }
                }
                Err(PeerFilterError::BadRange { entry }) => {
                    prop_assert!(
                        entries.contains(&entry.as_str()),
                        "{entry:?} not in {list:?}"
                    );
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_mapped_address_is_judged_as_its_ipv4() {
    let filter = PeerFilter::default();
    TestRunner::new(budget(2048))
        .run(&any::<u32>(), |n| {
            let v4 = Ipv4Addr::from(n);
            prop_assert_eq!(
                filter.is_denied(IpAddr::V4(v4)),
                filter.is_denied(IpAddr::V6(v4.to_ipv6_mapped()))
            );
            Ok(())
        })
        .unwrap();
}

/// Reads STUN replies on `sock` until one for `id` arrives; its type.
async fn reply_type(sock: &tokio::net::UdpSocket, id: [u8; 12]) -> Option<u16> {
    let mut buf = [0u8; 1600];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, _) = sock.recv_from(&mut buf).await.ok()?;
            if n >= 20 && buf[8..20] == id {
                return Some(u16::from_be_bytes([buf[0], buf[1]]));
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[test]
fn any_datagrams_leave_the_node_answering() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let node = rt.block_on(start_node());
    let server = node.udp_addr();
    let batch = proptest::collection::vec(packet(), 1..8);
    TestRunner::new(budget(64))
        .run(&(batch, any::<[u8; 12]>()), |(packets, id)| {
            rt.block_on(async {
                let sock = tokio::net::UdpSocket::bind((LOCALHOST, 0))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for p in &packets {
                    let _ = sock.send_to(p, server).await;
                }
                // The crate's server answers Binding; the front layer
                // challenges an unauthenticated Allocate (401, 0x0113).
                let _ = sock.send_to(&binding(id), server).await;
                prop_assert_eq!(reply_type(&sock, id).await, Some(0x0101));
                let mut id2 = id;
                id2[0] ^= 0xff;
                let _ = sock.send_to(&allocate(id2), server).await;
                prop_assert_eq!(reply_type(&sock, id2).await, Some(0x0113));
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(node.allocations(), 0, "garbage allocated something");
    rt.block_on(node.shutdown()).expect("shutdown");
}

#[test]
fn any_stream_bytes_leave_the_node_answering_on_tcp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let node = rt.block_on(start_node());
    let tcp = node.tcp_addr().expect("TCP on");
    let stream = proptest::collection::vec(packet(), 1..6).prop_map(|ps| ps.concat());
    TestRunner::new(budget(32))
        .run(&(stream, any::<[u8; 12]>()), |(bytes, id)| {
            rt.block_on(async {
                // The bad stream: written, then dropped, whatever the node did.
                if let Ok(mut bad) = tokio::net::TcpStream::connect(tcp).await {
                    let _ = bad.write_all(&bytes).await;
                    let _ = bad.shutdown().await;
                }
                // A fresh connection is framed and answered.
                let mut good = tokio::net::TcpStream::connect(tcp)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                good.write_all(&binding(id))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut header = [0u8; 20];
                tokio::time::timeout(Duration::from_secs(5), good.read_exact(&mut header))
                    .await
                    .map_err(|_| TestCaseError::fail("no answer on a fresh connection"))?
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&header[..2], &[0x01, 0x01]);
                prop_assert_eq!(&header[8..20], &id);
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(node.allocations(), 0, "garbage allocated something");
    rt.block_on(node.shutdown()).expect("shutdown");
}
