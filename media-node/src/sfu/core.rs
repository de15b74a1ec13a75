//! The SFU itself, IO-free: every participant's sans-IO peer connection
//! (the webrtc-rs `rtc` core), the rooms ([`Rooms`]) and the forwarding.
//! It owns no socket and reads no clock; randomness (ICE credentials,
//! SSRCs) comes from the RNG it is given.
//!
//! The caller feeds it "a datagram arrived" ([`SfuCore::datagram`]), "a
//! command arrived" ([`SfuCore::join`], [`SfuCore::mute`],
//! [`SfuCore::leave`], each answered by its return value) and "time is now"
//! ([`SfuCore::handle_timeout`]), each with `now`; then drains the
//! datagrams to send ([`SfuCore::poll_transmit`]) and the packet counts
//! ([`SfuCore::take_tally`]), and sleeps until [`SfuCore::poll_timeout`].
//! Deadlines sit in a heap, so a datagram costs no scan over participants.
//!
//! Datagrams are routed to a connection by source address, or, from an
//! address not seen yet, by the ICE username of a STUN request
//! ([`stun_local_ufrag`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tincan_sfu_control::{NodeEvent, DATA_CHANNEL_LABEL};

use super::connection::{
    self, audio_payload_types, mic_audio_level_id, AnswerParams, AudioPayloadTypes, Slot,
};
use super::red;
use super::reports;
use super::room::{Key, Refusal, Rooms};
use super::stun::stun_local_ufrag;

/// How often speakers are re-evaluated.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// A participant whose connection is not up this long after its join is removed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Source addresses remembered per participant (ICE candidates tried).
const MAX_ADDRS_PER_PARTICIPANT: usize = 16;

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

impl From<Refusal> for JoinError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::RoomFull => JoinError::RoomFull,
            Refusal::Draining => JoinError::Draining,
        }
    }
}

impl From<connection::SdpError> for JoinError {
    fn from(err: connection::SdpError) -> Self {
        JoinError::BadSdp(err.0)
    }
}

/// The core's fixed settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreSettings {
    /// Receive slots per participant.
    pub(crate) slots: usize,
    /// Participants per room.
    pub(crate) room_max: usize,
    /// The address put in answers' host candidate.
    pub(crate) advertised: SocketAddr,
    /// The address datagrams arrive on.
    pub(crate) local: SocketAddr,
}

/// A datagram to send.
#[derive(Debug)]
pub(crate) struct Transmit {
    pub(crate) to: SocketAddr,
    pub(crate) bytes: BytesMut,
}

/// Packets counted since the last [`SfuCore::take_tally`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) forwarded: u64,
    /// Dropped: malformed RED, a primary that is not Opus, a write refused.
    pub(crate) dropped: u64,
    /// From muted publishers.
    pub(crate) muted: u64,
}

/// What the SFU holds now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gauges {
    pub(crate) participants: u64,
    pub(crate) rooms: u64,
    /// Slots carrying a speaker, as of the last tick.
    pub(crate) streams: u64,
}

/// What a deadline in the heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The connection's own timers (`poll_timeout`).
    Connection(Key),
    /// The connection must be up by then.
    ConnectBy(Key),
}

struct Participant {
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
    /// The connection's deadline, as last pushed onto the heap.
    deadline: Option<Instant>,
    connect_by: Instant,
    connected: bool,
    /// Packets it sent us, and packets we sent it (for the log line when
    /// it leaves: a listener who heard nothing shows as `sent: 0`).
    received: u64,
    sent: u64,
}

pub(crate) struct SfuCore {
    settings: CoreSettings,
    rng: StdRng,
    participants: HashMap<Key, Participant>,
    by_ufrag: HashMap<String, Key>,
    by_addr: HashMap<SocketAddr, Key>,
    rooms: Rooms,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    next_tick: Instant,
    transmits: VecDeque<Transmit>,
    tally: Tally,
    streams: u64,
    next_key: Key,
}

impl SfuCore {
    /// An SFU with nobody in it; its first tick is [`TICK`] after `now`.
    pub(crate) fn new(settings: CoreSettings, rng: StdRng, now: Instant) -> Self {
        Self {
            settings,
            rng,
            participants: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: Rooms::new(settings.room_max),
            timers: BinaryHeap::new(),
            next_tick: now + TICK,
            transmits: VecDeque::new(),
            tally: Tally::default(),
            streams: 0,
            next_key: 1,
        }
    }

    /// A draining node admits nobody.
    pub(crate) fn set_draining(&mut self, draining: bool) {
        self.rooms.set_draining(draining);
    }

    /// `peer` joins `room` with `offer` (a rejoin replaces its connection):
    /// the answer.
    pub(crate) fn join(
        &mut self,
        room: &str,
        peer: &str,
        muted: bool,
        offer: String,
        now: Instant,
    ) -> Result<String, JoinError> {
        let existing = self.rooms.admit(room, peer)?;
        let audio_level_id = mic_audio_level_id(&offer).ok_or_else(|| {
            JoinError::BadSdp("the offer has no audio m-line to publish on".to_owned())
        })?;
        let ufrag = Alphanumeric.sample_string(&mut self.rng, 16);
        let params = AnswerParams {
            slots: self.settings.slots,
            advertised: self.settings.advertised,
            ufrag: &ufrag,
        };
        let (pc, slots) = connection::answerer(&params, offer, &mut self.rng, now)?;
        let answer = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| JoinError::BadSdp("no answer".to_owned()))?;
        let payload_types = audio_payload_types(&answer);
        if let Some(old) = existing {
            self.remove(old, "replaced by a rejoin");
        }
        let key = self.next_key;
        self.next_key += 1;
        self.by_ufrag.insert(ufrag.clone(), key);
        self.rooms.insert(key, room, peer, muted, slots.len());
        tracing::info!(%room, %peer, slots = slots.len(), "SFU participant joined");
        let connect_by = now + CONNECT_TIMEOUT;
        self.timers
            .push(Reverse((connect_by, Timer::ConnectBy(key))));
        self.participants.insert(
            key,
            Participant {
                pc,
                ufrag,
                addrs: Vec::new(),
                slots,
                audio_level_id,
                payload_types,
                redundancy: red::Redundancy::default(),
                channel: None,
                deadline: None,
                connect_by,
                connected: false,
                received: 0,
                sent: 0,
            },
        );
        self.pump(key, now);
        Ok(answer)
    }

    /// Mutes or unmutes `peer` of `room`; nothing if it is not here.
    pub(crate) fn mute(&mut self, room: &str, peer: &str, muted: bool) {
        if let Some(key) = self.rooms.key_of(room, peer) {
            self.rooms.set_muted(key, muted);
            self.sync_slots();
        }
    }

    /// `peer` leaves `room`; nothing if it is not here.
    pub(crate) fn leave(&mut self, room: &str, peer: &str) {
        if let Some(key) = self.rooms.key_of(room, peer) {
            self.remove(key, "left");
        }
    }

    /// Closes every connection (the node stops).
    pub(crate) fn close_all(&mut self) {
        let keys: Vec<Key> = self.participants.keys().copied().collect();
        for key in keys {
            self.remove(key, "the SFU stopped");
        }
    }

    /// A datagram from `from`.
    pub(crate) fn datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
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
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let read = p.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.settings.local,
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

    /// Runs what is due at `now`: connections' timers, connect deadlines,
    /// the speakers' tick.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        // What is due now; deadlines the handling sets go to the next call.
        let mut due = Vec::new();
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            due.push((at, timer));
        }
        for (at, timer) in due {
            // A stale entry: the deadline moved since, or its connection
            // is gone or up.
            if !self.is_live(at, timer) {
                continue;
            }
            match timer {
                Timer::Connection(key) => {
                    let Some(p) = self.participants.get_mut(&key) else {
                        continue;
                    };
                    p.deadline = None;
                    if let Err(err) = p.pc.handle_timeout(now) {
                        tracing::debug!(error = %err, "SFU connection timeout handling");
                    }
                    self.pump(key, now);
                }
                Timer::ConnectBy(key) => self.remove(key, "never connected"),
            }
        }
        if now >= self.next_tick {
            self.tick(now);
            self.next_tick = now + TICK;
        }
        self.compact_timers();
    }

    /// When [`SfuCore::handle_timeout`] is next due. Stale entries (a
    /// deadline that moved since it was pushed) are dropped from the top of
    /// the heap first, so the caller never wakes for nothing.
    pub(crate) fn poll_timeout(&mut self) -> Instant {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if self.is_live(at, timer) {
                return at.min(self.next_tick);
            }
            self.timers.pop();
        }
        self.next_tick
    }

    /// A heap entry still stands for a deadline.
    fn is_live(&self, at: Instant, timer: Timer) -> bool {
        match timer {
            Timer::Connection(key) => self
                .participants
                .get(&key)
                .is_some_and(|p| p.deadline == Some(at)),
            Timer::ConnectBy(key) => self
                .participants
                .get(&key)
                .is_some_and(|p| !p.connected && p.connect_by == at),
        }
    }

    /// The next datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The packet counts since the last call.
    pub(crate) fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            participants: self.participants.len() as u64,
            rooms: self.rooms.room_count() as u64,
            streams: self.streams,
        }
    }

    /// Drains a connection's output: datagrams, events, media.
    fn pump(&mut self, key: Key, now: Instant) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        flush(&mut self.transmits, &mut p.pc);
        let mut gone = false;
        let mut opened = false;
        while let Some(event) = p.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => {
                        p.connected = true;
                        let (room, peer) = self.rooms.name_of(key).unwrap_or_default();
                        tracing::info!(room, peer, "SFU participant connected");
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => gone = true,
                    _ => {}
                },
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                    let ours =
                        p.pc.data_channel(id)
                            .is_some_and(|dc| dc.label() == DATA_CHANNEL_LABEL);
                    if ours {
                        p.channel = Some(id);
                        opened = true;
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
        reschedule(&mut self.timers, key, p);
        if opened {
            self.rooms.open_channel(key);
        }
        if gone {
            self.remove(key, "connection ended");
            return;
        }
        for packet in packets {
            self.media(key, packet, now);
        }
    }

    /// A packet from `from`'s microphone.
    fn media(&mut self, from: Key, packet: rtc::rtp::Packet, now: Instant) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        p.received += 1;
        let (audio_level_id, payload_types) = (p.audio_level_id, p.payload_types);
        match self.rooms.is_muted(from) {
            Some(false) => {}
            Some(true) => {
                self.tally.muted += 1;
                return;
            }
            None => return,
        }
        if let Some(level) = audio_level_id
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|ext| ext.first().copied())
        {
            self.rooms.observe(from, level, now);
        }
        // Slots that negotiated RED get RED built for them (this frame and
        // as many earlier ones as the subscriber's loss calls for); the
        // others get the Opus frame alone.
        let publisher_opus = payload_types.map(|t| t.opus);
        let is_red = payload_types
            .and_then(|t| t.red)
            .is_some_and(|pt| pt == packet.header.payload_type);
        let frame = red::opus_frame(&packet.payload, is_red, publisher_opus);
        for (to, index) in self.rooms.routes(from) {
            let Some(sub) = self.participants.get_mut(&to) else {
                continue;
            };
            // Nothing can be sent before DTLS-SRTP is up.
            if !sub.connected {
                continue;
            }
            let Some(slot) = sub.slots.get_mut(index) else {
                continue;
            };
            debug_assert_eq!(slot.stream.source(), Some(from), "streams mirror the rooms");
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
                        sub.redundancy.level(),
                    )),
                ),
                (frame, _) => (slot.payload_type, frame.clone()),
            };
            let Some(payload) = payload else {
                // Malformed RED, a primary that is not Opus, or nothing.
                self.tally.dropped += 1;
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
                    self.tally.forwarded += 1;
                    sub.sent += 1;
                    flush(&mut self.transmits, &mut sub.pc);
                    reschedule(&mut self.timers, to, sub);
                }
                _ => self.tally.dropped += 1,
            }
        }
    }

    /// Re-evaluates every room's speakers and tells who changed.
    fn tick(&mut self, now: Instant) {
        let tick = self.rooms.tick(now);
        self.sync_slots();
        self.streams = tick.streams;
        for (key, event) in tick.events {
            let Some(p) = self.participants.get_mut(&key) else {
                continue;
            };
            let Some(channel) = p.channel else {
                continue;
            };
            let Ok(text) = serde_json::to_string(&NodeEvent::ActiveSpeakers(event)) else {
                continue;
            };
            let sent =
                p.pc.data_channel(channel)
                    .map(|mut dc| dc.send_text(now, text));
            match sent {
                Some(Ok(())) => self.rooms.speakers_sent(key, now),
                _ => tracing::debug!(key, "active-speakers not sent"),
            }
            flush(&mut self.transmits, &mut p.pc);
            reschedule(&mut self.timers, key, p);
        }
    }

    /// Mirrors the rooms' slot assignment into the slots' streams.
    fn sync_slots(&mut self) {
        for key in self.rooms.take_changed() {
            let Some(p) = self.participants.get_mut(&key) else {
                continue;
            };
            for (slot, source) in p.slots.iter_mut().zip(self.rooms.slots(key)) {
                slot.stream.set_source(*source);
            }
        }
    }

    /// Closes and forgets a participant, freeing its slots everywhere.
    fn remove(&mut self, key: Key, why: &'static str) {
        let name = self.rooms.remove(key);
        self.sync_slots();
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        if let Err(err) = p.pc.close() {
            tracing::debug!(error = %err, "SFU connection close");
        }
        flush(&mut self.transmits, &mut p.pc);
        self.by_ufrag.remove(&p.ufrag);
        for addr in &p.addrs {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        let (room, peer) = name.unwrap_or_default();
        tracing::info!(
            %room,
            %peer,
            why,
            received = p.received,
            sent = p.sent,
            "SFU participant left"
        );
    }

    /// Drops stale heap entries once they outnumber the live ones well.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 64 + 4 * self.participants.len() {
            return;
        }
        self.timers = self
            .participants
            .iter()
            .flat_map(|(&key, p)| {
                let own = p.deadline.map(|at| Reverse((at, Timer::Connection(key))));
                let connect =
                    (!p.connected).then_some(Reverse((p.connect_by, Timer::ConnectBy(key))));
                own.into_iter().chain(connect)
            })
            .collect();
    }
}

/// Queues a connection's pending datagrams.
fn flush(transmits: &mut VecDeque<Transmit>, pc: &mut RTCPeerConnection) {
    while let Some(out) = pc.poll_write() {
        transmits.push_back(Transmit {
            to: out.transport.peer_addr,
            bytes: out.message,
        });
    }
}

/// Puts a connection's next deadline on the heap if it moved.
fn reschedule(timers: &mut BinaryHeap<Reverse<(Instant, Timer)>>, key: Key, p: &mut Participant) {
    let next = p.pc.poll_timeout();
    if next != p.deadline {
        p.deadline = next;
        if let Some(at) = next {
            timers.push(Reverse((at, Timer::Connection(key))));
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
