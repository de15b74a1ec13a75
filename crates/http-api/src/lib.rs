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
//! | `POST /me/password` `{currentPassword, newPassword}` | 204; 401 `invalid-credentials` (wrong current); 400 `invalid-request` (weak new); the caller's other sessions are revoked |
//! | `DELETE /me` `{password}` | 204: user, preferences, call history gone, sessions revoked; 401 `invalid-credentials` |
//! | `GET /turn-credentials[?room=R]` | `{iceServers, ttl}`: R's media node, else the least-loaded, else `TINCAN_TURN_URL` |
//!
//! Every error is `{"error": {"code", "message"}}`; routes under `/me` and
//! `/turn-credentials` answer 401 `unauthorized` without a valid bearer
//! token or when its user no longer exists; a store that is down answers
//! 503 `store-unavailable`; too many failed logins or registrations answer
//! 429 `rate-limited`, a full password-hashing queue 503 `busy`, both with
//! `Retry-After` (seconds).
//!
//! The client address (for the per-address limits) comes from axum's
//! `ConnectInfo<SocketAddr>` when served with
//! `into_make_service_with_connect_info` (the local stack), or from a
//! [`ClientAddr`] request extension (the Lambda: see `lambda::router`, from
//! API Gateway's `sourceIp`). `X-Forwarded-For` is never trusted.

mod config;
mod error;
mod extract;
mod handlers;
#[cfg(feature = "lambda")]
pub mod lambda;
mod throttle;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tincan_accounts::AccountService;
use tincan_fleet::FleetIceServers;
use tincan_turn_credentials::TurnSecret;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use crate::config::{ApiConfig, ApiSettings, ConfigError};
pub use crate::error::ApiError;
pub use crate::extract::{ApiJson, Caller, ClientAddr, ClientIp, RelayCaller};
pub use crate::throttle::DynamoThrottles;

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
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            // A page on another origin reads how long to wait after a 429.
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Where `GET /turn-credentials` finds its TURN server: the media-node
/// fleet when one is configured (see [`router_with_fleet`]), else
/// [`TurnSettings::url`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TurnFleet(pub(crate) Option<Arc<FleetIceServers>>);

/// The HTTP API's routes, with body limit and CORS applied to them only, so
/// the router can be merged into a bigger one. TURN credentials name
/// [`TurnSettings::url`].
pub fn router(state: ApiState) -> Router {
    router_with_fleet(state, None)
}

/// As [`router`], with `GET /turn-credentials` answering from the media-node
/// `fleet` when given (give it [`FleetIceServers::with_fallback`] of
/// `TINCAN_TURN_URL`, so clients get a relay even with no node alive).
pub fn router_with_fleet(state: ApiState, fleet: Option<FleetIceServers>) -> Router {
    let cors = cors_layer(&state.cors);
    let router = Router::new()
        .route("/auth/register", post(handlers::register))
        .route("/auth/login", post(handlers::login))
        .route("/auth/refresh", post(handlers::refresh))
        .route("/auth/logout", post(handlers::logout))
        .route("/me", get(handlers::me).delete(handlers::delete_me))
        .route("/me/password", post(handlers::change_password))
        .route(
            "/me/preferences",
            get(handlers::get_preferences).put(handlers::put_preferences),
        )
        .route("/me/calls", get(handlers::calls))
        .route("/turn-credentials", get(handlers::turn_credentials))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(TurnFleet(fleet.map(Arc::new))))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}
