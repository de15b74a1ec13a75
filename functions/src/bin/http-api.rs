//! The `http-api` Lambda: the HTTP API (register, login, refresh, logout, me,
//! preferences, calls, TURN credentials) behind an API Gateway HTTP API.
//!
//! Configuration (read once): `TINCAN_JWT_SECRET`, `TINCAN_ACCESS_TTL`,
//! `TINCAN_REFRESH_TTL`, `MONGODB_URI`, `TINCAN_MONGODB_DB`,
//! `TINCAN_MONGODB_TIMEOUT_MS`, `TINCAN_TURN_SECRET`, `TINCAN_TURN_URL`,
//! `TINCAN_TURN_TTL`, `TINCAN_MEDIA_NODES_TABLE`, `TINCAN_CORS_ORIGINS`,
//! `TINCAN_HASH_WORKERS`, `TINCAN_HASH_QUEUE`, `TINCAN_LOGIN_*`,
//! `TINCAN_REGISTRATION*`, `TINCAN_THROTTLES_TABLE`; see `tincan_http_api::ApiConfig`. `MONGODB_URI`
//! is required: this build has no embedded store (a store on a container's
//! disk would be one store per container).
//!
//! A container serves one request at a time, so it hashes one password at a
//! time; the failed-login and registration counters live in the throttles
//! table (`TINCAN_THROTTLES_TABLE`), shared by every container.

use anyhow::Context as _;
use tincan_http_api::ApiConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tincan_functions::init_tracing();
    let config = ApiConfig::from_env().context("http-api configuration")?;
    // One DynamoDB client for the fleet registry, the deleted-user markers and
    // the throttles.
    let dynamo = tincan_store::dynamo_client_on(&tincan_store::sdk_config_in_lambda());
    let fleet = config.fleet(&dynamo);
    let state = config
        .into_state(&dynamo)
        .await
        .context("http-api start-up")?;
    lambda_http::run(tincan_http_api::lambda::router(state, fleet)).await
}
