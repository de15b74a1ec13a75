//! A small synthetic SFU participant on the webrtc-rs `rtc` core: it
//! offers what a browser offers (a sendonly microphone with the audio-level
//! extension, `slots` recvonly m-lines, the `tincan` data channel), joins
//! through the node's control API, publishes Opus-like RTP whose payload
//! starts with its own id byte, and records what arrives on which slot and
//! every `active-speakers` event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
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
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut media = MediaEngine::default();
    media.register_codec(opus(), RtpCodecKind::Audio)?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let now = Instant::now();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(Registry::new())
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
        let (mut pc, socket, ssrc) = offer(slots).await?;
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
                &JoinRequest {
                    offer: sdp,
                    user_id: format!("user-{peer}"),
                    display_name: peer.to_owned(),
                    muted,
                },
                super::now(),
            )
            .await?;
        let ssrcs = slot_ssrcs(&reply.answer);
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
) {
    let local_addr = socket.local_addr().expect("bound");
    let mut buf = vec![0u8; 2048];
    let mut frame = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let mut mic_sender = None;
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
                        Some(slot) => r.slots.entry(slot).or_default().push((
                            Instant::now(),
                            packet.payload.first().copied().unwrap_or(0),
                            packet.header.sequence_number,
                            packet.header.timestamp,
                        )),
                        None => r.unknown += 1,
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
                let mut header = rtc::rtp::header::Header {
                    version: 2,
                    payload_type: 111,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    ..Default::default()
                };
                if let Some(ext) = level_id {
                    let _ = header.set_extension(ext, Bytes::from(vec![0x80 | (minus_dbov & 0x7f)]));
                }
                let mut payload = vec![0u8; 60];
                payload[0] = id;
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
