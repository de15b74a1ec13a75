//! Creating the media-nodes table.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use tincan_aws::ensure_table;

use super::item::{EXPIRES_AT, FLEET, PK};
use super::{build_error, FLEET_INDEX};
use crate::FleetError;

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
    let request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK)?)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(FLEET)?)
        .global_secondary_indexes(by_fleet);
    Ok(ensure_table(client, request, name, EXPIRES_AT).await?)
}
