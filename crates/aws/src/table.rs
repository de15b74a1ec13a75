//! Creating a table Tincan owns: create it unless it exists, wait until it
//! is `ACTIVE`, turn TTL on.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{TableStatus, TimeToLiveSpecification, TimeToLiveStatus};
use aws_sdk_dynamodb::Client;

use crate::error::DynamoError;

/// How long [`ensure_table`] waits for a new table to become `ACTIVE`.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Sends `request` (a CreateTable for `name`) unless the table exists, waits
/// (up to two minutes) until it is `ACTIVE`, as real DynamoDB requires
/// before TTL can be set (emulators are `ACTIVE` at once), and makes sure
/// TTL is on `ttl_attribute`. Shared by every table Tincan creates for
/// itself (connections, throttles, media nodes).
pub async fn ensure_table(
    client: &Client,
    request: CreateTableFluentBuilder,
    name: &str,
    ttl_attribute: &str,
) -> Result<(), DynamoError> {
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
        Err(err) => return Err(DynamoError::call("CreateTable", err)),
    }
    wait_active(client, name).await?;
    enable_ttl(client, name, ttl_attribute).await
}

async fn wait_active(client: &Client, name: &str) -> Result<(), DynamoError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|err| DynamoError::call("DescribeTable", err))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DynamoError::NotActive {
                table: name.to_owned(),
                secs: ACTIVE_WAIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn enable_ttl(client: &Client, name: &str, ttl_attribute: &str) -> Result<(), DynamoError> {
    let described = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|err| DynamoError::call("DescribeTimeToLive", err))?;
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
                .build()?,
        )
        .send()
        .await
        .map_err(|err| DynamoError::call("UpdateTimeToLive", err))?;
    Ok(())
}
