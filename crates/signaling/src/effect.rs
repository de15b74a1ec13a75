//! What the core hands its caller: [`Effect`]s to apply, in order, and the
//! [`Outgoing`] messages they and the announcements carry.
//!
//! The two are separate types so the compiler keeps them apart: a step that
//! only announces (`Core::announce_*`, `Core::room_full`, ...) returns
//! [`Outgoing`] messages and can return nothing else, while
//! [`Core::handle`](crate::Core::handle) and
//! [`Core::admit`](crate::Core::admit) return [`Effect`]s, of which a
//! message to push is one kind.

use crate::message::{MediaPath, ResumeGrant, ServerMessage};
use crate::room_id::RoomId;
use crate::state::{Member, ResumeProof, RoomView, Seat};

/// A message for a connection or a participant.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Deliver `msg` to connection `to`.
    Send {
        /// Receiving connection id.
        to: String,
        /// The message.
        msg: ServerMessage,
    },
    /// Deliver `msg` to participant `peer_id` through `connection_id`. If it
    /// is detached (or the connection turns out gone) and `msg` is a
    /// `signal`, keep it for the participant's resume; other messages are
    /// dropped, because `resumed` restates the room.
    Deliver {
        /// The receiving participant.
        peer_id: String,
        /// Its connection, as read.
        connection_id: Option<String>,
        /// The message.
        msg: ServerMessage,
    },
}

impl Outgoing {
    /// Whom it is for: the connection of a `Send`, the participant of a
    /// `Deliver`. Messages for one recipient are applied in order.
    pub fn recipient(&self) -> &str {
        match self {
            Outgoing::Send { to, .. } => to,
            Outgoing::Deliver { peer_id, .. } => peer_id,
        }
    }

    /// The message.
    pub fn msg(&self) -> &ServerMessage {
        match self {
            Outgoing::Send { msg, .. } | Outgoing::Deliver { msg, .. } => msg,
        }
    }
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// It kept sending far over its message budget (close code 1008).
    RateExceeded,
}

impl CloseReason {
    /// The WebSocket close code a gateway that can choose one sends.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::RateExceeded => 1008,
        }
    }

    /// The close frame's reason text.
    pub fn reason(self) -> &'static str {
        match self {
            CloseReason::RateExceeded => "Rate limit exceeded",
        }
    }
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Push a message.
    Push(Outgoing),
    /// Close connection `connection_id` (API Gateway: `DeleteConnection`);
    /// its `$disconnect` follows as for any close.
    Close {
        /// The connection.
        connection_id: String,
        /// Why.
        reason: CloseReason,
    },
    /// Atomically: if the sender's connection still exists and the room
    /// holds fewer than `room_max` others, add `member` to the room, take the
    /// connection's current participant (if still attached to it) out of its
    /// room, and point the connection at `member`. Then push
    /// [`Core::announce_join`](crate::Core::announce_join) of the outcome,
    /// or [`Core::room_full`](crate::Core::room_full) after a refusal, which
    /// leaves everything as it was.
    Join {
        /// The new participant.
        member: Member,
        /// The room.
        room: RoomId,
        /// The capacity to enforce.
        room_max: usize,
        /// The token handed out in `joined`.
        grant: ResumeGrant,
    },
    /// Atomically take the sender's participant out of its room (if still
    /// attached to the sender), then push
    /// [`Core::announce_leave`](crate::Core::announce_leave).
    Leave {
        /// The participant.
        seat: Seat,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// Atomically attach participant `peer_id` of `room` to the sender's
    /// connection if `proof` holds, it belongs to the sender's user and its
    /// grace has not run out; store `new_hash`. Then push
    /// [`Core::announce_resume`](crate::Core::announce_resume), or
    /// [`Core::resume_refused`](crate::Core::resume_refused).
    Resume {
        /// The participant.
        peer_id: String,
        /// Its room.
        room: RoomId,
        /// The proof.
        proof: ResumeProof,
        /// SHA-256 of the next resume secret.
        new_hash: String,
        /// The token handed out in `resumed`.
        grant: ResumeGrant,
    },
    /// Store the participant's mute state (if still attached to the sender),
    /// then tell the others
    /// ([`Core::announce_mute`](crate::Core::announce_mute)).
    SetMuted {
        /// The participant.
        seat: Seat,
        /// Muted or not.
        muted: bool,
    },
    /// Mark the participant as on the SFU (if still attached to the
    /// sender), then pass `sdp` to the room's media node and push its answer
    /// ([`Core::sfu_answer`](crate::Core::sfu_answer)), or an `error`.
    SfuOffer {
        /// The participant.
        seat: Seat,
        /// The complete offer.
        sdp: String,
    },
    /// Note in the call history how the participant's media goes.
    RecordMediaPath {
        /// The participant.
        seat: Seat,
        /// The path.
        path: MediaPath,
    },
}

impl From<Outgoing> for Effect {
    fn from(outgoing: Outgoing) -> Self {
        Effect::Push(outgoing)
    }
}

/// A committed [`Effect::Join`], as the store reported it.
#[derive(Debug, Clone)]
pub struct JoinCommitted<'a> {
    /// The new participant.
    pub member: &'a Member,
    /// Its room.
    pub room: &'a RoomId,
    /// The room's other members at the moment of the write.
    pub others: &'a [Member],
    /// The resume token for `joined`.
    pub grant: ResumeGrant,
    /// The sender's previous participant, taken out of its room, and who
    /// remains there.
    pub departure: Option<(&'a Member, &'a RoomView)>,
}
