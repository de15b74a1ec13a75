//! One WebRTC peer connection of a synthetic participant (webrtc-rs): an
//! Opus sender with the RFC 6464 audio-level extension, audio receivers
//! counted per slot, and complete (non-trickle) offers and answers.

use crate::payload::{self, Tag};
use crate::stats::{Arrival, Receiver, Window};
use anyhow::{anyhow, Context as _, Result};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::shared::marshal::MarshalSize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

/// The RFC 6464 extension the SFU ranks speakers by.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Opus's usual dynamic payload type (Chromium's).
const OPUS_PT: u8 = 111;
/// How long ICE gathering may take (host candidates only: milliseconds).
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Events the driver hands us: gathering done, remote tracks.
struct Events {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

/// What a participant's sender needs.
pub(crate) struct Publisher {
    pub(crate) track: Arc<TrackLocalStaticRTP>,
    /// The participant index, in every packet's tag.
    pub(crate) me: u32,
    pub(crate) ssrc: u32,
    /// Opus payload bytes per packet.
    pub(crate) size: usize,
    /// Counts the packets sent inside `window`.
    pub(crate) sent: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) window: Arc<Window>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// A peer connection and the handles the participant drives it with.
pub(crate) struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    pub(crate) state: watch::Receiver<RTCPeerConnectionState>,
    tracks: Option<mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>>,
}

impl Peer {
    /// A connection whose only candidates are host ones on `bind_ip` (plus
    /// relay ones when `ice_servers` name a TURN server).
    pub(crate) async fn new(bind_ip: IpAddr, ice_servers: Vec<RTCIceServer>) -> Result<Self> {
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )?;
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let handler = Arc::new(Events {
            gathered: gathered_tx,
            state: state_tx,
            tracks: tracks_tx,
        });
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .build();
        // Loopback host candidates are what the bench uses; no mDNS (no
        // multicast in the bench's network namespace, nor any need).
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_handler(handler)
            .with_udp_addrs(vec![format!("{bind_ip}:0")])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            state,
            tracks: Some(tracks),
        })
    }

    /// Adds the microphone: an Opus track sent with `direction` (send-only
    /// towards an SFU, send-receive into a mixer).
    pub(crate) async fn add_sender(
        &self,
        ssrc: u32,
        direction: RTCRtpTransceiverDirection,
    ) -> Result<Arc<TrackLocalStaticRTP>> {
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("mic-{ssrc}"),
            format!("mic-{ssrc}"),
            "microphone".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus(),
                ..Default::default()
            }],
        )));
        self.pc
            .add_transceiver_from_track(
                Arc::clone(&track) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
        Ok(track)
    }

    /// Adds `n` receive-only audio transceivers (the SFU's slots).
    pub(crate) async fn add_receivers(&self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.pc
                .add_transceiver_from_kind(
                    RtpCodecKind::Audio,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn data_channel(&self, label: &str) -> Result<Arc<dyn DataChannel>> {
        Ok(self.pc.create_data_channel(label, None).await?)
    }

    async fn wait_gathered(&self) -> Result<String> {
        let mut gathered = self.gathered.clone();
        tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done))
            .await
            .context("ICE gathering did not finish")??;
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?;
        Ok(desc.sdp)
    }

    /// A complete offer: every candidate in it, gathering finished.
    pub(crate) async fn offer(&self) -> Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.wait_gathered().await
    }

    pub(crate) async fn apply_answer(&self, sdp: String) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp)?;
        Ok(self.pc.set_remote_description(answer).await?)
    }

    /// Answers a remote offer (Janus offers subscriptions); complete, like
    /// [`Peer::offer`].
    pub(crate) async fn answer(&self, offer_sdp: String) -> Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer_sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.wait_gathered().await
    }

    /// Until the connection is up (DTLS done), or an error once it failed.
    pub(crate) async fn connected(&self, within: Duration) -> Result<()> {
        let mut state = self.state.clone();
        let reached = tokio::time::timeout(
            within,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .context("peer connection did not connect in time")??
        .to_owned();
        if reached == RTCPeerConnectionState::Connected {
            Ok(())
        } else {
            Err(anyhow!("peer connection {reached}"))
        }
    }

    /// Counts what arrives on every remote track into `receiver`, slot by
    /// slot (`slots`: mid -> slot index), until the connection closes.
    pub(crate) fn count_tracks(
        &mut self,
        slots: HashMap<String, usize>,
        receiver: Arc<Mutex<Receiver>>,
        window: Arc<Window>,
    ) {
        let Some(mut tracks) = self.tracks.take() else {
            return;
        };
        let pc = Arc::clone(&self.pc);
        let slots = Arc::new(slots);
        tokio::spawn(async move {
            while let Some(track) = tracks.recv().await {
                let pc = Arc::clone(&pc);
                let slots = Arc::clone(&slots);
                let receiver = Arc::clone(&receiver);
                let window = Arc::clone(&window);
                tokio::spawn(async move {
                    let mut slot = None;
                    while let Some(event) = track.poll().await {
                        match event {
                            TrackRemoteEvent::OnOpen(init) => {
                                slot = slot_of(&*pc, init.receiver_id.into(), &slots).await;
                            }
                            TrackRemoteEvent::OnRtpPacket(packet) => {
                                let Some(slot) = slot else { continue };
                                let now = payload::now_us();
                                let size = packet.header.marshal_size() + packet.payload.len();
                                let tag = payload::decode(&packet.payload);
                                if let Ok(mut r) = receiver.lock() {
                                    r.packet(Arrival {
                                        slot,
                                        seq: packet.header.sequence_number,
                                        bytes: size,
                                        tag,
                                        now_us: now,
                                        in_window: window.contains(now),
                                    });
                                }
                            }
                            TrackRemoteEvent::OnEnded => break,
                            _ => {}
                        }
                    }
                });
            }
        });
    }

    /// Sends the canned Opus packet every 20 ms with the audio level
    /// `level()` gives at that moment (127: silence), until `stop` is set.
    pub(crate) fn publish(p: Publisher, level: impl Fn() -> u8 + Send + 'static) {
        let Publisher {
            track,
            me,
            ssrc,
            size,
            sent,
            window,
            mut stop,
        } = p;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seq: u16 = rand::random();
            let mut timestamp: u32 = rand::random();
            let mut n: u32 = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let level = level();
                let now = payload::now_us();
                let tag = Tag {
                    sender: me,
                    seq: n,
                    sent_us: now,
                };
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: n == 0,
                        payload_type: OPUS_PT,
                        sequence_number: seq,
                        timestamp,
                        ssrc,
                        ..Default::default()
                    },
                    payload: payload::encode(tag, size).into(),
                };
                let ext = HeaderExtension::AudioLevel(AudioLevelExtension {
                    level: level.min(127),
                    voice: level < 127,
                });
                if track
                    .write_rtp_with_extensions(packet, &[ext])
                    .await
                    .is_ok()
                    && window.contains(now)
                {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                seq = seq.wrapping_add(1);
                timestamp = timestamp.wrapping_add(960);
                n = n.wrapping_add(1);
            }
        });
    }

    pub(crate) async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// The mids of the audio m-lines of `sdp` whose direction is `direction`
/// (`recvonly`, `sendrecv`, ...), in m-line order: the order of the slots.
/// (The connection's transceiver list has no order to rely on.)
pub(crate) fn audio_mids(sdp: &str, direction: &str) -> Vec<String> {
    let mut mids = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        if !section.starts_with("audio ") {
            continue;
        }
        let mut mid = None;
        let mut matches = false;
        for line in section.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.to_owned());
            } else if line.strip_prefix("a=") == Some(direction) {
                matches = true;
            }
        }
        if let (true, Some(mid)) = (matches, mid) {
            mids.push(mid);
        }
    }
    mids
}

/// The slot of the transceiver a receiver belongs to.
async fn slot_of(
    pc: &dyn PeerConnection,
    id: rtc::rtp_transceiver::RTCRtpTransceiverId,
    slots: &HashMap<String, usize>,
) -> Option<usize> {
    for t in pc.get_transceivers().await {
        if t.id() == id {
            let mid = t.mid().await.ok()??;
            return slots.get(&mid).copied();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_mids_follow_the_m_line_order() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:3\r\na=recvonly\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\na=mid:1\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n";
        assert_eq!(audio_mids(sdp, "recvonly"), vec!["3", "1"]);
        assert_eq!(audio_mids(sdp, "sendonly"), vec!["0"]);
        assert!(audio_mids(sdp, "sendrecv").is_empty());
    }
}
