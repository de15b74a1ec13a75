//! Room rules: a parsed message plus the state the caller loaded, in; effects
//! out.
//!
//! A *participant* (a peer in a room) is not a connection. Its `peerId` is
//! random and stays the same across socket reconnects: when a socket drops,
//! the participant is *detached* for the resume grace and may be resumed by
//! a new connection of the same user that presents its resume token. Every
//! membership change is one atomic store operation whose outcome (who was in
//! the room at the moment of the write) the core turns into announcements,
//! so each pair of participants learns of each other exactly once however
//! joins interleave.

use sha2::{Digest, Sha256};

use crate::effect::{CloseReason, Effect, JoinCommitted, Outgoing};
use crate::error::{ErrorCode, ProtocolError};
use crate::message::{
    ClientMessage, IceServer, MediaMode, Peer, ResumeGrant, RoomState, ServerMessage, SfuInfo,
};
use crate::message_rate::{MessageRate, RateVerdict};
use crate::room_id::RoomId;
use crate::state::on_sfu;
pub use crate::state::{Fresh, Grants, Member, ResumeProof, RoomView, Seat, Sender, SocketEnd};

/// Limits the core enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest client frame accepted, in bytes (`TINCAN_MAX_MESSAGE`).
    pub max_message_bytes: usize,
    /// Most participants one room holds (`TINCAN_ROOM_MAX`).
    pub room_max: usize,
    /// How long a detached participant may be resumed
    /// (`TINCAN_RESUME_GRACE_SECS`).
    pub resume_grace_secs: u64,
    /// Most signals kept for a detached participant.
    pub mailbox_max: usize,
    /// Most participants of a mesh room; one more moves the room to the SFU
    /// (`TINCAN_MESH_MAX`, default 4 where an SFU exists; the default here,
    /// `room_max`, means no SFU).
    pub mesh_max: usize,
    /// Receive slots of an SFU participant (`TINCAN_SFU_SLOTS`).
    pub sfu_slots: usize,
    /// Messages per socket (`TINCAN_MSG_RATE`, `TINCAN_MSG_BURST`).
    pub msg_rate: MessageRate,
    /// Most live sockets of one user (`TINCAN_MAX_SOCKETS_PER_USER`; 0: no
    /// limit).
    pub max_sockets_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            room_max: 8,
            resume_grace_secs: 30,
            mailbox_max: 64,
            // No SFU unless the caller has one: every room a mesh.
            mesh_max: 8,
            sfu_slots: 3,
            msg_rate: MessageRate {
                per_sec: 20,
                burst: 40,
            },
            max_sockets_per_user: 8,
        }
    }
}

/// The signaling rules, configured with [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct Core {
    limits: Limits,
}

impl Core {
    /// A core enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Parses a client text frame, refusing it if over the size limit.
    pub fn parse(&self, text: &str) -> Result<ClientMessage, ProtocolError> {
        if text.len() > self.limits.max_message_bytes {
            return Err(ProtocolError::new(
                ErrorCode::TooLarge,
                format!(
                    "message is {} bytes; the limit is {}",
                    text.len(),
                    self.limits.max_message_bytes
                ),
            ));
        }
        ClientMessage::from_json(text)
    }

    /// What a frame that [`MessageRate::take`] judged `verdict` gets before
    /// anything else: nothing when it passes (go on with
    /// [`Core::parse`]); a `rate-limited` error with its retry-after, or a
    /// close, when it does not (and the frame is not handled).
    pub fn admit(&self, connection_id: &str, verdict: RateVerdict) -> Vec<Effect> {
        match verdict {
            RateVerdict::Pass => Vec::new(),
            RateVerdict::Limited { retry_after_ms } => vec![send(
                connection_id,
                ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    message: "too many messages; slow down".to_owned(),
                    retry_after_ms: Some(retry_after_ms),
                },
            )
            .into()],
            RateVerdict::Close => vec![Effect::Close {
                connection_id: connection_id.to_owned(),
                reason: CloseReason::RateExceeded,
            }],
        }
    }

    /// The room whose members [`Core::handle`] needs for `msg`: the room
    /// being joined or resumed, else the sender's room.
    pub fn room_needed(&self, sender: &Sender, msg: &ClientMessage) -> Option<String> {
        match msg {
            ClientMessage::Join { room } => Some(room.to_string()),
            ClientMessage::Resume { token, .. } => split_token(token).map(|(room, _)| room.into()),
            _ => sender.seat.as_ref().map(|seat| seat.room.clone()),
        }
    }

    /// The effects of `msg` from `sender` at `now_ms`. `room` is the view of
    /// the room named by [`Core::room_needed`]; `fresh` draws the random
    /// values a join or resume takes (called only for those, so other
    /// messages cost no randomness).
    pub fn handle(
        &self,
        sender: &Sender,
        msg: ClientMessage,
        room: Option<&RoomView>,
        fresh: impl FnOnce() -> Fresh,
        now_ms: u64,
    ) -> Vec<Effect> {
        let me = sender.connection_id.as_str();
        // The sender's participant counts only while attached to it.
        let seat = sender.seat.as_ref().filter(|seat| {
            room.filter(|v| v.room == seat.room)
                .and_then(|v| v.member(&seat.peer_id))
                .is_some_and(|m| m.is_attached_to(me))
        });
        match msg {
            ClientMessage::Ping => vec![Effect::Push(send(me, ServerMessage::Pong))],
            ClientMessage::Join { room: target } => {
                if !sender.grants.allows_room(target.as_str()) {
                    return vec![Effect::Push(join_token_room(me, &sender.grants))];
                }
                let view = room.filter(|v| v.room == target);
                if let Some(seat) = seat.filter(|s| s.room == target) {
                    // Joining the room you are in: say where you are again,
                    // with a new resume token.
                    let (grant, new_hash) = self.grant(&target, &fresh());
                    return vec![Effect::Resume {
                        peer_id: seat.peer_id.clone(),
                        room: target,
                        proof: ResumeProof::AlreadyAttached,
                        new_hash,
                        grant,
                    }];
                }
                let seated = view.map_or(0, |v| v.members.len());
                if seated >= self.limits.room_max {
                    // Refused before anything moves: the sender stays where it was.
                    return vec![Effect::Push(room_full(me, &target, self.limits.room_max))];
                }
                let fresh = fresh();
                let (grant, resume_hash) = self.grant(&target, &fresh);
                let listen_only = sender.grants.listen_only;
                vec![Effect::Join {
                    member: Member {
                        peer: Peer {
                            peer_id: fresh.peer_id.clone(),
                            user_id: sender.user_id.clone(),
                            display_name: sender.display_name.clone(),
                            // A listener joins muted and stays so.
                            muted: listen_only,
                            listen_only,
                        },
                        connection_id: Some(me.to_owned()),
                        resume_until_ms: None,
                        resume_hash,
                        joined_at_ms: now_ms,
                        sfu: false,
                    },
                    room: target,
                    room_max: self.limits.room_max,
                    grant,
                }]
            }
            ClientMessage::Leave => match seat {
                Some(seat) => vec![Effect::Leave {
                    seat: seat.clone(),
                    at_ms: now_ms,
                }],
                // Leaving when in no room is already done.
                None => Vec::new(),
            },
            ClientMessage::Resume { peer_id, token } => {
                let Some((target, secret)) = split_token(&token) else {
                    return vec![Effect::Push(resume_failed(me))];
                };
                if !sender.grants.allows_room(target.as_str()) {
                    return vec![Effect::Push(join_token_room(me, &sender.grants))];
                }
                if seat.is_some_and(|s| s.peer_id != peer_id) {
                    return vec![Effect::Push(error(
                        me,
                        ErrorCode::BadRequest,
                        "this connection already speaks for another participant; leave first",
                    ))];
                }
                let (grant, new_hash) = self.grant(&target, &fresh());
                vec![Effect::Resume {
                    peer_id,
                    room: target,
                    proof: ResumeProof::Token(resume_hash(secret)),
                    new_hash,
                    grant,
                }]
            }
            ClientMessage::Signal { to, data } => {
                let target =
                    seat.and_then(|s| room.and_then(|v| v.member(&to)).filter(|_| to != s.peer_id));
                match (seat, target) {
                    (Some(seat), Some(target)) => vec![Effect::Push(Outgoing::Deliver {
                        peer_id: to.clone(),
                        connection_id: target.connection_id.clone(),
                        msg: ServerMessage::Signal {
                            from: seat.peer_id.clone(),
                            to,
                            data,
                        },
                    })],
                    _ => vec![Effect::Push(error(
                        me,
                        ErrorCode::NotInRoom,
                        "that peer is not in your room",
                    ))],
                }
            }
            ClientMessage::Media { path } => match seat {
                Some(seat) => vec![Effect::RecordMediaPath {
                    seat: seat.clone(),
                    path,
                }],
                None => vec![Effect::Push(error(
                    me,
                    ErrorCode::NotInRoom,
                    "join a room first",
                ))],
            },
            ClientMessage::SfuOffer { sdp } => match seat {
                Some(seat) if room.is_some_and(|v| v.on_sfu(self.limits.mesh_max)) => {
                    vec![Effect::SfuOffer {
                        seat: seat.clone(),
                        sdp,
                    }]
                }
                Some(_) => vec![Effect::Push(error(
                    me,
                    ErrorCode::NotSfu,
                    "this room is a mesh; offer to your peers with `signal`",
                ))],
                None => vec![Effect::Push(error(
                    me,
                    ErrorCode::NotInRoom,
                    "join a room first",
                ))],
            },
            ClientMessage::Mute { muted } => match seat {
                Some(seat)
                    if !muted
                        && (sender.grants.listen_only
                            || room
                                .and_then(|v| v.member(&seat.peer_id))
                                .is_some_and(|m| m.peer.listen_only)) =>
                {
                    vec![Effect::Push(error(
                        me,
                        ErrorCode::ListenOnly,
                        "this participant may only listen; it cannot unmute",
                    ))]
                }
                Some(seat) => vec![Effect::SetMuted {
                    seat: seat.clone(),
                    muted,
                }],
                None => vec![Effect::Push(error(
                    me,
                    ErrorCode::NotInRoom,
                    "join a room first",
                ))],
            },
        }
    }

    /// The announcements after an [`Effect::Join`] committed: `joined` to
    /// the sender, `peer-joined` to the others as they were at the moment of
    /// the write (so of two joiners, exactly one sees the other), and
    /// `peer-left` in the room the sender's previous participant left.
    pub fn announce_join(
        &self,
        sender: &Sender,
        join: JoinCommitted<'_>,
        ice_servers: &[IceServer],
    ) -> Vec<Outgoing> {
        let sfu = on_sfu(join.others.len() + 1, join.others, self.limits.mesh_max);
        let (mode, info) = self.media(sfu);
        let mut effects = vec![send(
            &sender.connection_id,
            ServerMessage::Joined(RoomState {
                room: join.room.clone(),
                self_peer: join.member.peer.clone(),
                peers: join.others.iter().map(|m| m.peer.clone()).collect(),
                ice_servers: ice_servers.to_vec(),
                resume: join.grant,
                mode,
                sfu: info,
            }),
        )];
        for other in join.others {
            effects.extend(deliver(
                other,
                ServerMessage::PeerJoined {
                    peer: join.member.peer.clone(),
                },
            ));
            // Whoever is not on the SFU yet moves there now. Two joins that
            // cross the threshold together both say so: clients take a
            // repeated `room-mode` as a no-op.
            if sfu && !other.sfu {
                effects.extend(deliver(other, ServerMessage::RoomMode { mode, sfu: info }));
            }
        }
        if let Some((left, remaining)) = join.departure {
            effects.extend(self.announce_leave(&left.peer.peer_id, remaining));
        }
        effects
    }

    /// `resumed` for the sender, now speaking for `member` in `room`, whose
    /// members are `view` (as read after the resume).
    pub fn announce_resume(
        &self,
        sender: &Sender,
        room: &RoomId,
        member: &Member,
        view: &RoomView,
        grant: ResumeGrant,
        ice_servers: &[IceServer],
    ) -> Vec<Outgoing> {
        let (mode, sfu) = self.media(view.on_sfu(self.limits.mesh_max));
        vec![send(
            &sender.connection_id,
            ServerMessage::Resumed(RoomState {
                room: room.clone(),
                self_peer: member.peer.clone(),
                peers: view
                    .others(&member.peer.peer_id)
                    .map(|m| m.peer.clone())
                    .collect(),
                ice_servers: ice_servers.to_vec(),
                resume: grant,
                mode,
                sfu,
            }),
        )]
    }

    /// `peer-left` for everyone still in `remaining` after `peer_id` left
    /// (by `leave`, a move to another room, or its grace running out).
    pub fn announce_leave(&self, peer_id: &str, remaining: &RoomView) -> Vec<Outgoing> {
        remaining
            .others(peer_id)
            .flat_map(|other| {
                deliver(
                    other,
                    ServerMessage::PeerLeft {
                        peer_id: peer_id.to_owned(),
                    },
                )
            })
            .collect()
    }

    /// `peer-muted` for the others in `room` after [`Effect::SetMuted`].
    pub fn announce_mute(&self, seat: &Seat, muted: bool, room: &RoomView) -> Vec<Outgoing> {
        room.others(&seat.peer_id)
            .flat_map(|other| {
                deliver(
                    other,
                    ServerMessage::PeerMuted {
                        peer_id: seat.peer_id.clone(),
                        muted,
                    },
                )
            })
            .collect()
    }

    /// Until when a participant whose socket dropped at `now_ms` may resume.
    pub fn resume_deadline(&self, now_ms: u64) -> u64 {
        now_ms + self.limits.resume_grace_secs * 1000
    }

    /// Until when a participant whose socket ended as `end` at `now_ms` may
    /// resume: `now_ms` itself after a goodbye (it leaves at once), the
    /// grace after a drop.
    pub fn resume_deadline_after(&self, end: SocketEnd, now_ms: u64) -> u64 {
        match end {
            SocketEnd::Goodbye => now_ms,
            SocketEnd::Dropped => self.resume_deadline(now_ms),
        }
    }

    /// When the socket of a participant that dropped and is resumable until
    /// `resume_until_ms` ended: the inverse of [`Core::resume_deadline`].
    pub fn dropped_at(&self, resume_until_ms: u64) -> u64 {
        resume_until_ms.saturating_sub(self.limits.resume_grace_secs.saturating_mul(1000))
    }

    /// The `resume-failed` answer for the sender.
    pub fn resume_refused(&self, sender: &Sender) -> Outgoing {
        resume_failed(&sender.connection_id)
    }

    /// Whether a committed [`Effect::SetMuted`] of `seat` also goes to the
    /// room's media node: only for a participant on the SFU (`room` as read
    /// after the write).
    pub fn mute_reaches_sfu(&self, seat: &Seat, room: &RoomView) -> bool {
        room.member(&seat.peer_id).is_some_and(|m| m.sfu)
    }

    /// Who a committed [`Effect::SfuOffer`] connects to the media node:
    /// the participant `seat` of `room` (as read after marking it on the
    /// SFU), or `not-in-room` if it was no longer attached to the sender.
    pub fn sfu_offer_member<'a>(
        &self,
        seat: &Seat,
        room: Option<&'a RoomView>,
    ) -> Result<&'a Member, ProtocolError> {
        room.and_then(|r| r.member(&seat.peer_id))
            .ok_or_else(|| ProtocolError::new(ErrorCode::NotInRoom, "join a room first"))
    }

    /// The `sfu-answer` for the sender, with the media node's `sdp`.
    pub fn sfu_answer(&self, sender: &Sender, sdp: String) -> Outgoing {
        send(&sender.connection_id, ServerMessage::SfuAnswer { sdp })
    }

    /// The `room-full` answer for the sender.
    pub fn room_full(&self, sender: &Sender, room: &RoomId) -> Outgoing {
        room_full(&sender.connection_id, room, self.limits.room_max)
    }

    /// The `mode` and `sfu` fields of `joined`, `resumed` and `room-mode`.
    fn media(&self, on_sfu: bool) -> (MediaMode, Option<SfuInfo>) {
        if on_sfu {
            (
                MediaMode::Sfu,
                Some(SfuInfo {
                    slots: self.limits.sfu_slots,
                }),
            )
        } else {
            (MediaMode::Mesh, None)
        }
    }

    fn grant(&self, room: &RoomId, fresh: &Fresh) -> (ResumeGrant, String) {
        (
            ResumeGrant {
                token: format!("{room}.{}", fresh.resume_secret),
                grace_secs: self.limits.resume_grace_secs,
            },
            resume_hash(&fresh.resume_secret),
        )
    }
}

/// The stored form of a resume secret: its SHA-256, hex.
pub fn resume_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A resume token is `<room>.<secret>`; room ids never hold a `.`.
fn split_token(token: &str) -> Option<(RoomId, &str)> {
    let (room, secret) = token.split_once('.')?;
    let room = RoomId::new(room).ok()?;
    (!secret.is_empty()).then_some((room, secret))
}

fn send(to: &str, msg: ServerMessage) -> Outgoing {
    Outgoing::Send {
        to: to.to_owned(),
        msg,
    }
}

fn deliver(to: &Member, msg: ServerMessage) -> Option<Outgoing> {
    // Detached participants get no room events: `resumed` restates the
    // room. Only signals are kept for them.
    let keep = matches!(msg, ServerMessage::Signal { .. });
    (to.connection_id.is_some() || keep).then(|| Outgoing::Deliver {
        peer_id: to.peer.peer_id.clone(),
        connection_id: to.connection_id.clone(),
        msg,
    })
}

fn error(to: &str, code: ErrorCode, message: &str) -> Outgoing {
    send(
        to,
        ServerMessage::Error {
            code,
            message: message.to_owned(),
            retry_after_ms: None,
        },
    )
}

fn join_token_room(to: &str, grants: &Grants) -> Outgoing {
    error(
        to,
        ErrorCode::JoinTokenRoom,
        &format!(
            "this connection's join token is for room `{}` only",
            grants.room.as_deref().unwrap_or_default()
        ),
    )
}

fn resume_failed(to: &str) -> Outgoing {
    error(
        to,
        ErrorCode::ResumeFailed,
        "that participant cannot be resumed (unknown, expired, already resumed or not yours); join again",
    )
}

fn room_full(to: &str, room: &RoomId, room_max: usize) -> Outgoing {
    send(
        to,
        ServerMessage::Error {
            code: ErrorCode::RoomFull,
            message: format!("room `{room}` is full ({room_max} peers)"),
            retry_after_ms: None,
        },
    )
}

#[cfg(test)]
mod tests;
