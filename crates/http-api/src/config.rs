//! The API's configuration from the environment, read once at start-up by
//! the Lambda and the local stack.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TINCAN_JWT_SECRET` | required (>= 32 bytes) | access-token signing secret |
//! | `TINCAN_ACCESS_TTL` | `900` | access-token lifetime, seconds |
//! | `TINCAN_REFRESH_TTL` | `2592000` | refresh-token lifetime, seconds |
//! | `TINCAN_TURN_SECRET` | required | TURN REST secret shared with media nodes |
//! | `TINCAN_TURN_URL` | `127.0.0.1:3478` | advertised TURN `host:port`; with a fleet, the fallback when no node is alive |
//! | `TINCAN_MEDIA_NODES_TABLE` | unset | the fleet registry: TURN credentials name the caller's room's node, else the least-loaded |
//! | `TINCAN_CONNECTIONS_TABLE` | unset | the signaling connections table: a deleted account gets a deleted-user marker there, so its tokens open no socket |
//! | `TINCAN_THROTTLES_TABLE` | `tincan-throttles` | the DynamoDB table holding failed-login and registration counts, shared by every container; `memory`: per process, in memory |
//! | `DYNAMODB_ENDPOINT` | unset | DynamoDB endpoint override for the fleet registry, the connections and the throttles tables |
//! | `TINCAN_TURN_TTL` | `3600` | TURN credential lifetime, seconds |
//! | `TINCAN_CORS_ORIGINS` | `*` | `*`, `none`, or comma-separated origins |
//! | `MONGODB_URI`, `TINCAN_MONGODB_DB`, `TINCAN_MONGODB_TIMEOUT_MS`, `TINCAN_DATA_DIR` | | see `tincan_accounts::config` |
//! | `TINCAN_HASH_WORKERS`, `TINCAN_HASH_QUEUE`, `TINCAN_LOGIN_*`, `TINCAN_REGISTRATION*` | | see `tincan_accounts::config` |

use async_trait::async_trait;
use axum::http::HeaderValue;
use std::sync::Arc;

use tincan_accounts::config::{env_u64, Backend};
use tincan_accounts::{
    AccountError, AccountEvents, AccountOptions, AccountService, StoreError, Throttle,
};
use tincan_fleet::{DynamoMediaNodeStore, FleetIceServers};
use tincan_store::{DynamoConnectionStore, DynamoThrottleStore};

use crate::throttle::DynamoThrottles;
use tincan_token::{TokenKeys, DEFAULT_ACCESS_TTL_SECS};
use tincan_turn_credentials::{TurnSecret, DEFAULT_TTL_SECS};

use crate::{ApiState, CorsOrigins, TurnSettings};

/// Why the API could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// A variable does not parse.
    #[error(transparent)]
    Invalid(#[from] tincan_accounts::config::ConfigError),
    /// The JWT secret is too short.
    #[error("TINCAN_JWT_SECRET: {0}")]
    Token(#[from] tincan_token::TokenError),
    /// The stores could not be opened.
    #[error("account store: {0}")]
    Store(#[from] StoreError),
    /// The account service could not be made.
    #[error("accounts: {0}")]
    Accounts(#[from] AccountError),
}

/// Everything [`ApiState`] needs, from the environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// JWT secret.
    pub jwt_secret: Vec<u8>,
    /// Access-token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Hashing pool, limits and refresh-token lifetime.
    pub options: AccountOptions,
    /// `TINCAN_MEDIA_NODES_TABLE`: the media-node fleet registry.
    pub media_nodes_table: Option<String>,
    /// `TINCAN_CONNECTIONS_TABLE`: where deleted accounts are marked for the
    /// signaling side (`$connect` refuses them without asking MongoDB).
    pub connections_table: Option<String>,
    /// `TINCAN_THROTTLES_TABLE`: where failed logins and registrations are
    /// counted (`None`: in this process's memory).
    pub throttles_table: Option<String>,
    /// Where accounts live.
    pub backend: Backend,
    /// TURN settings.
    pub turn: TurnSettings,
    /// CORS policy.
    pub cors: CorsOrigins,
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// Parses `TINCAN_CORS_ORIGINS`.
pub(crate) fn parse_cors(value: &str) -> CorsOrigins {
    match value.trim() {
        "" | "*" => CorsOrigins::Any,
        "none" => CorsOrigins::None,
        list => CorsOrigins::List(
            list.split(',')
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
                .collect(),
        ),
    }
}

impl ApiConfig {
    /// Reads the variables in the table above.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_secret: required("TINCAN_JWT_SECRET")?.into_bytes(),
            access_ttl_secs: env_u64("TINCAN_ACCESS_TTL", DEFAULT_ACCESS_TTL_SECS)?,
            options: AccountOptions::from_env()?,
            media_nodes_table: std::env::var("TINCAN_MEDIA_NODES_TABLE")
                .ok()
                .filter(|v| !v.is_empty()),
            connections_table: std::env::var("TINCAN_CONNECTIONS_TABLE")
                .ok()
                .filter(|v| !v.is_empty()),
            throttles_table: throttles_table(std::env::var("TINCAN_THROTTLES_TABLE").ok()),
            backend: Backend::from_env()?,
            turn: TurnSettings {
                secret: TurnSecret::new(required("TINCAN_TURN_SECRET")?),
                url: std::env::var("TINCAN_TURN_URL")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "127.0.0.1:3478".to_owned()),
                ttl_secs: env_u64("TINCAN_TURN_TTL", DEFAULT_TTL_SECS)?,
            },
            cors: parse_cors(&std::env::var("TINCAN_CORS_ORIGINS").unwrap_or_default()),
        })
    }

    /// Opens the stores and builds the state, with DynamoDB (the deleted-user
    /// markers) through `dynamo`. Fails, naming the variable, if
    /// `TINCAN_JWT_SECRET` is shorter than 32 bytes.
    pub async fn into_state(
        self,
        dynamo: &aws_sdk_dynamodb::Client,
    ) -> Result<ApiState, ConfigError> {
        let tokens = TokenKeys::new(&self.jwt_secret, self.access_ttl_secs)?;
        let stores = self.backend.open().await?;
        let mut accounts = AccountService::with_options(stores, tokens, self.options)?;
        if let Some(table) = &self.connections_table {
            accounts = accounts.with_events(Arc::new(MarkDeletedUsers {
                connections: DynamoConnectionStore::new(dynamo.clone(), table.clone()),
                // Outlives every access token issued before the deletion
                // or revocation.
                ttl_secs: self.access_ttl_secs + DELETED_MARKER_SLACK_SECS,
            }));
        }
        if let Some(table) = &self.throttles_table {
            accounts = accounts.with_throttle(Throttle::new(Arc::new(DynamoThrottles(
                DynamoThrottleStore::new(dynamo.clone(), table.clone()),
            ))));
        }
        Ok(ApiState {
            accounts,
            turn: self.turn,
            cors: self.cors,
        })
    }

    /// The fleet `GET /turn-credentials` answers from, when
    /// `TINCAN_MEDIA_NODES_TABLE` is set: the registry through `dynamo`, with
    /// `TINCAN_TURN_URL` as the fallback.
    pub fn fleet(&self, dynamo: &aws_sdk_dynamodb::Client) -> Option<FleetIceServers> {
        let table = self.media_nodes_table.as_ref()?;
        Some(
            FleetIceServers::new(
                Arc::new(DynamoMediaNodeStore::new(dynamo.clone(), table.clone())),
                self.turn.secret.clone(),
                self.turn.ttl_secs,
            )
            .with_fallback(self.turn.url.clone()),
        )
    }
}

/// The default of `TINCAN_THROTTLES_TABLE`.
const DEFAULT_THROTTLES_TABLE: &str = "tincan-throttles";

/// `TINCAN_THROTTLES_TABLE`: unset or empty, the default table; `memory`,
/// none (counts in memory).
fn throttles_table(value: Option<String>) -> Option<String> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Some(DEFAULT_THROTTLES_TABLE.to_owned()),
        Some("memory") => None,
        Some(table) => Some(table.to_owned()),
    }
}

/// How long a deleted-user marker outlives the access-token lifetime
/// (clock skew between the functions).
const DELETED_MARKER_SLACK_SECS: u64 = 300;

/// Writes a deleted-user marker in the connections table when an account is
/// deleted, and a revoked-session marker when a login session is revoked
/// (a password change, reuse of a rotated refresh token): `$connect` checks
/// both in the same write that records the connection.
struct MarkDeletedUsers {
    connections: DynamoConnectionStore,
    ttl_secs: u64,
}

#[async_trait]
impl AccountEvents for MarkDeletedUsers {
    async fn account_deleted(&self, user_id: &str) {
        if let Err(err) = self
            .connections
            .mark_user_deleted(user_id, now_secs() + self.ttl_secs)
            .await
        {
            tracing::error!(%user_id, error = %err, "deleted user not marked; its tokens may open sockets until they expire");
        }
    }

    async fn sessions_revoked(&self, user_id: &str, session_ids: &[String]) {
        let until = now_secs() + self.ttl_secs;
        for sid in session_ids {
            if let Err(err) = self.connections.mark_session_revoked(sid, until).await {
                tracing::error!(%user_id, error = %err, "revoked session not marked; its tokens may open sockets until they expire");
            }
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_jwt_secret_fails_start_up_by_name() {
        let config = ApiConfig {
            jwt_secret: b"too-short".to_vec(),
            access_ttl_secs: 900,
            options: AccountOptions::default(),
            media_nodes_table: None,
            connections_table: None,
            throttles_table: None,
            backend: Backend::Embedded(std::env::temp_dir().join("never-opened")),
            turn: TurnSettings {
                secret: TurnSecret::new("t"),
                url: "127.0.0.1:3478".to_owned(),
                ttl_secs: 60,
            },
            cors: CorsOrigins::Any,
        };
        let err = config
            .into_state(&tincan_store::dynamo_client_on(
                &tincan_store::sdk_config_in_lambda(),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, ConfigError::Token(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "TINCAN_JWT_SECRET: the token secret must be at least 32 bytes"
        );
    }

    #[test]
    fn throttles_table_defaults_and_memory_turns_it_off() {
        assert_eq!(throttles_table(None).as_deref(), Some("tincan-throttles"));
        assert_eq!(
            throttles_table(Some(String::new())).as_deref(),
            Some("tincan-throttles")
        );
        assert_eq!(throttles_table(Some("memory".into())), None);
        assert_eq!(
            throttles_table(Some("prod-throttles".into())).as_deref(),
            Some("prod-throttles")
        );
    }

    #[test]
    fn cors_origins_parse() {
        assert!(matches!(parse_cors(""), CorsOrigins::Any));
        assert!(matches!(parse_cors("none"), CorsOrigins::None));
        let CorsOrigins::List(l) = parse_cors("http://a.test, https://b.test") else {
            panic!("list expected");
        };
        assert_eq!(l.len(), 2);
    }
}
