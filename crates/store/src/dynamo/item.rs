//! The DynamoDB item shapes: connection items and room items, and their
//! codecs (on `tincan_aws::item`'s typed getters). Decoding never panics:
//! an item we did not write is [`StoreError::Corrupt`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
pub(crate) use tincan_aws::item::{n, s};
use tincan_aws::item::{Attributes, Item};
use tincan_aws::ItemError;
use tincan_signaling::{Grants, Member, Peer, RateState, RoomView, Seat};

use crate::connection::ConnectionRecord;
use crate::error::StoreError;

/// Partition key of every item: a connection id, or [`room_key`].
pub(crate) const PK: &str = "pk";
pub(crate) const USER_ID: &str = "userId";
pub(crate) const DISPLAY_NAME: &str = "displayName";
/// The connection's room; absent when in none, so the `byRoom` index is sparse.
pub(crate) const ROOM: &str = "room";
/// The participant the connection speaks for.
pub(crate) const PEER_ID: &str = "peerId";
/// Kept-signal items: the messages, oldest first.
pub(crate) const MESSAGES: &str = "messages";
/// Kept-signal items: the bytes of message text in `messages`.
pub(crate) const MESSAGE_BYTES: &str = "messageBytes";
/// Milliseconds since the epoch; the `byRoom` index's sort key.
pub(crate) const CONNECTED_AT: &str = "connectedAt";
/// Seconds since the epoch; the table's TTL attribute.
pub(crate) const EXPIRES_AT: &str = "expiresAt";
/// Room items: peer id -> the member (`s` on the SFU, `l` listen-only, `u` user, `n` name, `m` muted, `h`
/// resume hash, `j` joined at, `c` connection while attached, `r` resume
/// deadline while detached).
pub(crate) const MEMBERS: &str = "members";
/// In a room item's member: the connection it is attached to; absent while
/// detached.
pub(crate) const MEMBER_CONNECTION: &str = "c";
/// Room items: bumped by every write, for optimistic concurrency.
pub(crate) const VERSION: &str = "version";
/// Connection items: until when (µs) the socket's budget of admitted
/// messages is spent; absent or past: full.
pub(crate) const RATE_ADMITTED: &str = "rateAdmitted";
/// Connection items: likewise for refused messages.
pub(crate) const RATE_REFUSED: &str = "rateRefused";
/// Connection items of join-token connections: the one room they may join.
pub(crate) const GRANT_ROOM: &str = "grantRoom";
/// Connection items of listen-only join-token connections: `true`.
pub(crate) const LISTEN_ONLY: &str = "listenOnly";
/// User items: the ids of the user's connections (a string set).
pub(crate) const CONNECTIONS: &str = "connections";

/// The global secondary index of connections by room.
pub const ROOM_INDEX: &str = "byRoom";

/// The key of a room's item. API Gateway connection ids are base64 and never
/// contain `#`, so a room key cannot collide with a connection id.
pub(crate) fn room_key(room: &str) -> String {
    format!("room#{room}")
}

pub(crate) fn key(pk: &str) -> Item {
    tincan_aws::item::key(PK, pk)
}

/// The key of the item holding signals kept for detached participant
/// `peer_id`.
pub(crate) fn kept_key(peer_id: &str) -> String {
    format!("kept#{peer_id}")
}

/// The key of the item listing user `user_id`'s connections.
pub(crate) fn user_key(user_id: &str) -> String {
    format!("user#{user_id}")
}

/// The key of the marker saying user `user_id` was deleted: connections of
/// that user are refused while it lives.
pub(crate) fn deleted_user_key(user_id: &str) -> String {
    format!("deleted#{user_id}")
}

/// The key of the marker saying login session `session_id` was revoked:
/// connections opened under it are refused while it lives.
pub(crate) fn revoked_session_key(session_id: &str) -> String {
    format!("revoked#{session_id}")
}

/// Connection items: the login session (`sid`) it was opened under.
pub(crate) const SESSION_ID: &str = "sid";

/// A connection record as an item.
pub(crate) fn connection_to_item(record: &ConnectionRecord) -> Item {
    let mut item = key(&record.connection_id);
    item.insert(USER_ID.into(), s(&record.user_id));
    item.insert(DISPLAY_NAME.into(), s(&record.display_name));
    if let Some(seat) = &record.seat {
        item.insert(ROOM.into(), s(&seat.room));
        item.insert(PEER_ID.into(), s(&seat.peer_id));
    }
    item.insert(CONNECTED_AT.into(), n(record.connected_at_ms));
    if let Some(sid) = &record.session_id {
        item.insert(SESSION_ID.into(), s(sid));
    }
    item.insert(EXPIRES_AT.into(), n(record.expires_at));
    if record.rate.admitted_until_us > 0 {
        item.insert(RATE_ADMITTED.into(), n(record.rate.admitted_until_us));
    }
    if record.rate.refused_until_us > 0 {
        item.insert(RATE_REFUSED.into(), n(record.rate.refused_until_us));
    }
    if let Some(room) = &record.grants.room {
        item.insert(GRANT_ROOM.into(), s(room));
    }
    if record.grants.listen_only {
        item.insert(LISTEN_ONLY.into(), AttributeValue::Bool(true));
    }
    item
}

/// A connection item as a record.
pub(crate) fn connection_from_item(item: &Item) -> Result<ConnectionRecord, StoreError> {
    let a = Attributes::keyed(item, PK)?;
    let seat = if a.has(ROOM) || a.has(PEER_ID) {
        Some(Seat {
            room: a.string(ROOM)?.to_owned(),
            peer_id: a.string(PEER_ID)?.to_owned(),
        })
    } else {
        None
    };
    Ok(ConnectionRecord {
        connection_id: a.key().to_owned(),
        user_id: a.string(USER_ID)?.to_owned(),
        display_name: a.string(DISPLAY_NAME)?.to_owned(),
        seat,
        connected_at_ms: a.number(CONNECTED_AT)?,
        session_id: a.opt_string(SESSION_ID)?.map(str::to_owned),
        expires_at: a.number(EXPIRES_AT)?,
        // Absent until the socket's first message.
        rate: RateState {
            admitted_until_us: a.opt_number(RATE_ADMITTED)?.unwrap_or(0),
            refused_until_us: a.opt_number(RATE_REFUSED)?.unwrap_or(0),
        },
        // Absent for access-token (account) connections.
        grants: Grants {
            room: a.opt_string(GRANT_ROOM)?.map(str::to_owned),
            listen_only: a.flag(LISTEN_ONLY),
        },
    })
}

fn member_to_value(member: &Member) -> AttributeValue {
    let mut map = HashMap::from([
        ("u".to_owned(), s(&member.peer.user_id)),
        ("n".to_owned(), s(&member.peer.display_name)),
        ("m".to_owned(), AttributeValue::Bool(member.peer.muted)),
        ("h".to_owned(), s(&member.resume_hash)),
        ("j".to_owned(), n(member.joined_at_ms)),
    ]);
    if let Some(connection) = &member.connection_id {
        map.insert(MEMBER_CONNECTION.into(), s(connection));
    }
    if let Some(until) = member.resume_until_ms {
        map.insert("r".into(), n(until));
    }
    if member.sfu {
        map.insert("s".into(), AttributeValue::Bool(true));
    }
    if member.peer.listen_only {
        map.insert("l".into(), AttributeValue::Bool(true));
    }
    AttributeValue::M(map)
}

fn member_from_value(
    peer_id: &str,
    value: &AttributeValue,
    key: &str,
) -> Result<Member, StoreError> {
    let AttributeValue::M(map) = value else {
        return Err(corrupt(key, MEMBERS));
    };
    let a = Attributes::within(map, key);
    Ok(Member {
        peer: Peer {
            peer_id: peer_id.to_owned(),
            user_id: a.string("u")?.to_owned(),
            display_name: a.string("n")?.to_owned(),
            muted: a.boolean("m").map_err(|_| corrupt(key, MEMBERS))?,
            // Absent unless listen-only (join tokens).
            listen_only: a.flag("l"),
        },
        connection_id: a.opt_string(MEMBER_CONNECTION)?.map(str::to_owned),
        resume_until_ms: a.opt_number("r")?,
        resume_hash: a.string("h")?.to_owned(),
        joined_at_ms: a.number("j")?,
        // Absent before group calls existed, and while not on the SFU.
        sfu: a.flag("s"),
    })
}

/// A room item as read: its members and the version to condition on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoomItem {
    /// `None` when the item does not exist.
    pub(crate) version: Option<u64>,
    /// The members, oldest first.
    pub(crate) members: Vec<Member>,
    /// The item's own TTL.
    pub(crate) expires_at: u64,
}

impl RoomItem {
    pub(crate) fn from_item(item: Option<&Item>) -> Result<Self, StoreError> {
        let Some(item) = item else {
            return Ok(Self::default());
        };
        let a = Attributes::keyed(item, PK)?;
        let mut members = a
            .map(MEMBERS)?
            .iter()
            .map(|(id, value)| member_from_value(id, value, a.key()))
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_by(|a, b| {
            (a.joined_at_ms, &a.peer.peer_id).cmp(&(b.joined_at_ms, &b.peer.peer_id))
        });
        Ok(Self {
            version: Some(a.number(VERSION)?),
            members,
            expires_at: a.number(EXPIRES_AT)?,
        })
    }

    /// The room as the core takes it.
    pub(crate) fn view(&self, room: &str) -> RoomView {
        RoomView {
            room: room.to_owned(),
            members: self.members.clone(),
        }
    }

    /// The item to write for `members`, one version on from this one, alive
    /// at least until `expires_at` (seconds).
    pub(crate) fn next_item(&self, room: &str, members: &[Member], expires_at: u64) -> Item {
        let mut item = key(&room_key(room));
        item.insert(
            MEMBERS.into(),
            AttributeValue::M(
                members
                    .iter()
                    .map(|m| (m.peer.peer_id.clone(), member_to_value(m)))
                    .collect(),
            ),
        );
        item.insert(VERSION.into(), n(self.version.unwrap_or(0) + 1));
        item.insert(EXPIRES_AT.into(), n(expires_at.max(self.expires_at)));
        item
    }
}

fn corrupt(key: &str, attribute: &str) -> StoreError {
    ItemError {
        key: key.to_owned(),
        attribute: attribute.to_owned(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, connection: Option<&str>) -> Member {
        Member {
            peer: Peer {
                peer_id: id.into(),
                user_id: "u".into(),
                display_name: "Zoë 🎧".into(),
                muted: true,
                listen_only: id == "p2",
            },
            connection_id: connection.map(str::to_owned),
            resume_until_ms: connection.is_none().then_some(77),
            resume_hash: "ab".into(),
            joined_at_ms: 5,
            sfu: connection.is_some(),
        }
    }

    #[test]
    fn connection_round_trips_with_and_without_seat() {
        let mut record = ConnectionRecord::new("abc=", "u1", "Zoë 🎧", 1_700_000_000_123);
        assert_eq!(
            connection_from_item(&connection_to_item(&record)).unwrap(),
            record
        );
        assert!(!connection_to_item(&record).contains_key(ROOM));
        record.seat = Some(Seat {
            peer_id: "p".into(),
            room: "lobby".into(),
        });
        assert_eq!(
            connection_from_item(&connection_to_item(&record)).unwrap(),
            record
        );
        record.rate = RateState {
            admitted_until_us: 1_700_000_000_123_000,
            refused_until_us: 7,
        };
        assert_eq!(
            connection_from_item(&connection_to_item(&record)).unwrap(),
            record
        );
        record.grants = Grants {
            room: Some("lobby".into()),
            listen_only: true,
        };
        assert_eq!(
            connection_from_item(&connection_to_item(&record)).unwrap(),
            record
        );
    }

    #[test]
    fn a_foreign_item_is_corrupt_not_a_panic() {
        let mut item = connection_to_item(&ConnectionRecord::new("c", "u", "n", 1));
        item.insert(EXPIRES_AT.into(), AttributeValue::S("soon".into()));
        assert!(matches!(
            connection_from_item(&item),
            Err(StoreError::Corrupt { key, .. }) if key == "c"
        ));
        item.remove(PK);
        assert!(connection_from_item(&item).is_err());
        let mut room = RoomItem::default().next_item("r", &[member("a", None)], 9);
        room.insert(
            MEMBERS.into(),
            AttributeValue::M(HashMap::from([("a".into(), AttributeValue::N("1".into()))])),
        );
        assert!(RoomItem::from_item(Some(&room)).is_err());
    }

    #[test]
    fn room_item_round_trips_and_versions_move_on() {
        let absent = RoomItem::from_item(None).unwrap();
        assert_eq!(absent.version, None);
        let members = vec![member("a", Some("c1")), member("b", None)];
        let written = absent.next_item("r", &members, 50);
        let read = RoomItem::from_item(Some(&written)).unwrap();
        assert_eq!(read.version, Some(1));
        assert_eq!(read.members, members);
        assert_eq!(read.expires_at, 50);
        // Emptying the room keeps its version history and its TTL.
        let emptied = RoomItem::from_item(Some(&read.next_item("r", &[], 10))).unwrap();
        assert_eq!((emptied.version, emptied.expires_at), (Some(2), 50));
        assert!(emptied.members.is_empty());
    }
}
