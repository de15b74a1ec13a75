//! DynamoDB connection store.
//!
//! One table (see [`create_table`]) holds three kinds of item:
//!
//! - **connection items**, `pk` = connection id: `userId`, `displayName`,
//!   `room` and `peerId` (the participant it last joined or resumed as;
//!   absent before, so the [`ROOM_INDEX`] GSI is sparse), `connectedAt` (ms),
//!   `expiresAt` (secs, the table's TTL);
//! - **room items**, `pk` = `room#<room>`: `members` (peer id -> the whole
//!   participant: user, name, mute, resume hash, connection or resume
//!   deadline), `version` (bumped by every write) and `expiresAt`;
//! - **kept-signal items**, `pk` = `kept#<peer id>`: `messages`, signals
//!   kept for a detached participant until it resumes (bounded), with a TTL;
//!   appended in one `TransactWriteItems` with a check that the room item
//!   still shows the participant detached, so no resume strands one;
//! - **deleted-user markers**, `pk` = `deleted#<user id>`: `expiresAt`, written
//!   when an account is deleted ([`DynamoConnectionStore::mark_user_deleted`]),
//!   living as long as an access token of that user could. Every `put` of a
//!   connection checks, in the same `TransactWriteItems`, that its user has
//!   no live marker, so `$connect` refuses a deleted account in one round
//!   trip without asking the account store;
//! - **revoked-session markers**, `pk` = `revoked#<session id>`: likewise,
//!   written when a login session is revoked (a password change, reuse of a
//!   rotated refresh token, logout;
//!   [`DynamoConnectionStore::mark_session_revoked`]); a `put` of a
//!   connection opened under that session (the access token's `sid`, kept
//!   on the connection item) is refused in the same write.
//!
//! A room item is the single truth of who is in the room, so reading a room
//! is one strongly consistent `GetItem`. Every membership change is a
//! read-modify-write of the room item conditioned on the `version` read (in
//! a `TransactWriteItems` with the connection item's update, conditioned on
//! it still existing, when the connection moves). A cancelled write means
//! someone else wrote first: re-read and try again, a bounded number of
//! times with jittered backoff, then [`StoreError::Contention`]. So two
//! joiners that read the same version cannot both commit: capacity is
//! race-free, each joiner sees exactly the members before its own write, and
//! a join racing its connection's `$disconnect` either commits first (and is
//! detached by it) or fails on the missing connection item.

mod item;
mod kept;
mod limits;
mod table;
mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{BuildError, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use tincan_aws::transact::{transact, CancellationCode, Retry, TransactError, Transacted};
use tincan_aws::DynamoError;
use tincan_signaling::{Member, MessageRate, RateState, RateVerdict, ResumeProof, RoomView, Seat};

pub use self::item::ROOM_INDEX;
use self::item::{
    connection_from_item, connection_to_item, deleted_user_key, kept_key, key, n,
    revoked_session_key, room_key, s, RoomItem, EXPIRES_AT, MESSAGES, PEER_ID, PK, ROOM, USER_ID,
    VERSION,
};
pub use self::table::create_table;
pub use self::throttle::{create_throttle_table, DynamoThrottleStore};
use crate::connection::{
    apply_detach, apply_resume, ConnectionRecord, ConnectionStore, Departure, JoinOutcome,
    KeepOutcome, ResumeOutcome, Stranded, CONNECTION_TTL_SECS,
};
use crate::error::StoreError;

/// Tries of one membership change before [`StoreError::Contention`].
const MAX_ATTEMPTS: u32 = 8;

/// [`ConnectionStore`] on a DynamoDB table made by [`create_table`].
#[derive(Debug, Clone)]
pub struct DynamoConnectionStore {
    client: Client,
    table: String,
    /// Connection id -> the message budget this store last wrote for it
    /// (see [`limits`]).
    rates: Arc<Mutex<HashMap<String, RateState>>>,
}

impl DynamoConnectionStore {
    /// A store on table `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            rates: Arc::default(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Marks user `user_id` deleted until `until_secs` (seconds since the
    /// epoch; make it outlive every access token of the user): from now on
    /// [`ConnectionStore::put`] refuses its connections with
    /// [`StoreError::UserDeleted`]. Closing its open sockets is the caller's
    /// business ([`ConnectionStore::connections_of`]).
    pub async fn mark_user_deleted(
        &self,
        user_id: &str,
        until_secs: u64,
    ) -> Result<(), StoreError> {
        self.put_marker(deleted_user_key(user_id), until_secs).await
    }

    /// Marks login session `session_id` revoked until `until_secs` (make it
    /// outlive every access token of the session): from now on
    /// [`ConnectionStore::put`] refuses connections opened under it with
    /// [`StoreError::SessionRevoked`].
    pub async fn mark_session_revoked(
        &self,
        session_id: &str,
        until_secs: u64,
    ) -> Result<(), StoreError> {
        self.put_marker(revoked_session_key(session_id), until_secs)
            .await
    }

    /// A marker item `pk` (a deleted user, a revoked session) that holds
    /// until `until_secs`; [`Self::no_live_marker`] checks it.
    async fn put_marker(&self, pk: String, until_secs: u64) -> Result<(), StoreError> {
        let mut item = key(&pk);
        item.insert(EXPIRES_AT.to_owned(), n(until_secs));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|err| unavailable("PutItem", err))?;
        Ok(())
    }

    /// The transaction check that marker `pk` is absent or expired at
    /// `now_secs` (DynamoDB's TTL deletes late).
    fn no_live_marker(&self, pk: &str, now_secs: u64) -> Result<ConditionCheck, StoreError> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .condition_expression("attribute_not_exists(#pk) OR #expires <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", n(now_secs))
            .build()
            .map_err(build_error)
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

    /// The write at `now_secs` of `room`'s item with `members`, conditioned
    /// on the version read in `room_item`; the item lives at least as long
    /// as a connection opened now could.
    fn put_room(
        &self,
        room: &str,
        room_item: &RoomItem,
        members: &[Member],
        now_secs: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(room_item.next_item(
                room,
                members,
                now_secs + CONNECTION_TTL_SECS,
            )));
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

    /// The update pointing connection `id` at `seat`, if the connection
    /// still exists, is live at `now_secs` and still points where we read.
    fn point_connection(
        &self,
        id: &str,
        seat: &Seat,
        read: Option<&Seat>,
        now_secs: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut condition = "attribute_exists(#pk) AND #expires > :now".to_owned();
        let mut values = HashMap::from([
            (":room".to_owned(), s(&seat.room)),
            (":peer".to_owned(), s(&seat.peer_id)),
            (":now".to_owned(), n(now_secs)),
        ]);
        match read {
            Some(old) => {
                condition.push_str(" AND #peer = :old_peer");
                values.insert(":old_peer".into(), s(&old.peer_id));
            }
            None => condition.push_str(" AND attribute_not_exists(#peer)"),
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression("SET #room = :room, #peer = :peer")
            .condition_expression(condition)
            .set_expression_attribute_names(Some(HashMap::from([
                ("#pk".to_owned(), PK.to_owned()),
                ("#room".to_owned(), ROOM.to_owned()),
                ("#peer".to_owned(), PEER_ID.to_owned()),
                ("#expires".to_owned(), EXPIRES_AT.to_owned()),
            ])))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Changes participant `seat` if it is attached to connection `id`
    /// (one read-modify-write of its room); the room as written, or `None`
    /// if nothing was written.
    async fn update_attached(
        &self,
        id: &str,
        seat: &Seat,
        now_secs: u64,
        change: impl Fn(&mut Member),
    ) -> Result<Option<RoomView>, StoreError> {
        let changed = self
            .modify_room(&seat.room, now_secs, |members| {
                let member = members
                    .iter_mut()
                    .find(|m| m.peer.peer_id == seat.peer_id && m.is_attached_to(id))?;
                change(member);
                Some(())
            })
            .await?;
        Ok(changed.map(|((), room)| room))
    }

    /// Read-modify-write of `room`'s members at `now_secs`: `change`
    /// returns `None` to write nothing. Returns its result and the room as
    /// written.
    async fn modify_room<T>(
        &self,
        room: &str,
        now_secs: u64,
        mut change: impl FnMut(&mut Vec<Member>) -> Option<T>,
    ) -> Result<Option<(T, RoomView)>, StoreError> {
        let what = format!("room {room}");
        let mut retry = Retry::new(MAX_ATTEMPTS);
        while retry.next().await {
            let room_item = self.read_room(room).await?;
            let mut members = room_item.members.clone();
            let Some(result) = change(&mut members) else {
                return Ok(None);
            };
            let items = vec![self.put_room(room, &room_item, &members, now_secs)?];
            if self.transact(items, &mut retry, &what).await? {
                return Ok(Some((
                    result,
                    RoomView {
                        room: room.to_owned(),
                        members,
                    },
                )));
            }
        }
        Err(contention(&what))
    }

    /// Takes `peer_id` out of `room` if `pred` holds for it.
    async fn take_out(
        &self,
        room: &str,
        peer_id: &str,
        now_secs: u64,
        pred: impl Fn(&Member) -> bool,
    ) -> Result<Option<Departure>, StoreError> {
        let taken = self
            .modify_room(room, now_secs, |members| {
                let index = members
                    .iter()
                    .position(|m| m.peer.peer_id == peer_id && pred(m))?;
                Some(members.remove(index))
            })
            .await?;
        Ok(taken.map(|(member, remaining)| Departure { member, remaining }))
    }

    /// Every item matching `filter` (over `#k` = `attribute` and `:v` =
    /// `value`), strongly consistent, all pages: for rare paths only.
    async fn scan(
        &self,
        filter: &str,
        attribute: &str,
        value: AttributeValue,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(filter)
                .expression_attribute_names("#k", attribute)
                .expression_attribute_values(":v", value.clone())
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|err| unavailable("Scan", err))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Runs one transaction of a read-modify-write (conflicts are sent
    /// again within `retry`): `Ok(true)` if it committed, `Ok(false)` if a
    /// condition failed, so someone wrote first: re-read and try again.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        retry: &mut Retry,
        what: &str,
    ) -> Result<bool, StoreError> {
        match transact(&self.client, items, retry).await {
            Ok(Transacted::Committed) => Ok(true),
            Ok(Transacted::Cancelled(cancelled))
                if cancelled.only(&[
                    CancellationCode::ConditionalCheckFailed,
                    CancellationCode::TransactionConflict,
                ]) =>
            {
                tracing::debug!(table = %self.table, "transaction cancelled; retrying");
                Ok(false)
            }
            Ok(Transacted::Cancelled(cancelled)) => Err(cancelled.into_error().into()),
            Err(err) => Err(transact_error(err, what)),
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn put(&self, record: &ConnectionRecord, max_per_user: usize) -> Result<(), StoreError> {
        // One round trip: the user has no live deleted-user marker, has
        // room for one more connection, and the connection is written.
        let now_secs = record.connected_at_ms / 1000;
        let not_deleted = self.no_live_marker(&deleted_user_key(&record.user_id), now_secs)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection_to_item(record)))
            .build()
            .map_err(build_error)?;
        let counted = self.count_connection(record, max_per_user)?;
        // A connection opened under a login session: the session has no
        // live revoked marker, in the same write.
        let not_revoked = record
            .session_id
            .as_ref()
            .map(|sid| self.no_live_marker(&revoked_session_key(sid), now_secs))
            .transpose()?;
        let what = format!("connection {}", record.connection_id);
        let mut pruned = false;
        let mut retry = Retry::new(MAX_ATTEMPTS);
        while retry.next().await {
            let mut items = vec![
                TransactWriteItem::builder()
                    .condition_check(not_deleted.clone())
                    .build(),
                TransactWriteItem::builder().put(put.clone()).build(),
                TransactWriteItem::builder().update(counted.clone()).build(),
            ];
            if let Some(check) = &not_revoked {
                items.push(
                    TransactWriteItem::builder()
                        .condition_check(check.clone())
                        .build(),
                );
            }
            let cancelled = match transact(&self.client, items, &mut retry).await {
                Ok(Transacted::Committed) => return Ok(()),
                Ok(Transacted::Cancelled(cancelled)) => cancelled,
                Err(err) => return Err(transact_error(err, &what)),
            };
            if cancelled.failed_check(0) {
                return Err(StoreError::UserDeleted(record.user_id.clone()));
            }
            if cancelled.failed_check(3) {
                let sid = record.session_id.clone().unwrap_or_default();
                return Err(StoreError::SessionRevoked(sid));
            }
            if cancelled.failed_check(2) {
                // The user's set is full. Ids left by connections that are
                // gone free their places once; then it is really full.
                if pruned || !self.prune_connections(&record.user_id, now_secs).await? {
                    return Err(StoreError::TooManyConnections {
                        user: record.user_id.clone(),
                        max: max_per_user,
                    });
                }
                pruned = true;
            }
            // Otherwise (throttled, say): again, after a backoff.
        }
        Err(contention(&what))
    }

    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self
            .read_connection(id)
            .await?
            .filter(|r| r.is_live(now_secs)))
    }

    async fn take_message(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError> {
        self.take_message_on_table(id, rate, now_ms).await
    }

    async fn remove(
        &self,
        id: &str,
        resume_until_ms: u64,
        now_ms: u64,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|err| unavailable("DeleteItem", err))?;
        let Some(record) = out.attributes().map(connection_from_item).transpose()? else {
            return Ok(None);
        };
        self.remember_rate(id, None);
        self.uncount_connections(&record.user_id, vec![id.to_owned()])
            .await?;
        // Deleted first: a join of this connection that has not committed
        // yet now fails on the missing item, and one that has is detached here.
        if let Some(seat) = &record.seat {
            self.modify_room(&seat.room, now_ms / 1000, |members| {
                apply_detach(members, id, resume_until_ms).then_some(())
            })
            .await?;
        }
        Ok(Some(record))
    }

    async fn connections_of(
        &self,
        user_id: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        // A scan: account deletion is rare, and an index by user would cost
        // every connect a second write.
        let mut records = Vec::new();
        for item in self.scan("#k = :v", USER_ID, s(user_id)).await? {
            let record = connection_from_item(&item)?;
            if record.is_live(now_secs) {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn room(&self, room: &str) -> Result<RoomView, StoreError> {
        Ok(self.read_room(room).await?.view(room))
    }

    async fn join(
        &self,
        id: &str,
        room: &str,
        member: &Member,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError> {
        let seat = Seat {
            peer_id: member.peer.peer_id.clone(),
            room: room.to_owned(),
        };
        let what = format!("room {room}");
        let mut retry = Retry::new(MAX_ATTEMPTS);
        while retry.next().await {
            let Some(record) = self.get(id, now_secs).await? else {
                return Ok(JoinOutcome::UnknownConnection);
            };
            let room_item = self.read_room(room).await?;
            let own = |m: &Member| m.is_attached_to(id);
            let others: Vec<Member> = room_item
                .members
                .iter()
                .filter(|m| !own(m))
                .cloned()
                .collect();
            if others.len() >= room_max {
                return Ok(JoinOutcome::RoomFull);
            }
            let mut members = others.clone();
            members.push(member.clone());
            let mut items = vec![
                self.point_connection(id, &seat, record.seat.as_ref(), now_secs)?,
                self.put_room(room, &room_item, &members, now_secs)?,
            ];
            // The previous participant leaves in the same transaction.
            let mut departure = None;
            if let Some(previous) = &record.seat {
                if previous.room == room {
                    departure = room_item
                        .members
                        .iter()
                        .find(|m| m.peer.peer_id == previous.peer_id && own(m))
                        .map(|m| Departure {
                            member: m.clone(),
                            remaining: RoomView {
                                room: room.to_owned(),
                                members: others.clone(),
                            },
                        });
                } else {
                    let old_item = self.read_room(&previous.room).await?;
                    if let Some(index) = old_item
                        .members
                        .iter()
                        .position(|m| m.peer.peer_id == previous.peer_id && own(m))
                    {
                        let mut remaining = old_item.members.clone();
                        let left = remaining.remove(index);
                        items.push(self.put_room(
                            &previous.room,
                            &old_item,
                            &remaining,
                            now_secs,
                        )?);
                        departure = Some(Departure {
                            member: left,
                            remaining: RoomView {
                                room: previous.room.clone(),
                                members: remaining,
                            },
                        });
                    }
                }
            }
            if self.transact(items, &mut retry, &what).await? {
                return Ok(JoinOutcome::Joined { others, departure });
            }
        }
        Err(contention(&what))
    }

    async fn leave(
        &self,
        id: &str,
        seat: &Seat,
        now_ms: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.take_out(&seat.room, &seat.peer_id, now_ms / 1000, |m| {
            m.is_attached_to(id)
        })
        .await
    }

    async fn resume(
        &self,
        id: &str,
        user_id: &str,
        seat: &Seat,
        proof: &ResumeProof,
        new_hash: &str,
        now_ms: u64,
    ) -> Result<ResumeOutcome, StoreError> {
        let now_secs = now_ms / 1000;
        let what = format!("room {}", seat.room);
        let mut retry = Retry::new(MAX_ATTEMPTS);
        while retry.next().await {
            let Some(record) = self
                .get(id, now_secs)
                .await?
                .filter(|r| r.user_id == user_id)
            else {
                return Ok(ResumeOutcome::Refused);
            };
            let room_item = self.read_room(&seat.room).await?;
            let mut members = room_item.members.clone();
            let Some(index) =
                apply_resume(&mut members, id, user_id, seat, proof, new_hash, now_ms)
            else {
                return Ok(ResumeOutcome::Refused);
            };
            let items = vec![
                self.point_connection(id, seat, record.seat.as_ref(), now_secs)?,
                self.put_room(&seat.room, &room_item, &members, now_secs)?,
            ];
            if self.transact(items, &mut retry, &what).await? {
                return Ok(ResumeOutcome::Resumed {
                    member: members[index].clone(),
                    room: RoomView {
                        room: seat.room.clone(),
                        members,
                    },
                });
            }
        }
        Err(contention(&what))
    }

    async fn set_muted(
        &self,
        id: &str,
        seat: &Seat,
        muted: bool,
        now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.update_attached(id, seat, now_ms / 1000, |m| m.peer.muted = muted)
            .await
    }

    async fn set_on_sfu(
        &self,
        id: &str,
        seat: &Seat,
        now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.update_attached(id, seat, now_ms / 1000, |m| m.sfu = true)
            .await
    }

    async fn expire(
        &self,
        seat: &Seat,
        resume_until_ms: u64,
        now_ms: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.take_out(&seat.room, &seat.peer_id, now_ms / 1000, |m| {
            m.is_detached_until(resume_until_ms)
        })
        .await
    }

    async fn keep_if_detached(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        expires_at: u64,
    ) -> Result<KeepOutcome, StoreError> {
        self.keep_on_table(seat, gone, msg, max, expires_at).await
    }

    async fn take_kept(&self, peer_id: &str) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&kept_key(peer_id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|err| unavailable("DeleteItem", err))?;
        let messages = match out.attributes().and_then(|a| a.get(MESSAGES)) {
            Some(AttributeValue::L(list)) => {
                list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
            }
            _ => Vec::new(),
        };
        Ok(messages)
    }

    async fn expired_members(&self, now_ms: u64) -> Result<Vec<(Seat, u64)>, StoreError> {
        let mut expired = Vec::new();
        for (room, members) in self.room_items().await? {
            expired.extend(RoomView::expired_in(&room, &members, now_ms));
        }
        Ok(expired)
    }

    async fn stranded_members(&self, now_ms: u64) -> Result<Vec<Stranded>, StoreError> {
        // The scan of the room items, then one consistent read of every
        // connection a member is attached to (in batches of 100).
        let attached: Vec<(String, Member)> = self
            .room_items()
            .await?
            .into_iter()
            .flat_map(|(room, members)| {
                members
                    .into_iter()
                    .filter(|m| m.connection_id.is_some())
                    .map(move |m| (room.clone(), m))
            })
            .collect();
        let mut ids: Vec<String> = attached
            .iter()
            .filter_map(|(_, m)| m.connection_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let records: HashMap<String, ConnectionRecord> = self
            .read_connections(&ids)
            .await?
            .into_iter()
            .map(|r| (r.connection_id.clone(), r))
            .collect();
        let now_secs = now_ms / 1000;
        Ok(attached
            .into_iter()
            .filter_map(|(room, member)| {
                let id = member.connection_id?;
                let record = records.get(&id);
                if record.is_some_and(|r| r.is_live(now_secs)) {
                    return None;
                }
                Some(Stranded {
                    seat: Seat {
                        peer_id: member.peer.peer_id,
                        room,
                    },
                    connection_id: id,
                    joined_at_ms: member.joined_at_ms,
                    record: record.cloned(),
                })
            })
            .collect())
    }
}

impl DynamoConnectionStore {
    /// Every room item's room and members: a scan, for the periodic sweep,
    /// not for a hot path.
    async fn room_items(&self) -> Result<Vec<(String, Vec<Member>)>, StoreError> {
        let mut rooms = Vec::new();
        for item in self.scan("begins_with(#k, :v)", PK, s("room#")).await? {
            let Some(room) = item
                .get(PK)
                .and_then(|pk| pk.as_s().ok())
                .and_then(|pk| pk.strip_prefix("room#"))
            else {
                continue;
            };
            let room = room.to_owned();
            rooms.push((room, RoomItem::from_item(Some(&item))?.members));
        }
        Ok(rooms)
    }
}

fn contention(what: &str) -> StoreError {
    tracing::warn!(
        what,
        attempts = MAX_ATTEMPTS,
        "gave up on a contended write"
    );
    StoreError::Contention(what.to_owned())
}

/// A [`transact`] failure: contention on `what`, or unavailable.
fn transact_error(err: TransactError, what: &str) -> StoreError {
    match err {
        TransactError::Contention { .. } => contention(what),
        TransactError::Dynamo(err) => err.into(),
        err => StoreError::Unavailable(err.to_string()),
    }
}

/// An SDK failure as [`StoreError::Unavailable`]. The message names the
/// operation and the error chain (e.g. "dispatch failure: ... connection
/// refused"); the SDK never puts credentials in its errors.
pub(crate) fn unavailable<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DynamoError::call(operation, err).into()
}

/// A request we built is missing a required field: a bug here, reported as
/// unavailable rather than a panic.
fn build_error(err: BuildError) -> StoreError {
    DynamoError::from(err).into()
}
