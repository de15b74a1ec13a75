//! The throttles table: failed-login and registration limits shared by
//! every `http-api` container.
//!
//! One item per key: `pk` (S, the throttle key, e.g.
//! `login-user-addr#ada#203.0.113.7`), `tat` (N, the key's GCRA
//! "theoretical arrival time", ms since the epoch) and `expiresAt` (N,
//! seconds, the table's TTL: the first second at which `tat` has passed and
//! the item means nothing). Every write is a `PutItem` conditioned on the
//! value the writer read (`attribute_not_exists(pk)` or `tat = :read`), so
//! two containers racing on a key cannot both spend the same attempt: the
//! loser re-reads and decides again. An attempt costs one strongly
//! consistent `GetItem` and one `PutItem` per key (the GCRA arithmetic and
//! the retry loop are `tincan_accounts::rate_limit::Throttle`'s).
//!
//! TTL deletion is lazy (up to days late); an expired item that is still
//! there reads as a `tat` in the past, which the arithmetic treats as
//! absent, so lateness costs storage only.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use tincan_aws::ensure_table;

use super::item::{key, n, s, EXPIRES_AT, PK};
use super::{build_error, unavailable};
use crate::error::StoreError;

/// The attribute holding a key's GCRA value (ms).
const TAT: &str = "tat";

/// Compare-and-set cells of `u64` in a DynamoDB table (see the module docs).
#[derive(Debug, Clone)]
pub struct DynamoThrottleStore {
    client: Client,
    table: String,
}

impl DynamoThrottleStore {
    /// The throttles table `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The value of `key`, if any (a strongly consistent read).
    pub async fn get(&self, pk: &str) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .consistent_read(true)
            .projection_expression("#t")
            .expression_attribute_names("#t", TAT)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let value = item
            .get(TAT)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: pk.to_owned(),
                reason: format!("no numeric {TAT}"),
            })?;
        Ok(Some(value))
    }

    /// Sets `key` to `new` if it still holds `expected` (`None`: no item);
    /// `Ok(false)` if not (nothing written). The item expires (TTL) at the
    /// first second after `new`, or at `now_ms` if that is later.
    pub async fn compare_and_set(
        &self,
        pk: &str,
        expected: Option<u64>,
        new: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let expires_at = new.max(now_ms).div_ceil(1000);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk))
            .item(TAT, n(new))
            .item(EXPIRES_AT, n(expires_at));
        put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(value) => put
                .condition_expression("#t = :expected")
                .expression_attribute_names("#t", TAT)
                .expression_attribute_values(":expected", n(value)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(unavailable("PutItem", err)),
        }
    }
}

/// Creates the throttles table `name` if it does not exist (partition key
/// `pk` S, on-demand), with TTL on `expiresAt`; for tests and the local
/// stack's DynamoDB mode (the templates create it on AWS).
pub async fn create_throttle_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build_error)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    Ok(ensure_table(client, request, name, EXPIRES_AT).await?)
}
