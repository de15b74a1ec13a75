//! One participant's peer connection: the answer to its offer, with the
//! microphone on the first audio m-line and the receive slots on the next
//! ones, each with its own SSRC.

use std::net::SocketAddr;
use std::time::Instant;

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use rtc::interceptor::{Registry, Slot as ChainSlot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::forward::SlotStream;
use super::red::{RedEncoder, MIME_TYPE_RED};
use super::reports::DeliverReports;

/// The audio-level header extension (RFC 6464).
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// A receive slot: its sender, the negotiated Opus payload type, RED's
/// when the subscriber negotiated it, the rewriting state, and the recent
/// frames its RED packets repeat.
pub(crate) struct Slot {
    pub(crate) sender: RTCRtpSenderId,
    pub(crate) payload_type: u8,
    pub(crate) red: Option<u8>,
    pub(crate) stream: SlotStream<u64>,
    pub(crate) red_encoder: RedEncoder,
}

/// The payload types a connection negotiated for audio: Opus, and RED
/// (RFC 2198) if both sides offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioPayloadTypes {
    pub(crate) opus: u8,
    pub(crate) red: Option<u8>,
}

/// Why an offer cannot be answered (the `rtc` core's reason, for logs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SdpError(pub(crate) String);

/// What an answer is built from: the receive slots to offer, the address
/// of the host candidate, and the connection's local ICE ufrag.
pub(crate) struct AnswerParams<'a> {
    pub(crate) slots: usize,
    pub(crate) advertised: SocketAddr,
    pub(crate) ufrag: &'a str,
}

/// A connection answering `offer`, with its receive slots; its ICE
/// password, stream id and SSRCs drawn from `rng`.
pub(crate) fn answerer(
    params: &AnswerParams<'_>,
    offer: String,
    rng: &mut impl Rng,
    now: Instant,
) -> Result<(RTCPeerConnection, Vec<Slot>), SdpError> {
    let bad = |e: rtc::shared::error::Error| SdpError(e.to_string());
    let offer = RTCSessionDescription::offer(offer).map_err(bad)?;
    let mut media = MediaEngine::default();
    media
        .register_codec(opus(), RtpCodecKind::Audio)
        .map_err(bad)?;
    media
        .register_codec(red(), RtpCodecKind::Audio)
        .map_err(bad)?;
    media
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverDirection::Recvonly),
        )
        .map_err(bad)?;
    // Receiver and sender reports (the subscriber's also reach the engine,
    // for RED's redundancy), and transport-wide congestion control feedback
    // for what publishers send (after the codecs: it adds `transport-cc` to
    // those registered). The chain has no slot named for an application's
    // own reader: the unused RFC 8888 one sits before the report handlers.
    let registry = configure_twcc_receiver_only(
        configure_rtcp_reports(Registry::new()).with(ChainSlot::Rfc8888, DeliverReports::default()),
        &mut media,
    )
    .map_err(bad)?;
    let password = Alphanumeric.sample_string(rng, 32);
    let setting = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(params.ufrag.to_owned(), password)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(setting)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(bad)?;
    let recv = |direction| RTCRtpTransceiverInit {
        direction,
        streams: vec![],
        send_encodings: vec![],
    };
    pc.add_transceiver_from_kind(
        RtpCodecKind::Audio,
        Some(recv(RTCRtpTransceiverDirection::Recvonly)),
    )
    .map_err(bad)?;
    let stream_id = Alphanumeric.sample_string(rng, 12);
    let mut transceivers = Vec::with_capacity(params.slots);
    for slot in 0..params.slots {
        let ssrc = rng.random::<u32>();
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: opus().rtp_codec,
            ..Default::default()
        };
        let track = MediaStreamTrack::new(
            stream_id.clone(),
            format!("slot-{slot}"),
            format!("slot-{slot}"),
            RtpCodecKind::Audio,
            vec![encoding.clone()],
        );
        let id = pc
            .add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![stream_id.clone()],
                    send_encodings: vec![encoding],
                }),
            )
            .map_err(bad)?;
        transceivers.push((id, ssrc));
    }
    pc.set_remote_description(now, offer).map_err(bad)?;
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: params.advertised.ip().to_string(),
            port: params.advertised.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(|e| SdpError(e.to_string()))?;
    let init = RTCIceCandidate::from(&candidate).to_json().map_err(bad)?;
    pc.add_local_candidate(init).map_err(bad)?;
    let answer = pc.create_answer(None).map_err(bad)?;
    pc.set_local_description(now, answer).map_err(bad)?;

    let mut slots = Vec::with_capacity(transceivers.len());
    for (id, ssrc) in transceivers {
        let Some(transceiver) = pc.rtp_transceiver(id) else {
            continue;
        };
        // A slot the offer had no m-line for was not negotiated.
        if transceiver.mid().is_none() {
            continue;
        }
        let Some(sender) = transceiver.sender() else {
            continue;
        };
        let Some(mut rtp_sender) = pc.rtp_sender(sender) else {
            continue;
        };
        let codecs = rtp_sender.get_parameters().rtp_parameters.codecs.clone();
        let find = |mime: &str| {
            codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|c| c.payload_type)
        };
        if let Some(payload_type) = find(MIME_TYPE_OPUS) {
            slots.push(Slot {
                sender,
                payload_type,
                red: find(MIME_TYPE_RED),
                stream: SlotStream::new(ssrc),
                red_encoder: RedEncoder::default(),
            });
        }
    }
    Ok((pc, slots))
}

/// Opus as browsers offer it.
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

/// RED over Opus, as Chromium offers it (`a=fmtp:63 111/111`: each packet
/// carries the previous Opus frame, then the current one).
fn red() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RED.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "111/111".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 63,
    }
}

/// The Opus and RED payload types of the first audio m-line of `sdp` (the
/// answer: the publisher sends on these); `None` without Opus.
pub(crate) fn audio_payload_types(sdp: &str) -> Option<AudioPayloadTypes> {
    let section = sdp
        .split("\nm=")
        .skip(1)
        .find(|s| s.starts_with("audio "))?;
    let pt_of = |codec: &str| {
        section.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("a=rtpmap:")?;
            let (pt, name) = rest.split_once(' ')?;
            let name = name.split('/').next()?;
            name.eq_ignore_ascii_case(codec)
                .then(|| pt.parse::<u8>().ok())
                .flatten()
        })
    };
    Some(AudioPayloadTypes {
        opus: pt_of("opus")?,
        red: pt_of("red"),
    })
}

/// The audio-level extension id of the offer's first audio m-line (the
/// microphone): `Some(None)` when it has none, `None` when the offer has
/// no audio m-line at all.
pub(crate) fn mic_audio_level_id(sdp: &str) -> Option<Option<u8>> {
    let mut sections = sdp.split("\nm=").skip(1);
    let first_audio = sections.find(|s| s.starts_with("audio "))?;
    let id = first_audio.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let uri = uri.split_whitespace().next()?;
        if uri != AUDIO_LEVEL_URI {
            return None;
        }
        // `id` or `id/direction`.
        id.split('/').next()?.parse::<u8>().ok()
    });
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mic_audio_level_id_comes_from_the_first_audio_section() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   a=extmap:14 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n\
                   a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(mic_audio_level_id(sdp), Some(Some(1)));
        let no_ext = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
        assert_eq!(mic_audio_level_id(no_ext), Some(None));
        assert_eq!(mic_audio_level_id("v=0\r\nm=video 9 X 96\r\n"), None);
        assert_eq!(mic_audio_level_id("garbage"), None);
    }

    #[test]
    fn payload_types_come_from_the_first_audio_section() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\na=mid:0\r\n\
                   a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n\
                   a=rtpmap:111 opus/48000/2\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 opus/48000/2\r\n";
        assert_eq!(
            audio_payload_types(sdp),
            Some(AudioPayloadTypes {
                opus: 111,
                red: Some(63)
            })
        );
        let plain = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 109\r\na=rtpmap:109 opus/48000/2\r\n";
        assert_eq!(
            audio_payload_types(plain),
            Some(AudioPayloadTypes {
                opus: 109,
                red: None
            })
        );
        assert_eq!(audio_payload_types("v=0\r\nm=audio 9 X 0\r\n"), None);
    }
}
