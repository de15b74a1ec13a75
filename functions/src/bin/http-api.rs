//! The `http-api` Lambda: the HTTP API (register, login, refresh, logout, me,
//! preferences, calls, TURN credentials) behind an API Gateway HTTP API.
//!
//! Configuration (read once from the environment; `http-api --help` lists
//! it): [`HttpApiSettings`]. `MONGODB_URI` is required: this build has no
//! embedded store (a store on a container's disk would be one store per
//! container).
//!
//! A container serves one request at a time, so it hashes one password at a
//! time; the failed-login and registration counters live in the throttles
//! table (`TINCAN_THROTTLES_TABLE`), shared by every container.

use anyhow::Context as _;
use tincan_functions::HttpApiSettings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let settings: HttpApiSettings = tincan_settings::from_env_or_exit("http-api");
    tincan_functions::init_tracing(&settings.log);
    let endpoint = settings.api.dynamo.dynamodb_endpoint.clone();
    let config = settings
        .api
        .into_config()
        .context("http-api configuration")?;
    // One DynamoDB client for the fleet registry, the deleted-user markers and
    // the throttles.
    let sdk = tincan_store::sdk_config_in_lambda(endpoint.as_deref());
    let dynamo = tincan_store::dynamo_client(&sdk, endpoint.as_deref());
    let fleet = config.fleet(&dynamo);
    let state = config
        .into_state(&dynamo)
        .await
        .context("http-api start-up")?;
    lambda_http::run(tincan_http_api::lambda::router(state, fleet)).await
}
