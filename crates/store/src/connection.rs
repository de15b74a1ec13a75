//! Live WebSocket connections, the participants they speak for, and rooms.
//!
//! A connection is a socket; a participant is a peer in a room, with an id
//! of its own that outlives socket cuts. Each room holds its participants
//! ([`Member`]s): attached to a connection, or detached (their socket
//! dropped) until their resume deadline. Every operation that changes a room
//! is atomic, and returns what the room held at the moment of the write,
//! which is what the signaling core announces from.

use async_trait::async_trait;
use tincan_signaling::{
    Grants, Member, MessageRate, RateState, RateVerdict, ResumeProof, RoomView, Seat, Sender,
};

use crate::error::StoreError;

/// How long a connection record lives without being removed: API Gateway
/// closes every WebSocket after 2 hours, plus slack for a late `$disconnect`.
pub const CONNECTION_TTL_SECS: u64 = 2 * 3600 + 300;

/// The most a participant's kept-signal box holds, in bytes of message
/// text, whatever the count: well under DynamoDB's 400 KB item limit, so
/// both stores refuse the same keep ([`KeepOutcome::Full`]) rather than
/// the DynamoDB one failing where the memory one takes it.
pub const MAX_KEPT_BYTES: usize = 256 * 1024;

/// One live connection, as stored at `$connect` and pointed at a participant
/// by `join` and `resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The API Gateway connection id.
    pub connection_id: String,
    /// The user, from the verified access token.
    pub user_id: String,
    /// The display name, from the verified access token.
    pub display_name: String,
    /// The participant this connection last joined or resumed as.
    pub seat: Option<Seat>,
    /// When the connection was opened, milliseconds since the epoch.
    pub connected_at_ms: u64,
    /// The login session (the access token's `sid`) it was opened under,
    /// if the token named one: a revoked session's sockets can be found.
    pub session_id: Option<String>,
    /// When the record stops counting, seconds since the epoch (DynamoDB TTL).
    pub expires_at: u64,
    /// The socket's message budget, as [`ConnectionStore::take_message`]
    /// last left it.
    pub rate: RateState,
    /// What the connection may do (a join token's room and listen-only).
    pub grants: Grants,
}

impl ConnectionRecord {
    /// A fresh record for a connection opened at `now_ms`, in no room.
    pub fn new(
        connection_id: impl Into<String>,
        user_id: impl Into<String>,
        display_name: impl Into<String>,
        now_ms: u64,
    ) -> Self {
        Self {
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            display_name: display_name.into(),
            seat: None,
            connected_at_ms: now_ms,
            session_id: None,
            expires_at: now_ms / 1000 + CONNECTION_TTL_SECS,
            rate: RateState::default(),
            grants: Grants::default(),
        }
    }

    /// The same, limited to what a join token grants.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// The record, opened under login session `session_id`.
    pub fn with_session(mut self, session_id: Option<String>) -> Self {
        self.session_id = session_id;
        self
    }

    /// Whether the record still counts at `now_secs`.
    pub fn is_live(&self, now_secs: u64) -> bool {
        now_secs < self.expires_at
    }

    /// The connection as the signaling core takes it, taking the record
    /// apart (no copy).
    pub fn into_sender(self) -> Sender {
        Sender {
            connection_id: self.connection_id,
            user_id: self.user_id,
            display_name: self.display_name,
            seat: self.seat,
            grants: self.grants,
        }
    }

    /// The connection as the signaling core takes it.
    pub fn sender(&self) -> Sender {
        Sender {
            connection_id: self.connection_id.clone(),
            user_id: self.user_id.clone(),
            display_name: self.display_name.clone(),
            seat: self.seat.clone(),
            grants: self.grants.clone(),
        }
    }
}

/// A participant taken out of a room, and who remains there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// The participant as it was.
    pub member: Member,
    /// The room after it left.
    pub remaining: RoomView,
}

/// A participant attached to a connection that is gone: its record was
/// removed without detaching it, or expired without a `$disconnect` (API
/// Gateway cuts every socket at 2 hours and does not promise the event).
/// Nothing will ever detach it, so a sweep takes it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stranded {
    /// The participant's seat.
    pub seat: Seat,
    /// The connection it is attached to.
    pub connection_id: String,
    /// When it joined, ms since the epoch.
    pub joined_at_ms: u64,
    /// The connection's record, if it is still stored (expired).
    pub record: Option<ConnectionRecord>,
}

/// What [`ConnectionStore::join`] did.
// Returned once per call and matched at once, never stored: boxing would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The participant is in the room.
    Joined {
        /// The room's other members at the moment of the write.
        others: Vec<Member>,
        /// The connection's previous participant, taken out of its room.
        departure: Option<Departure>,
    },
    /// The room already holds `room_max` members; nothing was written.
    RoomFull,
    /// No live connection has that id; nothing was written.
    UnknownConnection,
}

/// What [`ConnectionStore::resume`] did.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeOutcome {
    /// The connection speaks for the participant now.
    Resumed {
        /// The participant, attached.
        member: Member,
        /// The room after the resume.
        room: RoomView,
    },
    /// Unknown participant or connection, wrong user, wrong or used token,
    /// or the grace ran out; nothing was written.
    Refused,
}

/// What [`ConnectionStore::keep_if_detached`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepOutcome {
    /// The message is kept: the participant was detached (or attached to
    /// the connection the caller found gone) when it was written, so the
    /// resume that attaches it again takes the message.
    Kept,
    /// The participant's kept-signal box already holds `max` messages, or
    /// this one would take it past [`MAX_KEPT_BYTES`]; nothing was written.
    Full,
    /// The participant is attached to this connection (it resumed since the
    /// caller read the room); nothing was written: deliver there.
    Attached(String),
    /// The participant is not in its room (it left, or its grace ran out);
    /// nothing was written.
    NotInRoom,
}

/// Live connections, participants, rooms and kept signals.
///
/// Every read filters out connection records past their `expires_at`:
/// DynamoDB's TTL deletes late (up to days), and some emulators never do.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection (at `$connect`), replacing any record with
    /// the same id, unless its user already has `max_per_user` other live
    /// connections ([`StoreError::TooManyConnections`]; 0: no limit). Two
    /// connects of one user racing for its last place never both get it.
    async fn put(&self, record: &ConnectionRecord, max_per_user: usize) -> Result<(), StoreError>;

    /// The live connection `id` at `now_secs`.
    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Atomically takes one message arriving at `now_ms` from live
    /// connection `id`'s budget: stores what [`MessageRate::take`] makes of
    /// the record's [`RateState`], and returns the record as written with
    /// the verdict; `None` if there is no such live connection. Frames of
    /// one socket handled at once by several callers each take their own
    /// share: none is lost. A frame whose write keeps losing to the same
    /// socket's other frames is refused (`Limited`) without taking from the
    /// budget: the socket sends faster than its writes land. Costs what
    /// [`ConnectionStore::get`] costs.
    async fn take_message(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError>;

    /// Removes connection `id` (at `$disconnect`, or when a push finds it
    /// gone). If its participant is still attached to it, the participant is
    /// detached, resumable until `resume_until_ms`; the room is not told.
    /// Returns the record it had, or `None` if it was already gone.
    async fn remove(
        &self,
        id: &str,
        resume_until_ms: u64,
        now_ms: u64,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// The live connections of `user_id` (to close them when the account is
    /// deleted; a rare path, allowed to be slow).
    async fn connections_of(
        &self,
        user_id: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Everyone in `room`, attached or detached, oldest first.
    async fn room(&self, room: &str) -> Result<RoomView, StoreError>;

    /// Atomically: if connection `id` is live and `room` holds fewer than
    /// `room_max` members other than the connection's own participant, adds
    /// `member` to it, takes the connection's previous participant (if still
    /// attached to it) out of its room, and points the connection at
    /// `member`. Two joiners never both take the last seat, and of two
    /// concurrent joiners exactly one sees the other in `others`.
    async fn join(
        &self,
        id: &str,
        room: &str,
        member: &Member,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError>;

    /// Takes participant `seat` out of its room if it is attached to
    /// connection `id`.
    async fn leave(
        &self,
        id: &str,
        seat: &Seat,
        now_ms: u64,
    ) -> Result<Option<Departure>, StoreError>;

    /// Atomically attaches participant `seat` to live connection `id` of
    /// `user_id` if `proof` holds and, for a token, the participant is
    /// attached elsewhere or detached with its deadline after `now_ms`; then
    /// stores `new_hash` as its resume hash, so a token works once.
    async fn resume(
        &self,
        id: &str,
        user_id: &str,
        seat: &Seat,
        proof: &ResumeProof,
        new_hash: &str,
        now_ms: u64,
    ) -> Result<ResumeOutcome, StoreError>;

    /// Stores participant `seat`'s mute state if it is attached to
    /// connection `id`; returns the room after the write, or `None` if
    /// nothing was written.
    async fn set_muted(
        &self,
        id: &str,
        seat: &Seat,
        muted: bool,
        now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError>;

    /// Marks participant `seat` as on the room's SFU if it is attached to
    /// connection `id`; returns the room after the write, or `None` if
    /// nothing was written.
    async fn set_on_sfu(
        &self,
        id: &str,
        seat: &Seat,
        now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError>;

    /// Takes participant `seat` out of its room if it is still detached with
    /// deadline `resume_until_ms` (its grace ran out and nobody resumed it).
    async fn expire(
        &self,
        seat: &Seat,
        resume_until_ms: u64,
        now_ms: u64,
    ) -> Result<Option<Departure>, StoreError>;

    /// Atomically: if participant `seat` is in its room and detached, or
    /// attached to connection `gone` (one the caller found gone, not yet
    /// detached), keeps `msg` for it, unless `max` are kept already. Kept
    /// messages expire at `expires_at` (seconds) if nobody takes them.
    /// Otherwise writes nothing and says where the participant is.
    ///
    /// This is what makes keeping race-free: a resume that commits after
    /// this keep flushes the message, and one that committed before makes
    /// it answer [`KeepOutcome::Attached`], so the caller pushes there
    /// itself. A message is never kept for a participant that is attached
    /// to a live connection.
    async fn keep_if_detached(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        expires_at: u64,
    ) -> Result<KeepOutcome, StoreError>;

    /// Takes (reads and deletes, atomically) every message kept for
    /// `peer_id`, oldest first.
    async fn take_kept(&self, peer_id: &str) -> Result<Vec<String>, StoreError>;

    /// Detached participants whose deadline passed at `now_ms`, in any room
    /// (for a periodic sweep; lazily reaped rooms need not call it).
    async fn expired_members(&self, now_ms: u64) -> Result<Vec<(Seat, u64)>, StoreError>;

    /// Participants, in any room, attached to a connection that is not
    /// live at `now_ms` (for a periodic sweep, which takes each out with
    /// [`ConnectionStore::leave`] and forgets the connection with
    /// [`ConnectionStore::remove`]). A connection never comes back once
    /// gone or expired, so the answer stays true until the sweep acts.
    async fn stranded_members(&self, now_ms: u64) -> Result<Vec<Stranded>, StoreError>;
}

/// Where participant `seat` stands for a keep, among `members`: `None`
/// when it may be kept for (detached, or attached to `gone`), otherwise
/// why not. The shared rule of every backend's
/// [`ConnectionStore::keep_if_detached`].
pub fn keep_refusal(members: &[Member], seat: &Seat, gone: Option<&str>) -> Option<KeepOutcome> {
    let Some(member) = members.iter().find(|m| m.peer.peer_id == seat.peer_id) else {
        return Some(KeepOutcome::NotInRoom);
    };
    match &member.connection_id {
        Some(connection) if Some(connection.as_str()) != gone => {
            Some(KeepOutcome::Attached(connection.clone()))
        }
        _ => None,
    }
}

/// Applies a resume to `members` in place: the shared rule of every backend.
/// Returns the index of the resumed member, or `None` if refused.
pub fn apply_resume(
    members: &mut [Member],
    id: &str,
    user_id: &str,
    seat: &Seat,
    proof: &ResumeProof,
    new_hash: &str,
    now_ms: u64,
) -> Option<usize> {
    let index = members
        .iter()
        .position(|m| m.peer.peer_id == seat.peer_id)?;
    let member = &mut members[index];
    if member.peer.user_id != user_id {
        return None;
    }
    let allowed = match proof {
        ResumeProof::AlreadyAttached => member.is_attached_to(id),
        ResumeProof::Token(hash) => {
            *hash == member.resume_hash
                && (member.connection_id.is_some()
                    || member.resume_until_ms.is_some_and(|until| now_ms < until))
        }
    };
    if !allowed {
        return None;
    }
    member.connection_id = Some(id.to_owned());
    member.resume_until_ms = None;
    new_hash.clone_into(&mut member.resume_hash);
    Some(index)
}

/// Detaches the member of `members` attached to `id`, if any: the shared
/// rule of every backend's [`ConnectionStore::remove`].
pub fn apply_detach(members: &mut [Member], id: &str, resume_until_ms: u64) -> bool {
    match members.iter_mut().find(|m| m.is_attached_to(id)) {
        Some(member) => {
            member.connection_id = None;
            member.resume_until_ms = Some(resume_until_ms);
            true
        }
        None => false,
    }
}
