//! The signaling core of Tincan, with no IO.
//!
//! Like `quinn-proto` or str0m's `Rtc`, this crate owns no socket, store or
//! clock. The caller (a Lambda, or the local gateway) loads what the core needs
//! — the sender's stored record and a view of the rooms involved — passes it in
//! with `now`, and applies the [`Effect`]s that come back: messages to send
//! ([`Outgoing`]), sockets to close and membership changes to write. Every rule of the protocol in `docs/protocol.md`
//! lives here, so it is tested without sockets.
//!
//! The flow for one client frame:
//! 1. [`Core::parse`] turns the text into a [`ClientMessage`] or a
//!    [`ProtocolError`] (answer it with [`ProtocolError::to_message`]).
//! 2. [`Core::room_needed`] names the room whose members the caller loads.
//! 3. [`Core::handle`] returns the effects, in the order they must be applied.
//!    Membership changes are atomic store operations; the caller passes
//!    their outcome to `Core::announce_*` for the messages that follow,
//!    which are [`Outgoing`] messages and nothing else.

mod core;
mod effect;
mod error;
mod message;
mod message_rate;
mod room_id;
mod state;

pub use crate::core::{
    resume_hash, Core, Fresh, Grants, Limits, Member, ResumeProof, RoomView, Seat, Sender,
    SocketEnd,
};
pub use crate::effect::{CloseReason, Effect, JoinCommitted, Outgoing};
pub use crate::error::{ErrorCode, ProtocolError};
pub use crate::message::{
    ClientMessage, IceServer, MediaMode, MediaPath, Peer, ResumeGrant, RoomState, ServerMessage,
    SfuInfo, MAX_ID_LEN,
};
pub use crate::message_rate::{MessageRate, RateState, RateVerdict};
pub use crate::room_id::{RoomId, RoomIdError, MAX_ROOM_ID_LEN};
