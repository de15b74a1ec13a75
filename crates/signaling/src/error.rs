//! Stable error codes, as clients see them in `error {code, message}`.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` message. Clients match on these strings, so they
/// never change once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, a missing or mistyped field, a bad room id.
    BadRequest,
    /// An `action` this server does not know.
    UnknownAction,
    /// A message over the size limit.
    TooLarge,
    /// `signal` to a peer that is not in the sender's room (or no room at all).
    NotInRoom,
    /// The room already holds its maximum number of peers.
    RoomFull,
    /// A store the server needs did not answer; the client may retry.
    StoreUnavailable,
    /// A `resume` with an unknown, expired, used or foreign token: join again.
    ResumeFailed,
    /// Too many messages or requests; retry later.
    RateLimited,
    /// `sfu-offer` in a room that is not on the SFU.
    NotSfu,
    /// The room's media node could not take the SFU connection; retry.
    SfuUnavailable,
    /// A `join` (or `resume`) of a room other than the one the
    /// connection's join token names.
    JoinTokenRoom,
    /// An unmute by a listen-only participant.
    ListenOnly,
    /// Anything else that went wrong on our side.
    Internal,
}

impl ErrorCode {
    /// The wire form, e.g. `"room-full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownAction => "unknown-action",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::StoreUnavailable => "store-unavailable",
            ErrorCode::ResumeFailed => "resume-failed",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::NotSfu => "not-sfu",
            ErrorCode::SfuUnavailable => "sfu-unavailable",
            ErrorCode::JoinTokenRoom => "join-token-room",
            ErrorCode::ListenOnly => "listen-only",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client frame the core refuses, with the code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The stable code.
    pub code: ErrorCode,
    /// What a person reading the client's log should know.
    pub message: String,
}

impl ProtocolError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_form() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::UnknownAction,
            ErrorCode::TooLarge,
            ErrorCode::NotInRoom,
            ErrorCode::RoomFull,
            ErrorCode::StoreUnavailable,
            ErrorCode::ResumeFailed,
            ErrorCode::RateLimited,
            ErrorCode::NotSfu,
            ErrorCode::SfuUnavailable,
            ErrorCode::JoinTokenRoom,
            ErrorCode::ListenOnly,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
