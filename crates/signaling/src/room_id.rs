//! [`RoomId`]: a room's name, checked once where it enters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ProtocolError};

/// Longest room id accepted.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// A room id: 1-64 of `[A-Za-z0-9_-]` (`docs/protocol.md`). It never holds a
/// `.` (resume tokens are `<room>.<secret>`) nor a `/` (it is a path segment
/// of the SFU control API and a part of store keys), so it needs no
/// escaping anywhere. Built only through [`RoomId::new`] (or `parse`,
/// `TryFrom`, `Deserialize`, which all call it), so holding one means the
/// check was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct RoomId(String);

/// A string that is not a room id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a room id is 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")]
pub struct RoomIdError;

impl RoomId {
    /// `room`, if it is a room id.
    pub fn new(room: impl Into<String>) -> Result<Self, RoomIdError> {
        let room = room.into();
        if Self::is_valid(&room) {
            Ok(Self(room))
        } else {
            Err(RoomIdError)
        }
    }

    /// Whether `room` is a room id: the one place the rule is written.
    pub fn is_valid(room: &str) -> bool {
        (1..=MAX_ROOM_ID_LEN).contains(&room.len())
            && room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomId {
    type Error = RoomIdError;

    fn try_from(room: String) -> Result<Self, Self::Error> {
        Self::new(room)
    }
}

impl TryFrom<&str> for RoomId {
    type Error = RoomIdError;

    fn try_from(room: &str) -> Result<Self, Self::Error> {
        Self::new(room)
    }
}

impl FromStr for RoomId {
    type Err = RoomIdError;

    fn from_str(room: &str) -> Result<Self, Self::Err> {
        Self::new(room)
    }
}

impl From<RoomId> for String {
    fn from(room: RoomId) -> Self {
        room.0
    }
}

impl AsRef<str> for RoomId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RoomId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RoomId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for RoomId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<RoomId> for String {
    fn eq(&self, other: &RoomId) -> bool {
        *self == other.0
    }
}

impl PartialEq<RoomId> for str {
    fn eq(&self, other: &RoomId) -> bool {
        self == other.0
    }
}

impl From<RoomIdError> for ProtocolError {
    fn from(err: RoomIdError) -> Self {
        ProtocolError::new(ErrorCode::BadRequest, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_follow_the_pattern() {
        assert!(RoomId::new("a").is_ok());
        assert!(RoomId::new("team-42_A").is_ok());
        assert!(RoomId::new("x".repeat(64)).is_ok());
        for bad in [
            "",
            "has space",
            "dot.dot",
            "ünïcode",
            "slash/",
            "../etc",
            &"x".repeat(65),
        ] {
            assert_eq!(RoomId::new(bad), Err(RoomIdError), "{bad:?} accepted");
        }
    }

    #[test]
    fn deserializing_checks_and_serializing_is_the_bare_string() {
        let room: RoomId = serde_json::from_str(r#""lobby""#).unwrap();
        assert_eq!(room, "lobby");
        assert_eq!(room.to_string(), "lobby");
        assert_eq!(room.as_ref(), "lobby");
        assert_eq!(serde_json::to_string(&room).unwrap(), r#""lobby""#);
        let err = serde_json::from_str::<RoomId>(r#""a/b""#).unwrap_err();
        assert!(err.to_string().contains("a room id is 1-64"), "{err}");
    }

    #[test]
    fn a_bad_room_id_is_a_bad_request() {
        let err = ProtocolError::from(RoomIdError);
        assert_eq!(err.code, ErrorCode::BadRequest);
    }
}
