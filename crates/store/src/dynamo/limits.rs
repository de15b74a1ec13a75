//! The per-socket message budget and the per-user socket count, on the
//! connections table.
//!
//! **Message budget.** Each connection item carries its [`RateState`]
//! (`rateAdmitted`, `rateRefused`). A message is one `UpdateItem` of the
//! connection item that writes the state [`MessageRate::take`] computed,
//! conditioned on the connection being live and on the stored state being
//! the one the computation started from, with `ReturnValues=ALL_NEW`: the
//! read of the sender's connection and the budget's update are one round
//! trip. The starting state is the one this store last wrote for the
//! connection (a bounded per-process memory), else "full"; when it was
//! wrong (another container took a message meanwhile, or this one never saw
//! the socket) the failed condition returns the stored item
//! (`ReturnValuesOnConditionCheckFailure=ALL_OLD`) and the update is
//! retried from it: a second round trip, never a lost message.
//!
//! **Sockets per user.** A user item (`pk` = `user#<user id>`) holds the set
//! of its connection ids. `$connect` adds the new id in the same
//! `TransactWriteItems` as the connection item, conditioned on the set
//! holding fewer than the maximum; `$disconnect` takes it out. A container
//! that dies between the two leaves an id behind: when the set is full, the
//! ids whose connection item is gone or expired are taken out and the
//! connect is tried again, so a stale id never locks a user out.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use tincan_signaling::{MessageRate, RateState, RateVerdict};

use super::item::{
    connection_from_item, key, n, s, user_key, CONNECTIONS, EXPIRES_AT, PK, RATE_ADMITTED,
    RATE_REFUSED,
};
use super::{build_error, unavailable, DynamoConnectionStore, MAX_ATTEMPTS};
use crate::connection::{ConnectionRecord, CONNECTION_TTL_SECS};
use crate::error::StoreError;

/// Most connections whose last written budget a store remembers; past it,
/// the memory starts over (a miss costs one extra round trip, nothing more).
pub(super) const RATE_MEMORY_MAX: usize = 4096;

/// Most keys one `BatchGetItem` takes.
const BATCH_GET_MAX: usize = 100;

impl DynamoConnectionStore {
    /// What this store last wrote as connection `id`'s budget.
    fn remembered_rate(&self, id: &str) -> RateState {
        let memory = self
            .rates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        memory.get(id).copied().unwrap_or_default()
    }

    pub(super) fn remember_rate(&self, id: &str, state: Option<RateState>) {
        let mut memory = self
            .rates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match state {
            Some(state) => {
                if memory.len() >= RATE_MEMORY_MAX && !memory.contains_key(id) {
                    memory.clear();
                }
                memory.insert(id.to_owned(), state);
            }
            None => {
                memory.remove(id);
            }
        }
    }

    /// [`crate::ConnectionStore::take_message`]: see the module's docs.
    pub(super) async fn take_message_on_table(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError> {
        let now_secs = now_ms / 1000;
        if rate.is_unlimited() {
            let record = self.read_connection(id).await?;
            return Ok(record
                .filter(|r| r.is_live(now_secs))
                .map(|r| (r, RateVerdict::Pass)));
        }
        let mut from = self.remembered_rate(id).settled(now_ms);
        let mut last_seen = None;
        for attempt in 0..MAX_ATTEMPTS * 2 {
            if attempt > 1 {
                // Frames of this socket in other containers keep winning.
                tincan_aws::transact::backoff(attempt - 2).await;
            }
            let (verdict, next) = rate.take(from, now_ms);
            let mut condition = "attribute_exists(#pk) AND #expires > :now_secs".to_owned();
            let mut values = HashMap::from([
                (":now_secs".to_owned(), n(now_secs)),
                (":admitted".to_owned(), n(next.admitted_until_us)),
                (":refused".to_owned(), n(next.refused_until_us)),
            ]);
            for (name, was, placeholder) in [
                ("#admitted", from.admitted_until_us, ":was_admitted"),
                ("#refused", from.refused_until_us, ":was_refused"),
            ] {
                if was == 0 {
                    // Full: any stored time not after now means the same.
                    condition.push_str(&format!(
                        " AND (attribute_not_exists({name}) OR {name} <= :now_us)"
                    ));
                    values.insert(":now_us".to_owned(), n(now_ms.saturating_mul(1000)));
                } else {
                    condition.push_str(&format!(" AND {name} = {placeholder}"));
                    values.insert(placeholder.to_owned(), n(was));
                }
            }
            let sent = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(id)))
                .update_expression("SET #admitted = :admitted, #refused = :refused")
                .condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_names("#admitted", RATE_ADMITTED)
                .expression_attribute_names("#refused", RATE_REFUSED)
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let Some(item) = out.attributes() else {
                        return Err(StoreError::Unavailable(
                            "UpdateItem returned no attributes".to_owned(),
                        ));
                    };
                    let record = connection_from_item(item)?;
                    self.remember_rate(id, Some(next));
                    return Ok(Some((record, verdict)));
                }
                Err(err) => {
                    let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                        err.as_service_error()
                    else {
                        return Err(unavailable("UpdateItem", err));
                    };
                    let stored = failed.item().map(connection_from_item).transpose()?;
                    match stored.filter(|r| r.is_live(now_secs)) {
                        // Gone, or expired: no such live connection.
                        None => {
                            self.remember_rate(id, None);
                            return Ok(None);
                        }
                        // Another caller took a message meanwhile: again,
                        // from what it left.
                        Some(record) => {
                            from = record.rate.settled(now_ms);
                            last_seen = Some(record);
                        }
                    }
                }
            }
        }
        // Every attempt lost to another frame of this same socket: it is
        // sending faster than its writes can land, so this frame is refused
        // as over its rate (nothing taken from its budget), not answered
        // with a store error.
        let Some(record) = last_seen else {
            return Err(super::contention(&format!("connection {id}")));
        };
        let retry_after_ms = match rate.take(from, now_ms).0 {
            RateVerdict::Limited { retry_after_ms } => retry_after_ms,
            RateVerdict::Pass | RateVerdict::Close => u64::from(1000 / rate.per_sec.max(1)).max(1),
        };
        tracing::debug!(
            connection = id,
            "rate write contended by the socket's own frames: refused"
        );
        Ok(Some((record, RateVerdict::Limited { retry_after_ms })))
    }

    /// The write adding connection `id` to its user's set, unless the set
    /// holds `max` others already (0: no limit); the user item lives as
    /// long as the connection could.
    pub(super) fn count_connection(
        &self,
        record: &ConnectionRecord,
        max: usize,
    ) -> Result<aws_sdk_dynamodb::types::Update, StoreError> {
        let id = &record.connection_id;
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&user_key(&record.user_id))))
            .update_expression("ADD #connections :ids SET #expires = :expires")
            .expression_attribute_names("#connections", CONNECTIONS)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![id.clone()]))
            .expression_attribute_values(
                ":expires",
                n(record.connected_at_ms / 1000 + CONNECTION_TTL_SECS),
            );
        let update = if max > 0 {
            update
                .condition_expression(
                    "attribute_not_exists(#connections) OR size(#connections) < :max \
                     OR contains(#connections, :id)",
                )
                .expression_attribute_values(":max", n(max as u64))
                .expression_attribute_values(":id", s(id))
        } else {
            update
        };
        update.build().map_err(build_error)
    }

    /// Takes connections `ids` out of user `user_id`'s set.
    pub(super) async fn uncount_connections(
        &self,
        user_id: &str,
        ids: Vec<String>,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&user_key(user_id))))
            .update_expression("DELETE #connections :ids")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#connections", CONNECTIONS)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":ids", AttributeValue::Ss(ids))
            .send()
            .await
            .map(|_| ())
            .or_else(|err| match err.as_service_error() {
                // No user item: nothing to take out.
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(unavailable("UpdateItem", err)),
            })
    }

    /// Takes out of user `user_id`'s set the ids whose connection item is
    /// gone or expired at `now_secs`; whether any was.
    pub(super) async fn prune_connections(
        &self,
        user_id: &str,
        now_secs: u64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&user_key(user_id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        let listed: Vec<String> = match out.item().and_then(|i| i.get(CONNECTIONS)) {
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            _ => return Ok(false),
        };
        let live: Vec<String> = self
            .read_connections(&listed)
            .await?
            .into_iter()
            .filter(|r| r.is_live(now_secs))
            .map(|r| r.connection_id)
            .collect();
        let stale: Vec<String> = listed.into_iter().filter(|id| !live.contains(id)).collect();
        if stale.is_empty() {
            return Ok(false);
        }
        tracing::info!(
            user_id,
            stale = stale.len(),
            "forgetting connections that are gone"
        );
        self.uncount_connections(user_id, stale).await?;
        Ok(true)
    }

    /// The stored records of connections `ids` (strongly consistent, in
    /// batches); ids with no item are left out.
    pub(super) async fn read_connections(
        &self,
        ids: &[String],
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut records = Vec::new();
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for id in chunk {
                keys = keys.keys(key(id));
            }
            let mut request =
                HashMap::from([(self.table.clone(), keys.build().map_err(build_error)?)]);
            // Unprocessed keys are asked for again until none are left.
            while !request.is_empty() {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|err| unavailable("BatchGetItem", err))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    records.push(connection_from_item(item)?);
                }
                request = out.unprocessed_keys().cloned().unwrap_or_default();
            }
        }
        Ok(records)
    }
}
