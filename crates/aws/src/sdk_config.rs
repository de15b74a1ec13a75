//! AWS SDK configuration for every client (the stores, the Management
//! API): region, timeouts, retries, and the DynamoDB endpoint override for
//! moto or DynamoDB Local
//! (`DYNAMODB_ENDPOINT`, which the binaries read with their other settings,
//! `tincan_settings::DynamoSettings`, and pass in). The AWS SDK's own
//! variables (`AWS_REGION`, `AWS_ACCESS_KEY_ID` and its companions, as
//! Lambda sets them) are the SDK's, read the SDK's way.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};

use crate::sdk_http::https_client;

/// The region when neither the environment nor a profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Short timeouts and few retries: a signaling call that waits on a down
/// store longer than a few seconds is worse than one that fails.
/// Connect 1 s, each attempt 2 s, the whole call 5 s, 3 attempts.
pub fn store_timeouts() -> (TimeoutConfig, RetryConfig) {
    (
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(Duration::from_secs(2))
            .operation_timeout(Duration::from_secs(5))
            .build(),
        RetryConfig::standard().with_max_attempts(3),
    )
}

/// The SDK configuration from the usual AWS environment (`AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, profiles, the Lambda role, ...), region
/// [`DEFAULT_REGION`] if none is set, with [`store_timeouts`].
///
/// With a DynamoDB endpoint override (`dynamodb_endpoint`: an emulator on a
/// laptop) and no `AWS_ACCESS_KEY_ID`, it signs with dummy credentials
/// (emulators, and the local stack's Management API, accept any), so a
/// laptop needs no AWS account or profile. In AWS, there is no override.
pub async fn sdk_config_from_env(dynamodb_endpoint: Option<&str>) -> SdkConfig {
    let (timeouts, retries) = store_timeouts();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await;
    // The loader's own region chain (environment, profile, IMDS) runs with
    // the HTTP client above. A chain built apart from it
    // (`RegionProviderChain::default_provider()`) would build its IMDS
    // client with none, which panics now that the SDK has no default one.
    let sdk = if sdk.region().is_some() {
        sdk
    } else {
        sdk.into_builder()
            .region(Region::new(DEFAULT_REGION))
            .build()
    };
    if signs_for_an_emulator(dynamodb_endpoint) {
        let mut sdk = sdk.into_builder();
        sdk.set_credentials_provider(Some(dummy_credentials()));
        return sdk.build();
    }
    sdk
}

/// The SDK configuration inside a Lambda function, built from the
/// environment Lambda sets rather than by `aws_config`'s loader: region from
/// `AWS_REGION` ([`DEFAULT_REGION`] if unset), the execution role's
/// credentials from the standard environment variables (`AWS_ACCESS_KEY_ID`
/// and its companions; dummy ones under a `dynamodb_endpoint` override
/// without them, as [`sdk_config_from_env`] does), with [`store_timeouts`].
///
/// Why not the loader: it links its whole default chain (profiles, SSO, STS
/// web identity, ECS, IMDS) into a binary that can only ever take the
/// first link, and reads profile files at every cold start. A developer
/// running the functions against real AWS outside Lambda exports
/// credentials (`aws configure export-credentials --format env`).
pub fn sdk_config_in_lambda(dynamodb_endpoint: Option<&str>) -> SdkConfig {
    let (timeouts, retries) = store_timeouts();
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let credentials = if signs_for_an_emulator(dynamodb_endpoint) {
        dummy_credentials()
    } else {
        SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new())
    };
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .identity_cache(IdentityCache::lazy().build())
        .http_client(https_client())
        .timeout_config(timeouts)
        .retry_config(retries)
        .build()
}

/// An endpoint override (an emulator) and no `AWS_ACCESS_KEY_ID` (the
/// SDK's variable): sign with dummy credentials, which emulators accept.
fn signs_for_an_emulator(dynamodb_endpoint: Option<&str>) -> bool {
    dynamodb_endpoint.is_some_and(|e| !e.trim().is_empty())
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
}

/// A DynamoDB client on `sdk`, sent to `endpoint` instead of AWS if given.
pub fn dynamo_client(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// A DynamoDB client from the environment: [`sdk_config_from_env`], sent to
/// `dynamodb_endpoint` if given.
pub async fn dynamo_client_from_env(dynamodb_endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let endpoint = dynamodb_endpoint.filter(|e| !e.trim().is_empty());
    let sdk = sdk_config_from_env(endpoint).await;
    if let Some(endpoint) = endpoint {
        tracing::info!(endpoint = %endpoint, "DynamoDB endpoint override");
    }
    dynamo_client(&sdk, endpoint)
}

/// Credentials for emulators, which check nothing.
pub(crate) fn dummy_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "tincan-dummy"))
}
