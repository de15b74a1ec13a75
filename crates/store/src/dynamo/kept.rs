//! Signals kept for a detached participant (`pk` = `kept#<peer id>`):
//! appended in one `TransactWriteItems` with a check that the room item
//! still shows the participant detached (or attached to a connection the
//! caller found gone), so no resume strands one; bounded in count and in
//! bytes ([`MAX_KEPT_BYTES`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use tincan_aws::transact::{transact, Retry, Transacted};
use tincan_signaling::Seat;

use super::item::{
    kept_key, key, n, room_key, s, RoomItem, EXPIRES_AT, MEMBERS, MEMBER_CONNECTION, MESSAGES,
    MESSAGE_BYTES,
};
use super::{build_error, contention, transact_error, DynamoConnectionStore, MAX_ATTEMPTS};
use crate::connection::{keep_refusal, KeepOutcome, MAX_KEPT_BYTES};
use crate::error::StoreError;

impl DynamoConnectionStore {
    /// [`crate::ConnectionStore::keep_if_detached`]: see the module's docs.
    pub(super) async fn keep_on_table(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        expires_at: u64,
    ) -> Result<KeepOutcome, StoreError> {
        if msg.len() > MAX_KEPT_BYTES {
            return Ok(KeepOutcome::Full);
        }
        // One round trip: a check that the room item shows the participant
        // detached (or attached to `gone`), and the bounded append, in one
        // transaction. A resume is a write of the same room item, so it
        // commits either before (the check fails) or after (its flush takes
        // the message). On a failed check DynamoDB returns the room item, so
        // the caller learns the new connection without another read.
        let mut condition =
            "attribute_exists(#members.#peer) AND (attribute_not_exists(#members.#peer.#conn)"
                .to_owned();
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(&room_key(&seat.room))))
            .expression_attribute_names("#members", MEMBERS)
            .expression_attribute_names("#peer", &seat.peer_id)
            .expression_attribute_names("#conn", MEMBER_CONNECTION)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(gone) = gone {
            condition.push_str(" OR #members.#peer.#conn = :gone");
            check = check.expression_attribute_values(":gone", s(gone));
        }
        condition.push(')');
        let check = check
            .condition_expression(condition)
            .build()
            .map_err(build_error)?;
        let append = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&kept_key(&seat.peer_id))))
            .update_expression(KEEP_UPDATE)
            .condition_expression(KEEP_CONDITION)
            .set_expression_attribute_names(Some(keep_names()))
            .set_expression_attribute_values(Some(keep_values(msg, max, expires_at)))
            .build()
            .map_err(build_error)?;
        let what = format!("kept signals of {}", seat.peer_id);
        let mut retry = Retry::new(MAX_ATTEMPTS);
        while retry.next().await {
            let items = vec![
                TransactWriteItem::builder()
                    .condition_check(check.clone())
                    .build(),
                TransactWriteItem::builder().update(append.clone()).build(),
            ];
            let cancelled = match transact(&self.client, items, &mut retry).await {
                Ok(Transacted::Committed) => return Ok(KeepOutcome::Kept),
                Ok(Transacted::Cancelled(cancelled)) => cancelled,
                Err(err) => return Err(transact_error(err, &what)),
            };
            if cancelled.failed_check(0) {
                // The item as it was when the check failed; a backend that
                // does not return it costs one more read, on this rare path.
                let room_item = match cancelled.item(0) {
                    Some(item) => RoomItem::from_item(Some(item))?,
                    None => self.read_room(&seat.room).await?,
                };
                if let Some(refusal) = keep_refusal(&room_item.members, seat, gone) {
                    return Ok(refusal);
                }
                // Re-read, and detached again already: try again.
            } else if cancelled.failed_check(1) {
                return Ok(KeepOutcome::Full);
            } else {
                return Err(cancelled.into_error().into());
            }
        }
        Err(contention(&what))
    }
}

/// The bounded append of one message to a kept-signal item (over
/// [`keep_names`] and [`keep_values`]).
const KEEP_UPDATE: &str =
    "SET #msgs = list_append(if_not_exists(#msgs, :empty), :msg), #expires = :expires ADD #bytes :len";
/// Under the count, and with room for this message's bytes (`:room` is
/// what the box may already hold: [`MAX_KEPT_BYTES`] less this message).
const KEEP_CONDITION: &str = "attribute_not_exists(#msgs) OR (size(#msgs) < :max \
    AND (attribute_not_exists(#bytes) OR #bytes <= :room))";

fn keep_names() -> HashMap<String, String> {
    HashMap::from([
        ("#msgs".to_owned(), MESSAGES.to_owned()),
        ("#expires".to_owned(), EXPIRES_AT.to_owned()),
        ("#bytes".to_owned(), MESSAGE_BYTES.to_owned()),
    ])
}

fn keep_values(msg: &str, max: usize, expires_at: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":empty".to_owned(), AttributeValue::L(Vec::new())),
        (":msg".to_owned(), AttributeValue::L(vec![s(msg)])),
        (":expires".to_owned(), n(expires_at)),
        (":max".to_owned(), n(max as u64)),
        (":len".to_owned(), n(msg.len() as u64)),
        (
            ":room".to_owned(),
            n(MAX_KEPT_BYTES.saturating_sub(msg.len()) as u64),
        ),
    ])
}
