//! What the core reads and the store holds: where a participant sits
//! ([`Seat`]), who it is ([`Member`]), a room as read ([`RoomView`]), the
//! connection a message came from ([`Sender`]), and how a resume is proved
//! ([`ResumeProof`]). Plain data with small accessors, below both the rules
//! (`core.rs`) and the effects they return (`effect.rs`).

use crate::message::Peer;
use crate::room_id::RoomId;

/// Where a participant sits: its id and its room, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seat {
    /// The participant's id.
    pub peer_id: String,
    /// Its room.
    pub room: String,
}

impl Seat {
    /// Participant `peer_id` of `room`.
    pub fn new(peer_id: impl Into<String>, room: &RoomId) -> Self {
        Self {
            peer_id: peer_id.into(),
            room: room.to_string(),
        }
    }
}

/// What a connection may do, fixed at `$connect` from its token. An access
/// token (a Tincan account) may do everything; a join token names one room
/// and whether its holder may speak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The one room this connection may join or resume in; `None`: any.
    pub room: Option<String>,
    /// Listen-only: its participants join muted and may never unmute (on
    /// the SFU, a muted participant is never given to anyone's slots).
    pub listen_only: bool,
}

impl Grants {
    /// Whether `room` may be joined.
    pub fn allows_room(&self, room: &str) -> bool {
        self.room.as_deref().is_none_or(|only| only == room)
    }
}

/// The connection a frame came on, as stored at connect time — never as
/// claimed in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The connection id.
    pub connection_id: String,
    /// The user, from the verified access token.
    pub user_id: String,
    /// The display name, from the verified access token.
    pub display_name: String,
    /// The participant this connection last spoke for, if any. It counts
    /// only while the room shows that participant attached to this
    /// connection.
    pub seat: Option<Seat>,
    /// What it may do.
    pub grants: Grants,
}

/// One participant of a room, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The participant as others see it.
    pub peer: Peer,
    /// The connection speaking for it; `None` while detached.
    pub connection_id: Option<String>,
    /// While detached: until when it may be resumed, ms since the epoch.
    pub resume_until_ms: Option<u64>,
    /// SHA-256 of its current resume secret (see [`resume_hash`](crate::resume_hash)).
    pub resume_hash: String,
    /// When it joined, ms since the epoch.
    pub joined_at_ms: u64,
    /// Whether it has (or is setting up) a connection to the room's SFU.
    /// A room with such a member stays on the SFU until it empties.
    pub sfu: bool,
}

impl Member {
    /// Whether `connection_id` speaks for this participant.
    pub fn is_attached_to(&self, connection_id: &str) -> bool {
        self.connection_id.as_deref() == Some(connection_id)
    }

    /// Whether it is detached with resume deadline `resume_until_ms`.
    pub fn is_detached_until(&self, resume_until_ms: u64) -> bool {
        self.connection_id.is_none() && self.resume_until_ms == Some(resume_until_ms)
    }

    /// Whether it is detached and its grace ran out at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.connection_id.is_none() && self.resume_until_ms.is_some_and(|until| until <= now_ms)
    }
}

/// The members of one room, as the caller loaded them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomView {
    /// The room id.
    pub room: String,
    /// Everyone in the room, oldest first.
    pub members: Vec<Member>,
}

impl RoomView {
    /// The member `peer_id`.
    pub fn member(&self, peer_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.peer.peer_id == peer_id)
    }

    /// The seats of detached members whose grace ran out at `now_ms`, each
    /// with its deadline: the caller removes each only if still detached with
    /// that deadline, then applies [`Core::announce_leave`](crate::Core::announce_leave).
    pub fn expired(&self, now_ms: u64) -> Vec<(Seat, u64)> {
        Self::expired_in(&self.room, &self.members, now_ms)
    }

    /// [`RoomView::expired`] over the members of `room` as a store holds
    /// them, without building a view.
    pub fn expired_in(room: &str, members: &[Member], now_ms: u64) -> Vec<(Seat, u64)> {
        members
            .iter()
            .filter(|m| m.is_expired(now_ms))
            .map(|m| {
                let seat = Seat {
                    peer_id: m.peer.peer_id.clone(),
                    room: room.to_owned(),
                };
                (seat, m.resume_until_ms.unwrap_or_default())
            })
            .collect()
    }

    /// The members but `me`.
    pub(crate) fn others<'a>(&'a self, me: &'a str) -> impl Iterator<Item = &'a Member> + 'a {
        self.members.iter().filter(move |m| m.peer.peer_id != me)
    }

    /// Whether the room is on the SFU: more than `mesh_max` members, or a
    /// member already connected to the SFU (a room that shrinks stays on
    /// the SFU until it empties, so a call never flaps between modes).
    pub fn on_sfu(&self, mesh_max: usize) -> bool {
        on_sfu(self.members.len(), &self.members, mesh_max)
    }
}

/// Whether a room of `count` members, these among them, is on the SFU.
pub(crate) fn on_sfu(count: usize, members: &[Member], mesh_max: usize) -> bool {
    count > mesh_max || members.iter().any(|m| m.sfu)
}

/// Fresh random values the caller draws for each frame (the core has no
/// randomness of its own): the id and resume secret a join or resume may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    /// An id for a new participant.
    pub peer_id: String,
    /// A new resume secret (URL-safe, no `.`).
    pub resume_secret: String,
}

/// How a resume is proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeProof {
    /// The hash of the presented resume secret; the participant must be
    /// detached, within its grace, or attached to another connection.
    Token(String),
    /// The connection already speaks for the participant (a repeated `join`
    /// of the room it is in): only the resume token is renewed.
    AlreadyAttached,
}

/// How a socket ended, read from the close code the gateway reports
/// (API Gateway's `disconnectStatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEnd {
    /// The client closed it on purpose: a close frame with 1000 (normal
    /// closure) or with no code (1005). Its participant leaves at once, as
    /// after `leave`.
    Goodbye,
    /// Anything else: no close frame (1006), the gateway's own idle or
    /// lifetime cut (1001), a protocol or size violation, or a code we do
    /// not know. Its participant keeps the resume grace.
    Dropped,
}

impl SocketEnd {
    /// The end a `$disconnect` with `close_code` stands for; no code at all
    /// (an emulator or a test that gives none) is a drop.
    pub fn from_close_code(close_code: Option<u16>) -> Self {
        match close_code {
            Some(1000 | 1005) => SocketEnd::Goodbye,
            _ => SocketEnd::Dropped,
        }
    }
}
