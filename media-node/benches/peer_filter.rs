//! What the peer deny-list costs per packet, without criterion:
//! `cargo bench -p tincan-media-node --bench peer_filter`.
//!
//! ChannelData (the hot path) is not checked per packet: its peer was
//! checked when the channel was bound. A Send indication is: the front door
//! decodes its XOR-PEER-ADDRESS and asks the filter. Both steps are timed.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use stun::agent::TransactionId;
use stun::message::{Getter, Message, MessageType, Setter, CLASS_INDICATION, METHOD_SEND};
use tincan_media_node::PeerFilter;
use turn::proto::data::Data;
use turn::proto::peeraddr::PeerAddress;

const ROUNDS: u32 = 2_000_000;

fn per_op(label: &str, mut op: impl FnMut(u32) -> bool) {
    // Warm up, then time.
    for i in 0..ROUNDS / 10 {
        black_box(op(i));
    }
    let start = Instant::now();
    let mut denied = 0u32;
    for i in 0..ROUNDS {
        denied += u32::from(black_box(op(i)));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    println!("{label:<58} {ns:>7.1} ns/op  ({denied} denied)");
}

fn main() {
    let filter = PeerFilter::default();
    let allow_loopback = PeerFilter::default().allow_loopback();
    let addrs: Vec<IpAddr> = [
        "203.0.113.5",
        "8.8.8.8",
        "10.1.2.3",
        "192.168.1.1",
        "2001:db8::1",
        "::ffff:198.51.100.1",
        "169.254.169.254",
        "100.64.0.1",
    ]
    .iter()
    .map(|a| a.parse().expect("address"))
    .collect();
    let public: IpAddr = "203.0.113.5".parse().expect("address");
    let n = addrs.len() as u32;

    per_op("is_denied, public IPv4 (walks the whole list)", |_| {
        filter.is_denied(black_box(public))
    });
    per_op("is_denied, mix of 8 addresses (v4, v6, mapped)", |i| {
        filter.is_denied(black_box(addrs[(i % n) as usize]))
    });
    per_op("is_denied with an allow-list, mix of 8", |i| {
        allow_loopback.is_denied(black_box(addrs[(i % n) as usize]))
    });

    let mut send = Message::new();
    let setters: [&dyn Setter; 4] = [
        &TransactionId::new(),
        &MessageType::new(METHOD_SEND, CLASS_INDICATION),
        &PeerAddress {
            ip: public,
            port: 5000,
        },
        &Data(vec![0u8; 160]),
    ];
    send.write_header();
    for s in setters {
        s.add_to(&mut send).expect("builds");
    }
    per_op(
        "Send indication: decode XOR-PEER-ADDRESS + is_denied",
        |_| {
            let mut peer = PeerAddress::default();
            peer.get_from(black_box(&send)).is_ok() && filter.is_denied(peer.ip)
        },
    );
}
