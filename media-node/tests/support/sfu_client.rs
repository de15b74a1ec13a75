//! A small synthetic SFU participant on the webrtc-rs `rtc` core: it
//! offers what a browser offers (a sendonly microphone with the audio-level
//! extension, `slots` recvonly m-lines, the `tincan` data channel), joins
//! through the node's control API, publishes Opus-like RTP whose payload
//! starts with its own id byte, and records what arrives on which slot and
//! every `active-speakers` event.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{
    Attribute, Interceptor, Packet as InterceptorPacket, Slot, StreamInfo, TaggedPacket,
};
use rtc::interceptor::{ReceiverReportBuilder, Registry};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_twcc_sender_only;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tincan_sfu_control::{ActiveSpeakers, ControlSecret, JoinRequest, NodeEvent, SfuControlClient};
use tokio::net::UdpSocket;
use tokio::sync::watch;

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What a participant has received.
#[derive(Debug, Default)]
pub struct Received {
    /// Per slot: the publisher ids (first payload byte) of the packets,
    /// with arrival time, sequence number and timestamp.
    pub slots: HashMap<usize, Vec<(Instant, u8, u16, u32)>>,
    /// Packets on an SSRC that is no slot's.
    pub unknown: usize,
    /// `active-speakers` events, with arrival time.
    pub speakers: Vec<(Instant, ActiveSpeakers)>,
    pub connected: bool,
    /// Per slot: each packet's payload type and payload, as received.
    pub payloads: HashMap<usize, Vec<(u8, Bytes)>>,
    /// The node's receiver reports about our microphone: (fraction lost
    /// in 1/256, cumulative packets lost).
    pub reports: Vec<(u8, u32)>,
    /// Transport-wide congestion control feedback from the node: packets,
    /// and the packets they cover.
    pub twcc_feedback: usize,
    pub twcc_covered: u64,
}

/// How a participant offers and publishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Offer RED (`audio/red`, PT 63) before Opus, and publish RED payloads
    /// (the previous frame, then the current one) when it is negotiated.
    pub red: bool,
    /// Skip every n-th sequence number when publishing (a loss of 1/n the
    /// node sees on this uplink).
    pub skip_every: Option<u16>,
    /// Drop every n-th RTP datagram from the node before reading it (a
    /// loss of 1/n on this participant's downlink, which its receiver
    /// reports tell the node).
    pub drop_received_every: Option<usize>,
    /// Offer transport-wide congestion control (`transport-cc` and its
    /// header extension) and stamp what is sent, as browsers do.
    pub twcc: bool,
}

/// RED's payload type in these offers, as Chromium numbers it.
pub const RED_PT: u8 = 63;
/// Opus' payload type in these offers.
pub const OPUS_PT: u8 = 111;

fn red() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/red".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "111/111".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: RED_PT,
    }
}

/// A RED payload: `previous` as the redundant block (960 samples back),
/// then `primary`.
pub fn red_payload(previous: &[u8], primary: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | OPUS_PT];
    let word = (960u32 << 10) | previous.len() as u32;
    out.extend_from_slice(&word.to_be_bytes()[1..]);
    out.push(OPUS_PT);
    out.extend_from_slice(previous);
    out.extend_from_slice(primary);
    out
}

/// One participant.
pub struct Participant {
    pub peer: String,
    pub id: u8,
    pub received: Arc<Mutex<Received>>,
    /// The RFC 6464 level (-dBov, 0 loudest) to publish at, or none.
    pub level: watch::Sender<Option<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.task.abort();
    }
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

/// An offer as a browser makes it, and the connection that made it.
pub async fn offer(slots: usize) -> anyhow::Result<(RTCPeerConnection, UdpSocket, u32)> {
    offer_with(slots, Options::default()).await
}

/// An offer, RED first if `options.red`.
pub async fn offer_with(
    slots: usize,
    options: Options,
) -> anyhow::Result<(RTCPeerConnection, UdpSocket, u32)> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut media = MediaEngine::default();
    if options.red {
        media.register_codec(red(), RtpCodecKind::Audio)?;
    }
    media.register_codec(opus(), RtpCodecKind::Audio)?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    // Receiver reports on the slots, as browsers send them; the node's
    // reports and feedback handed to the test (no slot is named for an
    // application's reader: the unused RFC 8888 one is before the reports').
    let mut registry = Registry::new()
        .with(Slot::Rfc8888, DeliverReceiverReports::default())
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
    if options.twcc {
        registry = configure_twcc_sender_only(registry, &mut media)?;
    }
    let now = Instant::now();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)?;
    let ssrc = rand::random::<u32>();
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
    )?;
    for _ in 0..slots {
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
    }
    pc.create_data_channel("tincan", None)?;
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
    let offer = pc.create_offer(None)?;
    pc.set_local_description(now, offer)?;
    Ok((pc, socket, ssrc))
}

/// The extmap id of `uri` in the first audio section of `sdp`.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    let section = sdp.split("\nm=").nth(1)?;
    section.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, u) = rest.split_once(' ')?;
        (u.split_whitespace().next()? == uri)
            .then(|| id.split('/').next()?.parse().ok())
            .flatten()
    })
}

/// The SSRC the answer announces on each slot m-line (every audio section
/// after the first), in order.
pub fn slot_ssrcs(answer: &str) -> Vec<u32> {
    answer
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
        .collect()
}

impl Participant {
    /// Joins `room` as `peer` on the node whose control API is at
    /// `control` and starts its loop.
    pub async fn join(
        control: SocketAddr,
        secret: &ControlSecret,
        room: &str,
        peer: &str,
        id: u8,
        slots: usize,
        muted: bool,
    ) -> anyhow::Result<Self> {
        Self::join_with(
            control,
            secret,
            room,
            peer,
            id,
            slots,
            muted,
            Options::default(),
        )
        .await
    }

    /// `join`, offering and publishing per `options`.
    #[allow(clippy::too_many_arguments)]
    pub async fn join_with(
        control: SocketAddr,
        secret: &ControlSecret,
        room: &str,
        peer: &str,
        id: u8,
        slots: usize,
        muted: bool,
        options: Options,
    ) -> anyhow::Result<Self> {
        let (mut pc, socket, ssrc) = offer_with(slots, options).await?;
        let sdp = pc
            .local_description()
            .ok_or_else(|| anyhow::anyhow!("no offer"))?
            .sdp;
        let level_id = extmap_id(&sdp, AUDIO_LEVEL_URI);
        let client = SfuControlClient::new(secret.clone())?;
        let reply = client
            .join(
                &format!("http://{control}"),
                room,
                peer,
                &JoinRequest { offer: sdp, muted },
                super::now(),
            )
            .await?;
        let ssrcs = slot_ssrcs(&reply.answer);
        // RED is sent when the answer has it on the microphone's m-line.
        let publish_red = options.red
            && reply
                .answer
                .split("\nm=")
                .nth(1)
                .is_some_and(|mic| mic.contains(&format!("a=rtpmap:{RED_PT} red/48000")));
        pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(reply.answer)?)?;
        let received = Arc::new(Mutex::new(Received::default()));
        let (level, level_rx) = watch::channel(None);
        let task = tokio::spawn(run(
            pc,
            socket,
            ssrc,
            level_id,
            id,
            ssrcs,
            level_rx,
            Arc::clone(&received),
            Publish {
                red: publish_red,
                skip_every: options.skip_every,
                drop_received_every: options.drop_received_every,
            },
        ));
        Ok(Self {
            peer: peer.to_owned(),
            id,
            received,
            level,
            task,
        })
    }

    /// Publishes at `level` (-dBov) from now on; `None` stops sending.
    pub fn speak(&self, level: Option<u8>) {
        let _ = self.level.send(level);
    }

    pub fn snapshot<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap())
    }
}

/// How the loop publishes.
struct Publish {
    red: bool,
    skip_every: Option<u16>,
    drop_received_every: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut pc: RTCPeerConnection,
    socket: UdpSocket,
    ssrc: u32,
    level_id: Option<u8>,
    id: u8,
    slot_ssrcs: Vec<u32>,
    level: watch::Receiver<Option<u8>>,
    received: Arc<Mutex<Received>>,
    publish: Publish,
) {
    let local_addr = socket.local_addr().expect("bound");
    let mut buf = vec![0u8; 2048];
    let mut frame = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let mut mic_sender = None;
    let mut previous: Option<Vec<u8>> = None;
    let mut rtp_received = 0usize;
    loop {
        while let Some(out) = pc.poll_write() {
            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
        }
        while let Some(event) = pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = event
            {
                received.lock().unwrap().connected = true;
            }
        }
        while let Some(message) = pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(_, packet) => {
                    let mut r = received.lock().unwrap();
                    match slot_ssrcs.iter().position(|s| *s == packet.header.ssrc) {
                        Some(slot) => {
                            // The publisher's id: the first byte of the
                            // (primary) Opus frame.
                            let id = if packet.header.payload_type == RED_PT {
                                red_primary(&packet.payload).and_then(|p| p.first().copied())
                            } else {
                                packet.payload.first().copied()
                            };
                            r.slots.entry(slot).or_default().push((
                                Instant::now(),
                                id.unwrap_or(0),
                                packet.header.sequence_number,
                                packet.header.timestamp,
                            ));
                            r.payloads
                                .entry(slot)
                                .or_default()
                                .push((packet.header.payload_type, packet.payload.clone()));
                        }
                        None => r.unknown += 1,
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    let mut r = received.lock().unwrap();
                    for packet in &packets {
                        if let Some(cc) = packet.as_any().downcast_ref::<TransportLayerCc>() {
                            r.twcc_feedback += 1;
                            r.twcc_covered += u64::from(cc.packet_status_count);
                        }
                        let Some(rr) = packet.as_any().downcast_ref::<ReceiverReport>() else {
                            continue;
                        };
                        for report in rr.reports.iter().filter(|rep| rep.ssrc == ssrc) {
                            r.reports.push((report.fraction_lost, report.total_lost));
                        }
                    }
                }
                RTCMessage::DataChannelMessage(_, message) => {
                    if let Ok(NodeEvent::ActiveSpeakers(event)) =
                        serde_json::from_slice::<NodeEvent>(&message.data)
                    {
                        received
                            .lock()
                            .unwrap()
                            .speakers
                            .push((Instant::now(), event));
                    }
                }
                _ => {}
            }
        }
        let deadline = pc
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_millis(100));
        tokio::select! {
            res = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = res {
                    // RTP, not RTCP (payload types 64-95 with the marker bit).
                    if n > 12 && buf[0] & 0xc0 == 0x80 && !(64..96).contains(&(buf[1] & 0x7f)) {
                        rtp_received += 1;
                        if publish.drop_received_every.is_some_and(|k| rtp_received.is_multiple_of(k)) {
                            continue;
                        }
                    }
                    let _ = pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr,
                            peer_addr: from,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&buf[..n]),
                    });
                }
            }
            _ = frame.tick() => {
                let Some(minus_dbov) = *level.borrow() else { continue };
                if mic_sender.is_none() {
                    mic_sender = pc.get_senders().next();
                }
                let Some(sender) = mic_sender else { continue };
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(960);
                if publish.skip_every.is_some_and(|n| seq.is_multiple_of(n)) {
                    // Lost on the way: the node never sees this one.
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(960);
                }
                let mut header = rtc::rtp::header::Header {
                    version: 2,
                    payload_type: if publish.red { RED_PT } else { OPUS_PT },
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    ..Default::default()
                };
                if let Some(ext) = level_id {
                    let _ = header.set_extension(ext, Bytes::from(vec![0x80 | (minus_dbov & 0x7f)]));
                }
                let mut opus_frame = vec![0u8; 60];
                opus_frame[0] = id;
                opus_frame[1..5].copy_from_slice(&seq.to_be_bytes().repeat(2));
                let payload = if publish.red {
                    red_payload(previous.as_deref().unwrap_or(&[]), &opus_frame)
                } else {
                    opus_frame.clone()
                };
                previous = Some(opus_frame);
                if let Some(mut s) = pc.rtp_sender(sender) {
                    let _ = s.write_rtp(Instant::now(), rtc::rtp::Packet { header, payload: payload.into() });
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                let _ = pc.handle_timeout(Instant::now());
            }
        }
    }
}

/// Hands the receiver reports and congestion feedback that reach this connection to the
/// application (the chain's end stops inbound RTCP otherwise), so the test
/// reads what the node reported.
#[derive(Default)]
struct DeliverReceiverReports {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverReceiverReports {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let report = matches!(&msg.message.packet, InterceptorPacket::Rtcp(packets)
            if packets.iter().any(|p| p.as_any().is::<ReceiverReport>() || p.as_any().is::<TransportLayerCc>()));
        if report {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for DeliverReceiverReports {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// The primary block of a RED payload (RFC 2198), parsed independently of
/// the node's parser.
pub fn red_primary(payload: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    let mut skip = 0;
    while payload.get(at)? & 0x80 != 0 {
        let h = payload.get(at..at + 4)?;
        skip += usize::from(u16::from_be_bytes([h[2], h[3]]) & 0x3ff);
        at += 4;
    }
    payload.get(at + 1 + skip..)
}
