//! Creating the media-nodes table.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::item::{EXPIRES_AT, FLEET, PK};
use super::{backend, build_error, FLEET_INDEX};
use crate::FleetError;

/// How long [`create_media_nodes_table`] waits for a new table to become
/// `ACTIVE`.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Creates the media-nodes table `name` if it does not exist, and makes sure
/// it has TTL on `expiresAt`.
///
/// Layout: partition key `nodeId` (S), on-demand billing, a global secondary
/// index [`FLEET_INDEX`] (partition `fleet` S, projection ALL; sparse, only
/// node items carry `fleet`). Waits (up to two minutes) for the table to be
/// `ACTIVE`, as real DynamoDB requires before TTL can be set.
pub async fn create_media_nodes_table(client: &Client, name: &str) -> Result<(), FleetError> {
    let key = |attribute: &str| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(KeyType::Hash)
            .build()
            .map_err(build_error)
    };
    let attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let by_fleet = GlobalSecondaryIndex::builder()
        .index_name(FLEET_INDEX)
        .key_schema(key(FLEET)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK)?)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(FLEET)?)
        .global_secondary_indexes(by_fleet)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table = name, "created media nodes table"),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            tracing::debug!(table = name, "media nodes table already exists");
        }
        Err(err) => return Err(backend("CreateTable", err)),
    }
    wait_active(client, name).await?;
    enable_ttl(client, name).await
}

async fn wait_active(client: &Client, name: &str) -> Result<(), FleetError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|err| backend("DescribeTable", err))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FleetError::Backend(
                format!("table {name} not ACTIVE after {}s", ACTIVE_WAIT.as_secs()).into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn enable_ttl(client: &Client, name: &str) -> Result<(), FleetError> {
    let described = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|err| backend("DescribeTimeToLive", err))?;
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
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|err| backend("UpdateTimeToLive", err))?;
    Ok(())
}
