//! The core on a virtual clock and a virtual network, as quinn's
//! `Pair::drive` steps two endpoints: in-process clients (the webrtc-rs
//! `rtc` core, offering what a browser offers) join through
//! [`SfuCore::join`], and every datagram either side emits is handed to
//! the other at once, with no socket; time moves to the next deadline of
//! anyone (the core, a client, a client's next 20 ms frame). ICE, DTLS,
//! SCTP and SRTP all run for real.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tincan_sfu_control::{ActiveSpeakers, NodeEvent};

use super::*;
use crate::sfu::connection::AUDIO_LEVEL_URI;

const FRAME: Duration = Duration::from_millis(20);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// One in-process participant.
struct Client {
    peer: String,
    id: u8,
    addr: SocketAddr,
    pc: RTCPeerConnection,
    ssrc: u32,
    level_id: Option<u8>,
    slot_ssrcs: Vec<u32>,
    /// Publishing at this -dBov, or silent.
    level: Option<u8>,
    seq: u16,
    ts: u32,
    connected: bool,
    /// (slot, publisher id) of every packet received.
    heard: Vec<(usize, u8)>,
    speakers: Vec<ActiveSpeakers>,
}

impl Client {
    /// An offer as a browser makes it: a sendonly microphone with the
    /// audio level, `slots` recvonly m-lines, the `tincan` data channel.
    fn new(peer: &str, id: u8, slots: usize, now: Instant) -> (Self, String) {
        let addr = addr(id + 10, 4000);
        let mut media = MediaEngine::default();
        media.register_codec(opus(), RtpCodecKind::Audio).unwrap();
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(Registry::new())
            .build(now)
            .unwrap();
        let ssrc = 1000 + u32::from(id);
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: opus().rtp_codec,
            ..Default::default()
        };
        let mic = MediaStreamTrack::new(
            "mic-stream".to_owned(),
            "mic".to_owned(),
            "mic".to_owned(),
            RtpCodecKind::Audio,
            vec![encoding.clone()],
        );
        pc.add_transceiver_from_track(
            mic,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![encoding],
            }),
        )
        .unwrap();
        for _ in 0..slots {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .unwrap();
        }
        pc.create_data_channel("tincan", None).unwrap();
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap();
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json().unwrap())
            .unwrap();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer).unwrap();
        let sdp = pc.local_description().unwrap().sdp;
        let level_id = super::mic_audio_level_id(&sdp).flatten();
        let client = Self {
            peer: peer.to_owned(),
            id,
            addr,
            pc,
            ssrc,
            level_id,
            slot_ssrcs: Vec::new(),
            level: None,
            seq: 0,
            ts: 0,
            connected: false,
            heard: Vec::new(),
            speakers: Vec::new(),
        };
        (client, sdp)
    }

    fn answered(&mut self, answer: String, now: Instant) {
        self.slot_ssrcs = answer
            .split("\nm=")
            .filter(|s| s.starts_with("audio "))
            .skip(1)
            .filter_map(|section| {
                section.lines().find_map(|line| {
                    line.trim()
                        .strip_prefix("a=ssrc:")?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            })
            .collect();
        self.pc
            .set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
            .unwrap();
    }

    /// Reads what the connection delivered.
    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = event
            {
                self.connected = true;
            }
        }
        while let Some(message) = self.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(_, packet) => {
                    if let Some(slot) = self
                        .slot_ssrcs
                        .iter()
                        .position(|s| *s == packet.header.ssrc)
                    {
                        let id = packet.payload.first().copied().unwrap_or(0);
                        self.heard.push((slot, id));
                    }
                }
                RTCMessage::DataChannelMessage(_, message) => {
                    if let Ok(NodeEvent::ActiveSpeakers(event)) =
                        serde_json::from_slice::<NodeEvent>(&message.data)
                    {
                        self.speakers.push(event);
                    }
                }
                _ => {}
            }
        }
    }

    /// One 20 ms frame of the microphone, if speaking.
    fn frame(&mut self, now: Instant) {
        let Some(minus_dbov) = self.level else {
            return;
        };
        let Some(sender) = self.pc.get_senders().next() else {
            return;
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        let mut header = rtc::rtp::header::Header {
            version: 2,
            payload_type: 111,
            sequence_number: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            ..Default::default()
        };
        if let Some(ext) = self.level_id {
            header
                .set_extension(ext, Bytes::from(vec![0x80 | (minus_dbov & 0x7f)]))
                .unwrap();
        }
        let mut payload = vec![0u8; 60];
        payload[0] = self.id;
        if let Some(mut s) = self.pc.rtp_sender(sender) {
            let _ = s.write_rtp(
                now,
                rtc::rtp::Packet {
                    header,
                    payload: payload.into(),
                },
            );
        }
    }

    /// The publishers the latest `active-speakers` event names.
    fn told(&self) -> Vec<Option<String>> {
        self.speakers.last().map_or_else(Vec::new, |e| {
            e.slots
                .iter()
                .map(|s| s.as_ref().map(|s| s.peer_id.clone()))
                .collect()
        })
    }
}

/// The core and its clients on one virtual clock.
struct Net {
    core: SfuCore,
    clients: Vec<Client>,
    now: Instant,
    next_frame: Instant,
    sfu: SocketAddr,
}

impl Net {
    fn new(slots: usize) -> Self {
        let now = Instant::now();
        let sfu = addr(1, 5000);
        let core = SfuCore::new(
            CoreSettings {
                slots,
                room_max: 10,
                advertised: sfu,
                local: sfu,
            },
            StdRng::seed_from_u64(7),
            now,
        );
        Self {
            core,
            clients: Vec::new(),
            now,
            next_frame: now + FRAME,
            sfu,
        }
    }

    fn join(&mut self, room: &str, peer: &str, id: u8, muted: bool) {
        let (mut client, offer) = Client::new(peer, id, 3, self.now);
        let answer = self.core.join(room, peer, muted, offer, self.now).unwrap();
        client.answered(answer, self.now);
        self.clients.push(client);
    }

    /// Hands every datagram to its destination until nobody has more.
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.core.poll_transmit() {
                moved = true;
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == out.to) else {
                    continue;
                };
                let _ = c.pc.handle_read(TaggedBytesMut {
                    now: self.now,
                    transport: TransportContext {
                        local_addr: c.addr,
                        peer_addr: self.sfu,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: out.bytes,
                });
            }
            for c in &mut self.clients {
                while let Some(out) = c.pc.poll_write() {
                    moved = true;
                    if out.transport.peer_addr == self.sfu {
                        self.core.datagram(c.addr, &out.message, self.now);
                    }
                }
                c.drain();
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the virtual clock `span` forward, deadline by deadline.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            self.deliver();
            let next = self
                .clients
                .iter_mut()
                .filter_map(|c| c.pc.poll_timeout())
                .chain([self.core.poll_timeout(), self.next_frame])
                .min()
                .unwrap_or(end)
                .max(self.now);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            for c in &mut self.clients {
                if c.pc.poll_timeout().is_some_and(|t| t <= self.now) {
                    let _ = c.pc.handle_timeout(self.now);
                }
            }
            self.core.handle_timeout(self.now);
            if self.now >= self.next_frame {
                self.next_frame += FRAME;
                for c in &mut self.clients {
                    if c.connected {
                        c.frame(self.now);
                    }
                }
            }
        }
    }

    fn client(&self, peer: &str) -> &Client {
        self.clients.iter().find(|c| c.peer == peer).unwrap()
    }
}

#[test]
fn on_a_virtual_clock_the_loudest_reach_each_slot_and_the_events_name_them() {
    let mut net = Net::new(2);
    net.join("blue", "ann", 1, false);
    net.join("blue", "ben", 2, false);
    net.join("blue", "cat", 3, false);
    net.join("blue", "dan", 4, true);
    net.join("green", "eve", 5, false);
    net.run(Duration::from_secs(3));
    assert!(
        net.clients.iter().all(|c| c.connected),
        "every client connects on the virtual clock"
    );
    for (peer, level) in [
        ("ann", 10),
        ("ben", 20),
        ("cat", 30),
        ("dan", 5),
        ("eve", 1),
    ] {
        net.clients
            .iter_mut()
            .find(|c| c.peer == peer)
            .unwrap()
            .level = Some(level);
    }
    net.run(Duration::from_secs(2));
    for c in &mut net.clients {
        c.heard.clear();
    }
    net.run(Duration::from_secs(1));

    // Two slots: the two loudest unmuted others, in the slots the events
    // name; a second of media on each.
    let id_of = |peer: &str| net.client(peer).id;
    let expect = [
        ("ann", ["ben", "cat"]),
        ("ben", ["ann", "cat"]),
        ("cat", ["ann", "ben"]),
        ("dan", ["ann", "ben"]),
    ];
    for (peer, others) in expect {
        let c = net.client(peer);
        let told = c.told();
        let mut named: Vec<String> = told.iter().flatten().cloned().collect();
        named.sort();
        assert_eq!(named, others, "{peer} was told {told:?}");
        for (slot, speaker) in told.iter().enumerate() {
            let speaker = speaker.as_deref().unwrap();
            let packets: Vec<u8> = c
                .heard
                .iter()
                .filter(|(s, _)| *s == slot)
                .map(|(_, id)| *id)
                .collect();
            assert!(packets.len() >= 45, "{peer} slot {slot}: {}", packets.len());
            assert!(
                packets.iter().all(|id| *id == id_of(speaker)),
                "{peer} slot {slot} carries {packets:?}, told {speaker}"
            );
        }
    }
    // Rooms apart: eve heard nothing, nobody heard eve; the muted dan is
    // heard by nobody.
    assert!(net.client("eve").heard.is_empty());
    assert!(net.clients.iter().all(|c| c
        .heard
        .iter()
        .all(|(_, id)| *id != 5 && *id != 4 && *id != c.id)));
    // The deadline heap holds about one entry per connection, not one per
    // packet.
    assert!(
        net.core.timers.len() <= 64 + 4 * 5,
        "{}",
        net.core.timers.len()
    );
    let tally = net.core.take_tally();
    assert!(tally.forwarded > 0 && tally.muted > 0, "{tally:?}");
    assert_eq!(
        net.core.gauges(),
        Gauges {
            participants: 5,
            rooms: 2,
            streams: 8,
        }
    );

    // Ann leaves: her slots go to the next loudest at the next tick.
    net.core.leave("blue", "ann");
    net.run(Duration::from_millis(500));
    let mut named: Vec<String> = net.client("dan").told().into_iter().flatten().collect();
    named.sort();
    assert_eq!(named, ["ben", "cat"]);
    assert_eq!(net.core.gauges().participants, 4);
}

#[test]
fn a_listener_who_joins_after_the_slots_are_filled_hears_them_at_once() {
    let mut net = Net::new(3);
    for (peer, id) in [("ann", 1), ("ben", 2), ("cat", 3), ("dan", 4)] {
        net.join("blue", peer, id, false);
    }
    net.run(Duration::from_secs(3));
    for (peer, level) in [("ann", 10), ("ben", 20), ("cat", 30)] {
        net.clients
            .iter_mut()
            .find(|c| c.peer == peer)
            .unwrap()
            .level = Some(level);
    }
    net.run(Duration::from_secs(3));
    // Every slot is held (stickily) by a speaker; now a silent listener
    // joins a room whose speakers stay where they are.
    net.join("blue", "flo", 6, false);
    net.run(Duration::from_secs(3));
    let flo = net.client("flo");
    assert!(flo.connected, "flo connects");
    let mut named: Vec<String> = flo.told().into_iter().flatten().collect();
    named.sort();
    assert_eq!(named, ["ann", "ben", "cat"]);
    for slot in 0..3 {
        let packets = flo.heard.iter().filter(|(s, _)| *s == slot).count();
        assert!(packets >= 45, "flo slot {slot}: {packets} packets");
    }
}
