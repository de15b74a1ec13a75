//! The API's settings, read once at start-up by the `http-api` Lambda
//! ([`ApiSettings`], flattened into its settings) and turned into an
//! [`ApiConfig`]; the local stack builds an [`ApiState`] of its own. Every
//! variable, with its default, is in the README's configuration table of
//! the `http-api` Lambda, and in `http-api --help`.

use async_trait::async_trait;
use axum::http::HeaderValue;
use std::sync::Arc;

use tincan_accounts::config::{AccountSettings, Backend, MongoSettings};
use tincan_accounts::{
    AccountError, AccountEvents, AccountOptions, AccountService, StoreError, Throttle,
};
use tincan_fleet::{DynamoMediaNodeStore, FleetIceServers};
use tincan_settings::{DynamoSettings, Secret};
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

/// The default of `TINCAN_THROTTLES_TABLE`.
const DEFAULT_THROTTLES_TABLE: &str = "tincan-throttles";

/// The default of `TINCAN_TURN_URL`.
const DEFAULT_TURN_URL: &str = "127.0.0.1:3478";

/// The HTTP API's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiSettings {
    /// Signs access tokens (at least 32 bytes; shorter, start-up fails
    /// naming the variable).
    #[arg(long, env = "TINCAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Secret,
    /// Access-token lifetime, seconds.
    #[arg(long, env = "TINCAN_ACCESS_TTL", default_value_t = DEFAULT_ACCESS_TTL_SECS)]
    pub access_ttl: u64,
    /// TURN REST API secret shared with the media nodes.
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Secret,
    /// TURN `host:port` for `GET /turn-credentials`; with a fleet, the
    /// fallback when no node is alive.
    #[arg(long, env = "TINCAN_TURN_URL", default_value = DEFAULT_TURN_URL)]
    pub turn_url: String,
    /// TURN credential lifetime, seconds.
    #[arg(long, env = "TINCAN_TURN_TTL", default_value_t = DEFAULT_TTL_SECS)]
    pub turn_ttl: u64,
    /// The media-node fleet registry (read only): TURN credentials name the
    /// caller's room's node, else the least-loaded live one.
    #[arg(long, env = "TINCAN_MEDIA_NODES_TABLE")]
    pub media_nodes_table: Option<String>,
    /// The WebSocket Lambdas' table: a deleted account and a revoked login
    /// session get a marker there, which `$connect` checks; unset, none.
    #[arg(long, env = "TINCAN_CONNECTIONS_TABLE")]
    pub connections_table: Option<String>,
    /// DynamoDB table of the failed-login and registration counts, shared
    /// by every container; `memory`: counted in each container's memory.
    #[arg(long, env = "TINCAN_THROTTLES_TABLE", default_value = DEFAULT_THROTTLES_TABLE)]
    pub throttles_table: String,
    /// Other origins whose pages may call the API: `*`, `none`, or a
    /// comma-separated list of origins.
    #[arg(long, env = "TINCAN_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,
    #[command(flatten)]
    pub dynamo: DynamoSettings,
    #[command(flatten)]
    pub mongo: MongoSettings,
    #[command(flatten)]
    pub accounts: AccountSettings,
}

/// Everything [`ApiState`] needs. Its `Debug` leaves the JWT secret out.
#[derive(Clone)]
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

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("options", &self.options)
            .field("media_nodes_table", &self.media_nodes_table)
            .field("connections_table", &self.connections_table)
            .field("throttles_table", &self.throttles_table)
            .field("backend", &self.backend)
            .field("turn", &self.turn)
            .field("cors", &self.cors)
            .finish_non_exhaustive()
    }
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

impl ApiSettings {
    /// The configuration; MongoDB is required (the Lambda build has no
    /// embedded store).
    pub fn into_config(self) -> Result<ApiConfig, ConfigError> {
        let mongo = self
            .mongo
            .config()
            .ok_or(ConfigError::Missing("MONGODB_URI"))?;
        Ok(ApiConfig {
            jwt_secret: self.jwt_secret.expose().as_bytes().to_vec(),
            access_ttl_secs: self.access_ttl,
            options: self.accounts.options(),
            media_nodes_table: self.media_nodes_table,
            connections_table: self.connections_table,
            throttles_table: throttles_table(&self.throttles_table),
            backend: Backend::Mongo(mongo),
            turn: TurnSettings {
                secret: TurnSecret::new(self.turn_secret.expose()),
                url: self.turn_url,
                ttl_secs: self.turn_ttl,
            },
            cors: parse_cors(&self.cors_origins),
        })
    }
}

impl ApiConfig {
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

/// `TINCAN_THROTTLES_TABLE`: `memory`, none (counts in memory).
fn throttles_table(value: &str) -> Option<String> {
    match value.trim() {
        "memory" => None,
        table => Some(table.to_owned()),
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
            .into_state(&tincan_store::dynamo_client(
                &tincan_store::sdk_config_in_lambda(None),
                None,
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
        let settings = |env: &[&str]| {
            use clap::Parser as _;
            #[derive(clap::Parser)]
            struct Api {
                #[command(flatten)]
                api: ApiSettings,
            }
            let args = ["http-api", "--jwt-secret=j", "--turn-secret=t"];
            Api::try_parse_from(args.iter().chain(env)).unwrap().api
        };
        assert_eq!(settings(&[]).throttles_table, "tincan-throttles");
        assert_eq!(throttles_table("memory"), None);
        assert_eq!(
            throttles_table("prod-throttles").as_deref(),
            Some("prod-throttles")
        );
        let err = settings(&[]).into_config().unwrap_err();
        assert_eq!(err.to_string(), "MONGODB_URI must be set");
        let config = settings(&["--mongodb-uri=mongodb://127.0.0.1:1"])
            .into_config()
            .unwrap();
        assert!(matches!(config.cors, CorsOrigins::Any));
        assert_eq!(config.turn.url, "127.0.0.1:3478");
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
