//! The media-nodes registry on DynamoDB.
//!
//! One table (see [`create_media_nodes_table`]), partition key `nodeId` (S),
//! TTL on `expiresAt`, holds two kinds of item:
//!
//! - **node items**, `nodeId` = the node id: `fleet` = `nodes`, `region`,
//!   `turnAddr`, `udp`, `tcp`, `relayPortMin`, `relayPortMax`,
//!   `allocations`, `bandwidthBps`, `cpuPercent`, `state`
//!   (`active`/`draining`), `heartbeatAt`, `expiresAt`;
//! - **room items**, `nodeId` = `room#<room>`: `node` (the node id the room
//!   is on) and `expiresAt`.
//!
//! Listing nodes queries the sparse global secondary index [`FLEET_INDEX`]
//! (partition key `fleet`, only on node items), so it reads the nodes and
//! never the room items, however many rooms there are. GSI reads are
//! eventually consistent: a node that registered a moment ago may be missed
//! by one listing, which only delays its first room. Room items are read
//! strongly consistent and written with conditions (compare-and-set), so
//! concurrent placements of one room agree.
//!
//! Every read filters on `expiresAt` itself: TTL deletes late, and
//! emulators never do.

mod item;
mod table;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tincan_aws::DynamoError;

use self::item::{
    key, n, node_from_item, node_to_item, room_from_item, room_key, room_to_item, s, state_value,
    EXPIRES_AT, FLEET, FLEET_NODES, NODE, PK, STATE,
};
pub use self::table::create_media_nodes_table;
use crate::{
    validate_node_id, FleetError, MediaNodeInfo, MediaNodeStore, NodeRecord, NodeState,
    RoomAssignment,
};

/// The table's name unless configured (`TINCAN_MEDIA_NODES_TABLE`).
pub const DEFAULT_MEDIA_NODES_TABLE: &str = "tincan-media-nodes";

/// The sparse global secondary index of node items (partition key `fleet`).
pub const FLEET_INDEX: &str = "byFleet";

/// [`MediaNodeStore`] on a DynamoDB table made by
/// [`create_media_nodes_table`].
#[derive(Debug, Clone)]
pub struct DynamoMediaNodeStore {
    client: Client,
    table: String,
}

impl DynamoMediaNodeStore {
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

    /// Writes a node item; `Ok(false)` if `only_unless_draining` and a live
    /// draining record is in the way.
    async fn put_node(
        &self,
        info: &MediaNodeInfo,
        now: u64,
        expires_at: u64,
        only_unless_draining: bool,
    ) -> Result<bool, FleetError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(node_to_item(info, now, expires_at)));
        let put = if only_unless_draining {
            put.condition_expression(
                "attribute_not_exists(#pk) OR #state <> :draining OR #expires <= :now",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":draining", state_value(NodeState::Draining))
            .expression_attribute_values(":now", n(now))
        } else {
            put
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(backend("PutItem", err)),
        }
    }
}

#[async_trait]
impl MediaNodeStore for DynamoMediaNodeStore {
    async fn heartbeat(
        &self,
        mut info: MediaNodeInfo,
        now: u64,
        ttl_secs: u64,
    ) -> Result<(), FleetError> {
        validate_node_id(&info.id)?;
        let expires_at = now.saturating_add(ttl_secs);
        let check = info.state == NodeState::Active;
        if self.put_node(&info, now, expires_at, check).await? {
            return Ok(());
        }
        // A live record says draining: it stays so.
        info.state = NodeState::Draining;
        self.put_node(&info, now, expires_at, false).await?;
        Ok(())
    }

    async fn set_draining(&self, id: &str, now: u64) -> Result<(), FleetError> {
        if validate_node_id(id).is_err() {
            return Err(FleetError::NotFound(id.to_owned()));
        }
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .update_expression("SET #state = :draining")
            .condition_expression("attribute_exists(#fleet) AND #expires > :now")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#fleet", FLEET)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":draining", state_value(NodeState::Draining))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match updated {
            Ok(_) => {
                tracing::info!(node = id, "media node marked draining");
                Ok(())
            }
            Err(err) if is_condition_failure(&err) => Err(FleetError::NotFound(id.to_owned())),
            Err(err) => Err(backend("UpdateItem", err)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), FleetError> {
        if validate_node_id(id).is_err() {
            // Never a node item; and never let an id reach a room item.
            return Ok(());
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .send()
            .await
            .map_err(|err| backend("DeleteItem", err))?;
        Ok(())
    }

    async fn list_alive(&self, now: u64) -> Result<Vec<NodeRecord>, FleetError> {
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(FLEET_INDEX)
                .key_condition_expression("#fleet = :nodes")
                .filter_expression("#expires > :now")
                .expression_attribute_names("#fleet", FLEET)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":nodes", s(FLEET_NODES))
                .expression_attribute_values(":now", n(now))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| backend("Query", err))?;
            for item in out.items() {
                match node_from_item(item) {
                    Ok(record) if record.is_alive(now) => records.push(record),
                    Ok(_) => {}
                    // One bad item must not hide every other node.
                    Err(err) => tracing::warn!(error = %err, "skipping a corrupt media node item"),
                }
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        records.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        Ok(records)
    }

    async fn room_node(&self, room: &str, now: u64) -> Result<Option<RoomAssignment>, FleetError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&room_key(room))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| backend("GetItem", err))?;
        Ok(out
            .item()
            .map(room_from_item)
            .transpose()?
            .filter(|a| a.is_live(now)))
    }

    async fn assign_room(
        &self,
        room: &str,
        expected: Option<&str>,
        node_id: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<bool, FleetError> {
        validate_node_id(node_id)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(room_to_item(
                room,
                node_id,
                now.saturating_add(ttl_secs),
            )))
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", n(now));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#pk) OR #expires <= :now")
                .expression_attribute_names("#pk", PK),
            Some(expected) => put
                .condition_expression("#node = :expected AND #expires > :now")
                .expression_attribute_names("#node", NODE)
                .expression_attribute_values(":expected", s(expected)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(backend("PutItem", err)),
        }
    }
}

/// A failed `ConditionExpression`, whichever operation.
fn is_condition_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// An SDK failure as [`FleetError::Backend`], naming the operation and the
/// error chain (the SDK never puts credentials in its errors).
pub(crate) fn backend<E, R>(operation: &'static str, err: SdkError<E, R>) -> FleetError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DynamoError::call(operation, err).into()
}

/// A request we built is missing a required field: a bug here, reported as
/// a backend failure rather than a panic.
pub(crate) fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> FleetError {
    DynamoError::from(err).into()
}
