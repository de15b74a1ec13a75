//! DynamoDB connection store.
//!
//! One table (see [`create_table`]) holds two kinds of item:
//!
//! - **connection items**, `pk` = connection id: `userId`, `displayName`,
//!   `room` (absent when in no room, so the [`ROOM_INDEX`] GSI is sparse),
//!   `muted`, `connectedAt` (ms), `expiresAt` (secs, the table's TTL);
//! - **room items**, `pk` = `room#<room>`: `members` (connection id -> its
//!   `expiresAt`), `version` (bumped by every write) and `expiresAt` (the
//!   latest member expiry, so TTL removes a room item only when nobody can
//!   still be in it).
//!
//! Membership changes (`join_room`, `leave_room`, `remove`) are one
//! `TransactWriteItems` each: the connection item's update, conditioned on its
//! `room` being what we read, plus the room item's write, conditioned on its
//! `version` being what we read. A cancelled transaction means someone else
//! wrote first: re-read and try again, a bounded number of times with
//! jittered backoff, then [`StoreError::Contention`]. That makes the capacity
//! check race-free: two joiners that read the same room version cannot both
//! commit.
//!
//! `room_members` reads the room item (strongly consistent) and then the
//! members' connection items (`BatchGetItem`, strongly consistent), keeping
//! those that exist, are live and still name this room. It does not query the
//! GSI: GSI reads are only eventually consistent, so a `join_room` followed
//! by `room_members` could miss the joiner, and the core sends `joined` and
//! `peer-joined` from exactly that read. The GSI is there for operators and
//! ad-hoc queries. Every read filters on `expiresAt`: TTL deletes late, and
//! emulators never do.

mod item;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

pub use self::item::ROOM_INDEX;
use self::item::{
    connection_from_item, connection_to_item, key, n, room_key, s, RoomItem, EXPIRES_AT, MUTED, PK,
    ROOM, VERSION,
};
pub use self::table::{create_table, ensure_table};
use crate::connection::{ConnectionRecord, ConnectionStore, JoinOutcome};
use crate::error::StoreError;

/// Tries of one membership change before [`StoreError::Contention`].
const MAX_ATTEMPTS: u32 = 8;
/// `BatchGetItem` takes at most this many keys.
const BATCH_GET_MAX: usize = 100;

/// [`ConnectionStore`] on a DynamoDB table made by [`create_table`].
#[derive(Debug, Clone)]
pub struct DynamoConnectionStore {
    client: Client,
    table: String,
}

impl DynamoConnectionStore {
    /// A store on table `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn read_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        out.item().map(connection_from_item).transpose()
    }

    async fn read_room(&self, room: &str) -> Result<RoomItem, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&room_key(room))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        RoomItem::from_item(out.item())
    }

    /// The connection items of `ids` that exist (strongly consistent reads).
    async fn read_connections(&self, ids: &[&str]) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|id| key(id)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?,
            );
            let mut attempt = 0;
            while let Some(keys) = pending.take() {
                if attempt == MAX_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "DynamoDB BatchGetItem: keys left unprocessed (throttled)".into(),
                    ));
                }
                if attempt > 0 {
                    backoff(attempt).await;
                }
                attempt += 1;
                let mut out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|err| unavailable("BatchGetItem", err))?;
                if let Some(items) = out.responses.as_mut().and_then(|r| r.remove(&self.table)) {
                    for item in &items {
                        records.push(connection_from_item(item)?);
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(records)
    }

    /// The live members of `room` as its item lists them, each checked
    /// against its connection item, oldest connection first.
    async fn live_members(
        &self,
        room: &str,
        room_item: &RoomItem,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let seated: Vec<&str> = room_item
            .members
            .iter()
            .filter(|(_, expires)| now_secs < **expires)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut members: Vec<ConnectionRecord> = self
            .read_connections(&seated)
            .await?
            .into_iter()
            .filter(|r| r.room.as_deref() == Some(room) && r.is_live(now_secs))
            .collect();
        members.sort_by(|a, b| {
            (a.connected_at_ms, &a.connection_id).cmp(&(b.connected_at_ms, &b.connection_id))
        });
        Ok(members)
    }

    /// The write that takes `id` out of `room_item`, or `None` if it holds no
    /// seat there.
    fn release_seat(
        &self,
        room: &str,
        room_item: &RoomItem,
        id: &str,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        if !room_item.members.contains_key(id) {
            return Ok(None);
        }
        let mut members = room_item.members.clone();
        members.remove(id);
        self.put_room(room, room_item, &members).map(Some)
    }

    /// The write of `room`'s item with `members`, conditioned on the version
    /// read in `room_item`.
    fn put_room(
        &self,
        room: &str,
        room_item: &RoomItem,
        members: &BTreeMap<String, u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(room_item.next_item(room, members)));
        let put = match room_item.version {
            Some(version) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":version", n(version)),
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build())
    }

    /// Runs one transaction: `Ok(true)` if it committed, `Ok(false)` if a
    /// condition failed or it collided with another transaction.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(true),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let retryable = cancelled.cancellation_reasons().iter().all(|reason| {
                matches!(
                    reason.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            });
            if retryable {
                tracing::debug!(table = %self.table, "transaction cancelled; retrying");
                return Ok(false);
            }
        }
        Err(unavailable("TransactWriteItems", err))
    }
}

/// The condition that the connection item exists with the `room` we read.
fn connection_condition(room: Option<&str>) -> (String, HashMap<String, AttributeValue>) {
    match room {
        Some(room) => (
            "attribute_exists(#pk) AND #room = :old_room".into(),
            HashMap::from([(":old_room".to_owned(), s(room))]),
        ),
        None => (
            "attribute_exists(#pk) AND attribute_not_exists(#room)".into(),
            HashMap::new(),
        ),
    }
}

fn names() -> HashMap<String, String> {
    HashMap::from([
        ("#pk".to_owned(), PK.to_owned()),
        ("#room".to_owned(), ROOM.to_owned()),
    ])
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn put(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(connection_to_item(record)))
            .send()
            .await
            .map_err(|err| unavailable("PutItem", err))?;
        Ok(())
    }

    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self
            .read_connection(id)
            .await?
            .filter(|r| r.is_live(now_secs)))
    }

    async fn remove(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(record) = self.read_connection(id).await? else {
                return Ok(None);
            };
            let (condition, values) = connection_condition(record.room.as_deref());
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(id)))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names()))
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .build()
                .map_err(build_error)?;
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            if let Some(room) = &record.room {
                let room_item = self.read_room(room).await?;
                items.extend(self.release_seat(room, &room_item, id)?);
            }
            if self.transact(items).await? {
                return Ok(Some(record));
            }
            backoff(attempt).await;
        }
        Err(contention(&format!("connection {id}")))
    }

    async fn join_room(
        &self,
        id: &str,
        room: &str,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(record) = self.read_connection(id).await? else {
                return Ok(JoinOutcome::UnknownConnection);
            };
            if !record.is_live(now_secs) {
                return Ok(JoinOutcome::UnknownConnection);
            }
            let room_item = self.read_room(room).await?;
            let others: Vec<ConnectionRecord> = self
                .live_members(room, &room_item, now_secs)
                .await?
                .into_iter()
                .filter(|r| r.connection_id != id)
                .collect();
            if others.len() >= room_max {
                return Ok(JoinOutcome::RoomFull);
            }
            // Seats of members that left, expired or vanished are dropped here.
            let mut seats: BTreeMap<String, u64> = others
                .iter()
                .map(|r| (r.connection_id.clone(), r.expires_at))
                .collect();
            seats.insert(id.to_owned(), record.expires_at);

            let (condition, mut values) = connection_condition(record.room.as_deref());
            values.insert(":room".into(), s(room));
            values.insert(":now".into(), n(now_secs));
            let mut names = names();
            names.insert("#expires".into(), EXPIRES_AT.into());
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(id)))
                .update_expression("SET #room = :room")
                .condition_expression(format!("{condition} AND #expires > :now"))
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(build_error)?;
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                self.put_room(room, &room_item, &seats)?,
            ];
            // Moving rooms frees the seat in the old one, in the same transaction.
            if let Some(old) = record.room.as_deref().filter(|old| *old != room) {
                let old_item = self.read_room(old).await?;
                items.extend(self.release_seat(old, &old_item, id)?);
            }
            if self.transact(items).await? {
                return Ok(JoinOutcome::Joined);
            }
            backoff(attempt).await;
        }
        Err(contention(&format!("room {room}")))
    }

    async fn leave_room(&self, id: &str, room: &str) -> Result<(), StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(record) = self.read_connection(id).await? else {
                return Ok(());
            };
            if record.room.as_deref() != Some(room) {
                return Ok(());
            }
            let (condition, values) = connection_condition(Some(room));
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(id)))
                .update_expression("REMOVE #room")
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names()))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(build_error)?;
            let room_item = self.read_room(room).await?;
            let mut items = vec![TransactWriteItem::builder().update(update).build()];
            items.extend(self.release_seat(room, &room_item, id)?);
            if self.transact(items).await? {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(contention(&format!("room {room}")))
    }

    async fn set_muted(&self, id: &str, muted: bool) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression("SET #muted = :muted")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#muted", MUTED)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":muted", AttributeValue::Bool(muted))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable("UpdateItem", err)),
        }
    }

    async fn room_members(
        &self,
        room: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let room_item = self.read_room(room).await?;
        self.live_members(room, &room_item, now_secs).await
    }
}

/// Sleeps a random time up to 5 ms doubled per attempt, at most 200 ms
/// ("full jitter"), so colliding writers spread out.
async fn backoff(attempt: u32) {
    let cap_ms: u64 = (5u64 << attempt.min(6)).min(200);
    let ms = rand::random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn contention(what: &str) -> StoreError {
    tracing::warn!(
        what,
        attempts = MAX_ATTEMPTS,
        "gave up on a contended write"
    );
    StoreError::Contention(what.to_owned())
}

/// An SDK failure as [`StoreError::Unavailable`]. The message names the
/// operation and the error chain (e.g. "dispatch failure: ... connection
/// refused"); the SDK never puts credentials in its errors.
pub(crate) fn unavailable<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("DynamoDB {operation}: {}", DisplayErrorContext(&err));
    tracing::warn!(error = %message, "DynamoDB call failed");
    StoreError::Unavailable(message)
}

/// A request we built is missing a required field: a bug here, reported as
/// unavailable rather than a panic.
fn build_error(err: BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request could not be built: {err}"))
}
