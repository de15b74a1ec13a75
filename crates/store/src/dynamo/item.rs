//! The DynamoDB item shapes: connection items and room items, and their
//! codecs. Decoding never panics: an item we did not write is
//! [`StoreError::Corrupt`].

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::connection::ConnectionRecord;
use crate::error::StoreError;

/// Partition key of every item: a connection id, or [`room_key`].
pub(crate) const PK: &str = "pk";
pub(crate) const USER_ID: &str = "userId";
pub(crate) const DISPLAY_NAME: &str = "displayName";
/// The connection's room; absent when in none, so the `byRoom` index is sparse.
pub(crate) const ROOM: &str = "room";
pub(crate) const MUTED: &str = "muted";
/// Milliseconds since the epoch; the `byRoom` index's sort key.
pub(crate) const CONNECTED_AT: &str = "connectedAt";
/// Seconds since the epoch; the table's TTL attribute.
pub(crate) const EXPIRES_AT: &str = "expiresAt";
/// Room items: connection id -> that connection's `expiresAt`.
pub(crate) const MEMBERS: &str = "members";
/// Room items: bumped by every write, for optimistic concurrency.
pub(crate) const VERSION: &str = "version";

/// The global secondary index of connections by room.
pub const ROOM_INDEX: &str = "byRoom";

/// The key of a room's item. API Gateway connection ids are base64 and never
/// contain `#`, so a room key cannot collide with a connection id.
pub(crate) fn room_key(room: &str) -> String {
    format!("room#{room}")
}

pub(crate) fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk.to_owned()))])
}

pub(crate) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A connection record as an item.
pub(crate) fn connection_to_item(record: &ConnectionRecord) -> HashMap<String, AttributeValue> {
    let mut item = key(&record.connection_id);
    item.insert(USER_ID.into(), s(&record.user_id));
    item.insert(DISPLAY_NAME.into(), s(&record.display_name));
    if let Some(room) = &record.room {
        item.insert(ROOM.into(), s(room));
    }
    item.insert(MUTED.into(), AttributeValue::Bool(record.muted));
    item.insert(CONNECTED_AT.into(), n(record.connected_at_ms));
    item.insert(EXPIRES_AT.into(), n(record.expires_at));
    item
}

/// A connection item as a record.
pub(crate) fn connection_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<ConnectionRecord, StoreError> {
    let key = get_s(item, PK, "?")?;
    Ok(ConnectionRecord {
        connection_id: key.to_owned(),
        user_id: get_s(item, USER_ID, key)?.to_owned(),
        display_name: get_s(item, DISPLAY_NAME, key)?.to_owned(),
        room: match item.get(ROOM) {
            None => None,
            Some(_) => Some(get_s(item, ROOM, key)?.to_owned()),
        },
        muted: match item.get(MUTED) {
            Some(AttributeValue::Bool(muted)) => *muted,
            _ => return Err(corrupt(key, MUTED)),
        },
        connected_at_ms: get_n(item, CONNECTED_AT, key)?,
        expires_at: get_n(item, EXPIRES_AT, key)?,
    })
}

/// A room item as read: who holds a seat, and the version to condition on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoomItem {
    /// `None` when the item does not exist.
    pub(crate) version: Option<u64>,
    /// Connection id -> its `expiresAt`.
    pub(crate) members: BTreeMap<String, u64>,
    /// The item's own TTL: the latest expiry any member ever had.
    pub(crate) expires_at: u64,
}

impl RoomItem {
    pub(crate) fn from_item(
        item: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<Self, StoreError> {
        let Some(item) = item else {
            return Ok(Self::default());
        };
        let key = get_s(item, PK, "?")?;
        let members = match item.get(MEMBERS) {
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(id, value)| match value {
                    AttributeValue::N(text) => text
                        .parse()
                        .map(|expires| (id.clone(), expires))
                        .map_err(|_| corrupt(key, MEMBERS)),
                    _ => Err(corrupt(key, MEMBERS)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(corrupt(key, MEMBERS)),
        };
        Ok(Self {
            version: Some(get_n(item, VERSION, key)?),
            members,
            expires_at: get_n(item, EXPIRES_AT, key)?,
        })
    }

    /// The item to write for `members`, one version on from this one.
    pub(crate) fn next_item(
        &self,
        room: &str,
        members: &BTreeMap<String, u64>,
    ) -> HashMap<String, AttributeValue> {
        let expires_at = members
            .values()
            .copied()
            .chain([self.expires_at])
            .max()
            .unwrap_or_default();
        let mut item = key(&room_key(room));
        item.insert(
            MEMBERS.into(),
            AttributeValue::M(
                members
                    .iter()
                    .map(|(id, expires)| (id.clone(), n(*expires)))
                    .collect(),
            ),
        );
        item.insert(VERSION.into(), n(self.version.unwrap_or(0) + 1));
        item.insert(EXPIRES_AT.into(), n(expires_at));
        item
    }
}

fn get_s<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
    key: &str,
) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(corrupt(key, name)),
    }
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str, key: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|_| corrupt(key, name)),
        _ => Err(corrupt(key, name)),
    }
}

fn corrupt(key: &str, attribute: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("attribute {attribute} missing or of the wrong type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_round_trips_with_and_without_room() {
        let mut record = ConnectionRecord::new("abc=", "u1", "Zoë 🎧", 1_700_000_000_123);
        assert_eq!(
            connection_from_item(&connection_to_item(&record)).unwrap(),
            record
        );
        assert!(!connection_to_item(&record).contains_key(ROOM));
        record.room = Some("lobby".into());
        record.muted = true;
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
    }

    #[test]
    fn room_item_round_trips_and_versions_move_on() {
        let absent = RoomItem::from_item(None).unwrap();
        assert_eq!(absent.version, None);
        let members = BTreeMap::from([("a".to_owned(), 50), ("b".to_owned(), 40)]);
        let written = absent.next_item("r", &members);
        let read = RoomItem::from_item(Some(&written)).unwrap();
        assert_eq!(read.version, Some(1));
        assert_eq!(read.members, members);
        assert_eq!(read.expires_at, 50);
        // Emptying the room keeps its version history and its TTL.
        let emptied = RoomItem::from_item(Some(&read.next_item("r", &BTreeMap::new()))).unwrap();
        assert_eq!((emptied.version, emptied.expires_at), (Some(2), 50));
        assert!(emptied.members.is_empty());
    }
}
