//! Creating the connections table.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use tincan_aws::ensure_table;

use super::build_error;
use super::item::{CONNECTED_AT, EXPIRES_AT, PK, ROOM, ROOM_INDEX};
use crate::error::StoreError;

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
    Ok(ensure_table(client, request, name, EXPIRES_AT).await?)
}
