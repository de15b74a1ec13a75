//! The SFU's one task: every participant's sans-IO peer connection (the
//! webrtc-rs `rtc` core), one UDP socket for all of them, the rooms'
//! speaker selection and the forwarding.
//!
//! Datagrams are routed to a connection by source address, or, from an
//! address not seen yet, by the ICE username of a STUN request (each
//! connection has its own local ufrag). Commands from the control API come
//! in on a bounded channel and are answered on a oneshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::distr::{Alphanumeric, SampleString};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tincan_sfu_control::{ActiveSpeakers, NodeEvent, SlotSpeaker, DATA_CHANNEL_LABEL};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::connection::{self, audio_payload_types, mic_audio_level_id, AudioPayloadTypes, Slot};
use super::red;
use super::reports;
use super::speakers::{assign, rank, Level};
use crate::metrics::Metrics;
use crate::PeerFilter;

/// How often speakers are re-evaluated.
const TICK: Duration = Duration::from_millis(100);
/// Longest gap between two `active-speakers` events to one participant.
const SPEAKERS_EVERY: Duration =
    Duration::from_secs(tincan_sfu_control::ACTIVE_SPEAKERS_EVERY_SECS);
/// A participant whose connection is not up this long after its join is removed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Source addresses remembered per participant (ICE candidates tried).
const MAX_ADDRS_PER_PARTICIPANT: usize = 16;

/// What the control API asks of the engine.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        room: String,
        peer: String,
        muted: bool,
        offer: String,
        reply: oneshot::Sender<Result<String, JoinError>>,
    },
    Mute {
        room: String,
        peer: String,
        muted: bool,
        reply: oneshot::Sender<()>,
    },
    Leave {
        room: String,
        peer: String,
        reply: oneshot::Sender<()>,
    },
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the room is full")]
    RoomFull,
    #[error("the offer cannot be answered: {0}")]
    BadSdp(String),
    #[error("the node is draining")]
    Draining,
}

/// The engine's fixed settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) slots: usize,
    pub(crate) room_max: usize,
    /// The address put in answers' host candidate.
    pub(crate) advertised: SocketAddr,
    pub(crate) peers: PeerFilter,
}

struct Participant {
    room: String,
    peer: String,
    muted: bool,
    pc: RTCPeerConnection,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    slots: Vec<Slot>,
    audio_level_id: Option<u8>,
    /// The payload types its microphone sends (Opus, and RED if negotiated).
    payload_types: Option<AudioPayloadTypes>,
    /// How many earlier frames its RED slots carry, from its reports.
    redundancy: red::Redundancy,
    channel: Option<RTCDataChannelId>,
    deadline: Option<Instant>,
    joined_at: Instant,
    connected: bool,
    speakers_dirty: bool,
    speakers_sent: Option<Instant>,
}

#[derive(Default)]
struct Room {
    members: Vec<u64>,
    levels: HashMap<u64, Level>,
}

pub(crate) struct Engine {
    socket: UdpSocket,
    local_addr: SocketAddr,
    settings: Settings,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    participants: HashMap<u64, Participant>,
    by_name: HashMap<(String, String), u64>,
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
    rooms: HashMap<String, Room>,
    next_key: u64,
}

impl Engine {
    pub(crate) fn new(
        socket: UdpSocket,
        settings: Settings,
        metrics: Arc<Metrics>,
        draining: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let local_addr = socket.local_addr()?;
        Ok(Self {
            socket,
            local_addr,
            settings,
            metrics,
            draining,
            participants: HashMap::new(),
            by_name: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            next_key: 1,
        })
    }

    /// Runs until `commands` closes.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut next_tick = Instant::now() + TICK;
        loop {
            let next = self
                .participants
                .values()
                .filter_map(|p| p.deadline)
                .min()
                .map_or(next_tick, |d| d.min(next_tick));
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.datagram(&buf[..n], from),
                    Err(err) => {
                        // ICMP port unreachable and the like surface here on
                        // some systems; the socket itself is fine.
                        tracing::debug!(error = %err, "SFU socket read");
                    }
                },
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            }
            let now = Instant::now();
            let due: Vec<u64> = self
                .participants
                .iter()
                .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
                .map(|(k, _)| *k)
                .collect();
            for key in due {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.deadline = None;
                    if let Err(err) = p.pc.handle_timeout(now) {
                        tracing::debug!(error = %err, "SFU connection timeout handling");
                    }
                }
                self.pump(key, now);
            }
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK;
            }
        }
        let keys: Vec<u64> = self.participants.keys().copied().collect();
        for key in keys {
            self.remove(key);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                room,
                peer,
                muted,
                offer,
                reply,
            } => {
                let result = self.join(room, peer, muted, offer);
                if let Err(err) = &result {
                    tracing::debug!(error = %err, "SFU join refused");
                }
                let _ = reply.send(result);
            }
            Command::Mute {
                room,
                peer,
                muted,
                reply,
            } => {
                if let Some(&key) = self.by_name.get(&(room, peer)) {
                    if let Some(p) = self.participants.get_mut(&key) {
                        p.muted = muted;
                    }
                    if muted {
                        self.unassign(key);
                    }
                }
                let _ = reply.send(());
            }
            Command::Leave { room, peer, reply } => {
                if let Some(&key) = self.by_name.get(&(room, peer)) {
                    self.remove(key);
                }
                let _ = reply.send(());
            }
        }
    }

    fn join(
        &mut self,
        room: String,
        peer: String,
        muted: bool,
        offer: String,
    ) -> Result<String, JoinError> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(JoinError::Draining);
        }
        let existing = self.by_name.get(&(room.clone(), peer.clone())).copied();
        let members = self.rooms.get(&room).map_or(0, |r| r.members.len());
        if members - usize::from(existing.is_some()) >= self.settings.room_max {
            return Err(JoinError::RoomFull);
        }
        let now = Instant::now();
        let audio_level_id = mic_audio_level_id(&offer).ok_or_else(|| {
            JoinError::BadSdp("the offer has no audio m-line to publish on".to_owned())
        })?;
        let ufrag = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let (pc, slots) = connection::answerer(&self.settings, &ufrag, offer, now)?;
        let answer = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| JoinError::BadSdp("no answer".to_owned()))?;
        let payload_types = audio_payload_types(&answer);
        if let Some(old) = existing {
            self.remove(old);
        }
        let key = self.next_key;
        self.next_key += 1;
        self.by_name.insert((room.clone(), peer.clone()), key);
        self.by_ufrag.insert(ufrag.clone(), key);
        self.rooms
            .entry(room.clone())
            .or_default()
            .members
            .push(key);
        tracing::info!(%room, %peer, slots = slots.len(), "SFU participant joined");
        self.participants.insert(
            key,
            Participant {
                room,
                peer,
                muted,
                pc,
                ufrag,
                addrs: Vec::new(),
                slots,
                audio_level_id,
                payload_types,
                redundancy: red::Redundancy::default(),
                channel: None,
                deadline: None,
                joined_at: now,
                connected: false,
                speakers_dirty: true,
                speakers_sent: None,
            },
        );
        self.pump(key, now);
        self.update_gauges();
        Ok(answer)
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let key = match self.by_addr.get(&from) {
            Some(&key) => key,
            None => {
                let Some(key) = stun_local_ufrag(data).and_then(|u| self.by_ufrag.get(u).copied())
                else {
                    return;
                };
                if let Some(p) = self.participants.get_mut(&key) {
                    if p.addrs.len() >= MAX_ADDRS_PER_PARTICIPANT {
                        let oldest = p.addrs.remove(0);
                        self.by_addr.remove(&oldest);
                    }
                    p.addrs.push(from);
                }
                self.by_addr.insert(from, key);
                key
            }
        };
        let now = Instant::now();
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let read = p.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
        if let Err(err) = read {
            tracing::trace!(error = %err, "SFU datagram refused");
        }
        self.pump(key, now);
    }

    /// Drains a connection's output: datagrams, events, media.
    fn pump(&mut self, key: u64, now: Instant) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        flush(&self.socket, &self.settings.peers, &self.metrics, &mut p.pc);
        let mut gone = false;
        while let Some(event) = p.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => p.connected = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => gone = true,
                    _ => {}
                },
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                    let ours =
                        p.pc.data_channel(id)
                            .is_some_and(|dc| dc.label() == DATA_CHANNEL_LABEL);
                    if ours {
                        p.channel = Some(id);
                        p.speakers_dirty = true;
                    }
                }
                _ => {}
            }
        }
        let mut packets = Vec::new();
        while let Some(message) = p.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(_, packet) => packets.push(packet),
                RTCMessage::RtcpPacket(_, rtcp) => {
                    let ssrcs: Vec<u32> = p.slots.iter().map(|s| s.stream.ssrc).collect();
                    if let Some(lost) = reports::worst_fraction_lost(&rtcp, &ssrcs) {
                        p.redundancy.report(lost);
                    }
                }
                _ => {}
            }
        }
        p.deadline = p.pc.poll_timeout();
        if gone {
            tracing::info!(room = %p.room, peer = %p.peer, "SFU connection ended");
            self.remove(key);
            return;
        }
        for packet in packets {
            self.media(key, packet, now);
        }
    }

    /// A packet from `from`'s microphone.
    fn media(&mut self, from: u64, packet: rtc::rtp::Packet, now: Instant) {
        let Some(p) = self.participants.get(&from) else {
            return;
        };
        if p.muted {
            self.metrics.sfu_muted(1);
            return;
        }
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        if let Some(level) = p
            .audio_level_id
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|ext| ext.first().copied())
        {
            room.levels
                .entry(from)
                .or_default()
                .observe(level & 0x7f, now);
        }
        // Slots that negotiated RED get RED built for them (this frame and
        // as many earlier ones as the subscriber's loss calls for); the
        // others get the Opus frame alone.
        let publisher_opus = p.payload_types.map(|t| t.opus);
        let is_red = p
            .payload_types
            .and_then(|t| t.red)
            .is_some_and(|pt| pt == packet.header.payload_type);
        let frame = red::opus_frame(&packet.payload, is_red, publisher_opus);
        let room = &*room;
        for &to in &room.members {
            if to == from {
                continue;
            }
            let Some(sub) = self.participants.get_mut(&to) else {
                continue;
            };
            // Nothing can be sent before DTLS-SRTP is up.
            if !sub.connected {
                continue;
            }
            let redundancy = sub.redundancy.level();
            let mut wrote = false;
            for slot in &mut sub.slots {
                let Some(out) = slot.stream.rewrite(
                    from,
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    packet.header.marker,
                    now,
                ) else {
                    continue;
                };
                let (payload_type, payload) = match (&frame, slot.red) {
                    (Some(frame), Some(red_pt)) => (
                        red_pt,
                        Some(slot.red_encoder.encode(
                            out.timestamp,
                            slot.payload_type,
                            frame,
                            redundancy,
                        )),
                    ),
                    (frame, _) => (slot.payload_type, frame.clone()),
                };
                let Some(payload) = payload else {
                    // Malformed RED, a primary that is not Opus, or nothing.
                    self.metrics.sfu_dropped(1);
                    continue;
                };
                let mut header = packet.header.clone();
                header.ssrc = out.ssrc;
                header.sequence_number = out.sequence_number;
                header.timestamp = out.timestamp;
                header.marker = out.marker;
                header.payload_type = payload_type;
                header.extension = false;
                header.extensions.clear();
                header.extensions_padding = 0;
                header.csrc.clear();
                let forwarded = rtc::rtp::Packet { header, payload };
                let written = sub
                    .pc
                    .rtp_sender(slot.sender)
                    .map(|mut s| s.write_rtp(now, forwarded));
                match written {
                    Some(Ok(())) => {
                        self.metrics.sfu_forwarded(1);
                        wrote = true;
                    }
                    _ => self.metrics.sfu_dropped(1),
                }
            }
            if wrote {
                flush(
                    &self.socket,
                    &self.settings.peers,
                    &self.metrics,
                    &mut sub.pc,
                );
                sub.deadline = sub.pc.poll_timeout();
            }
        }
    }

    /// Re-evaluates every room's speakers and tells who changed.
    fn tick(&mut self, now: Instant) {
        let stale: Vec<u64> = self
            .participants
            .iter()
            .filter(|(_, p)| !p.connected && now.duration_since(p.joined_at) > CONNECT_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            tracing::info!("SFU participant never connected; removed");
            self.remove(key);
        }
        let names: HashMap<u64, String> = self
            .participants
            .iter()
            .map(|(k, p)| (*k, p.peer.clone()))
            .collect();
        let mut streams = 0u64;
        for room in self.rooms.values() {
            let participants = &self.participants;
            let ranked = rank(
                &room.levels,
                |k| participants.get(&k).is_some_and(|p| !p.muted),
                now,
            );
            for &member in &room.members {
                let Some(p) = self.participants.get_mut(&member) else {
                    continue;
                };
                let mut current: Vec<Option<u64>> =
                    p.slots.iter().map(|s| s.stream.source()).collect();
                if assign(&mut current, &ranked, member) {
                    for (slot, source) in p.slots.iter_mut().zip(current) {
                        slot.stream.set_source(source);
                    }
                    p.speakers_dirty = true;
                }
                streams += p
                    .slots
                    .iter()
                    .filter(|s| s.stream.source().is_some())
                    .count() as u64;
                let due = p
                    .speakers_sent
                    .is_none_or(|t| now.duration_since(t) >= SPEAKERS_EVERY);
                let Some(channel) = p.channel else {
                    continue;
                };
                if !(p.speakers_dirty || due) {
                    continue;
                }
                let event = NodeEvent::ActiveSpeakers(ActiveSpeakers {
                    slots: p
                        .slots
                        .iter()
                        .enumerate()
                        .map(|(slot, s)| {
                            let k = s.stream.source()?;
                            Some(SlotSpeaker {
                                slot,
                                peer_id: names.get(&k)?.clone(),
                                level: room.levels.get(&k).map_or(-127, Level::reported),
                            })
                        })
                        .collect(),
                });
                let Ok(text) = serde_json::to_string(&event) else {
                    continue;
                };
                let sent =
                    p.pc.data_channel(channel)
                        .map(|mut dc| dc.send_text(now, text));
                match sent {
                    Some(Ok(())) => {
                        p.speakers_dirty = false;
                        p.speakers_sent = Some(now);
                    }
                    _ => tracing::debug!(peer = %p.peer, "active-speakers not sent"),
                }
                flush(&self.socket, &self.settings.peers, &self.metrics, &mut p.pc);
                p.deadline = p.pc.poll_timeout();
            }
        }
        self.metrics.sfu_streams.store(streams, Ordering::Relaxed);
    }

    /// Takes `key` out of every slot in its room (it left or muted).
    fn unassign(&mut self, key: u64) {
        let Some(room) = self.participants.get(&key).map(|p| p.room.clone()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room) else {
            return;
        };
        room.levels.remove(&key);
        for member in &room.members {
            if let Some(p) = self.participants.get_mut(member) {
                for slot in &mut p.slots {
                    if slot.stream.source() == Some(key) {
                        slot.stream.set_source(None);
                        p.speakers_dirty = true;
                    }
                }
            }
        }
    }

    /// Closes and forgets a participant, freeing its slots everywhere.
    fn remove(&mut self, key: u64) {
        self.unassign(key);
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        if let Err(err) = p.pc.close() {
            tracing::debug!(error = %err, "SFU connection close");
        }
        flush(&self.socket, &self.settings.peers, &self.metrics, &mut p.pc);
        if self.by_name.get(&(p.room.clone(), p.peer.clone())) == Some(&key) {
            self.by_name.remove(&(p.room.clone(), p.peer.clone()));
        }
        self.by_ufrag.remove(&p.ufrag);
        for addr in &p.addrs {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != key);
            if room.members.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        tracing::info!(room = %p.room, peer = %p.peer, "SFU participant left");
        self.update_gauges();
    }

    fn update_gauges(&self) {
        self.metrics
            .sfu_participants
            .store(self.participants.len() as u64, Ordering::Relaxed);
        self.metrics
            .sfu_rooms
            .store(self.rooms.len() as u64, Ordering::Relaxed);
    }
}

/// Sends a connection's pending datagrams; never blocks (a full socket
/// buffer drops, as the network would).
fn flush(socket: &UdpSocket, peers: &PeerFilter, metrics: &Metrics, pc: &mut RTCPeerConnection) {
    while let Some(out) = pc.poll_write() {
        let to = out.transport.peer_addr;
        if peers.is_denied(to.ip()) {
            metrics.sfu_dropped(1);
            continue;
        }
        if socket.try_send_to(&out.message, to).is_err() {
            metrics.sfu_dropped(1);
        }
    }
}

/// The local ufrag a STUN request is addressed to: the part of its
/// USERNAME before the colon.
pub(crate) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let size = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + size)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + size.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username_routes_by_local_ufrag() {
        let mut msg = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        msg.extend_from_slice(&[7; 12]);
        let username = b"abcd:wxyz1";
        let mut attrs = vec![0x00, 0x06, 0, username.len() as u8];
        attrs.extend_from_slice(username);
        attrs.extend_from_slice(&[0, 0]);
        msg[3] = attrs.len() as u8;
        msg.extend_from_slice(&attrs);
        assert_eq!(stun_local_ufrag(&msg), Some("abcd"));
        assert_eq!(stun_local_ufrag(&msg[..21]), None);
        assert_eq!(
            stun_local_ufrag(b"\x80\x00rtp packet, not stun at all"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_parses_or_is_refused_without_panic(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            stun in proptest::bool::ANY,
        ) {
            let mut data = data;
            if stun && data.len() >= 8 {
                data[0] &= 0x3f;
                data[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            }
            let _ = stun_local_ufrag(&data);
        }
    }
}
