//! The Tincan HTTP API as an axum [`Router`]: the same handlers serve the
//! `http-api` Lambda (through `lambda_http`) and the local stack (merged into
//! its router).
//!
//! | route | reply |
//! |---|---|
//! | `POST /auth/register` `{username, password, displayName}` | 201 `{user}`; 409 `username-taken`; 400 `invalid-request` |
//! | `POST /auth/login` `{username, password}` | 200 `{accessToken, refreshToken, expiresIn, user}`; 401 `invalid-credentials` |
//! | `POST /auth/refresh` `{refreshToken}` | 200 new pair; 401 `invalid-credentials` (the old token stops working; reusing it revokes the session) |
//! | `POST /auth/logout` `{refreshToken}` | 204 (idempotent) |
//! | `GET /me` | `{user}` |
//! | `GET /me/preferences` | the preferences object |
//! | `PUT /me/preferences` (partial object) | the updated preferences object |
//! | `GET /me/calls?limit=N` (1-200, default 50) | `{calls: [...]}`, newest first |
//! | `GET /turn-credentials` | `{iceServers, ttl}` |
//!
//! Every error is `{"error": {"code", "message"}}`; routes under `/me` and
//! `/turn-credentials` answer 401 `unauthorized` without a valid bearer
//! token; a store that is down answers 503 `store-unavailable`.

mod config;
mod error;
mod extract;
mod handlers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use tincan_accounts::AccountService;
use tincan_turn_credentials::TurnSecret;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use crate::config::{ApiConfig, ConfigError};
pub use crate::error::ApiError;
pub use crate::extract::{ApiJson, Caller};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// How `GET /turn-credentials` mints credentials.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// Secret shared with the media nodes (`TINCAN_TURN_SECRET`).
    pub secret: TurnSecret,
    /// Advertised TURN `host:port` (`TINCAN_TURN_URL`).
    pub url: String,
    /// Credential lifetime in seconds (`TINCAN_TURN_TTL`).
    pub ttl_secs: u64,
}

/// Which browser origins may call the API (`TINCAN_CORS_ORIGINS`).
#[derive(Debug, Clone, Default)]
pub enum CorsOrigins {
    /// Any origin (`*`): safe here, since auth is a bearer header, not a cookie.
    #[default]
    Any,
    /// Only these origins.
    List(Vec<HeaderValue>),
    /// No CORS headers at all (same-origin only).
    None,
}

/// What every handler sees.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Accounts: the stores (`Arc<dyn ...>`) and the token keys.
    pub accounts: AccountService,
    /// TURN credential minting.
    pub turn: TurnSettings,
    /// CORS policy.
    pub cors: CorsOrigins,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
        CorsOrigins::None => return None,
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// The HTTP API's routes, with body limit and CORS applied to them only, so
/// the router can be merged into a bigger one.
pub fn router(state: ApiState) -> Router {
    let cors = cors_layer(&state.cors);
    let router = Router::new()
        .route("/auth/register", post(handlers::register))
        .route("/auth/login", post(handlers::login))
        .route("/auth/refresh", post(handlers::refresh))
        .route("/auth/logout", post(handlers::logout))
        .route("/me", get(handlers::me))
        .route(
            "/me/preferences",
            get(handlers::get_preferences).put(handlers::put_preferences),
        )
        .route("/me/calls", get(handlers::calls))
        .route("/turn-credentials", get(handlers::turn_credentials))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}
