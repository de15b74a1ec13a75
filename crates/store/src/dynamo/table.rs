//! Creating the connections table.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::item::{CONNECTED_AT, EXPIRES_AT, PK, ROOM, ROOM_INDEX};
use super::{build_error, unavailable};
use crate::error::StoreError;

/// How long [`create_table`] waits for a new table to become `ACTIVE`.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Creates the connections table `name` if it does not exist, and makes sure
/// it has TTL on `expiresAt`.
///
/// Layout: partition key `pk` (S), on-demand billing, a global secondary index
/// [`ROOM_INDEX`] (partition `room` S, sort `connectedAt` N, projection ALL;
/// sparse, since connections in no room have no `room`). Waits (up to two
/// minutes) for the table to be `ACTIVE`, as real DynamoDB requires before
/// TTL can be set; emulators are `ACTIVE` at once.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let key = |attribute: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let attribute = |attribute: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(kind)
            .build()
            .map_err(build_error)
    };
    let by_room = GlobalSecondaryIndex::builder()
        .index_name(ROOM_INDEX)
        .key_schema(key(ROOM, KeyType::Hash)?)
        .key_schema(key(CONNECTED_AT, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    let request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .attribute_definitions(attribute(PK, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(ROOM, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(CONNECTED_AT, ScalarAttributeType::N)?)
        .global_secondary_indexes(by_room);
    ensure_table(client, request, name, EXPIRES_AT).await
}

/// Sends `request` (a CreateTable for `name`) unless the table exists, waits
/// until it is `ACTIVE` and makes sure TTL is on `ttl_attribute`. Shared by
/// every table Tincan creates for itself (here and in the fleet registry).
pub async fn ensure_table(
    client: &Client,
    request: CreateTableFluentBuilder,
    name: &str,
    ttl_attribute: &str,
) -> Result<(), StoreError> {
    match request.send().await {
        Ok(_) => tracing::info!(table = name, "created table"),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            tracing::debug!(table = name, "table already exists");
        }
        Err(err) => return Err(unavailable("CreateTable", err)),
    }
    wait_active(client, name).await?;
    enable_ttl(client, name, ttl_attribute).await
}

async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|err| unavailable("DescribeTable", err))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table {name} not ACTIVE after {}s",
                ACTIVE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn enable_ttl(client: &Client, name: &str, ttl_attribute: &str) -> Result<(), StoreError> {
    let described = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|err| unavailable("DescribeTimeToLive", err))?;
    let status = described
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ttl_attribute)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|err| unavailable("UpdateTimeToLive", err))?;
    Ok(())
}
