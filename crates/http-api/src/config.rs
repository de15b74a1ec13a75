//! The API's configuration from the environment, read once at start-up by
//! the Lambda and the local stack.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TINCAN_JWT_SECRET` | required (>= 32 bytes) | access-token signing secret |
//! | `TINCAN_ACCESS_TTL` | `900` | access-token lifetime, seconds |
//! | `TINCAN_REFRESH_TTL` | `2592000` | refresh-token lifetime, seconds |
//! | `TINCAN_TURN_SECRET` | required | TURN REST secret shared with media nodes |
//! | `TINCAN_TURN_URL` | `127.0.0.1:3478` | advertised TURN `host:port` |
//! | `TINCAN_TURN_TTL` | `3600` | TURN credential lifetime, seconds |
//! | `TINCAN_CORS_ORIGINS` | `*` | `*`, `none`, or comma-separated origins |
//! | `MONGODB_URI`, `TINCAN_MONGODB_DB`, `TINCAN_MONGODB_TIMEOUT_MS`, `TINCAN_DATA_DIR` | | see `tincan_accounts::config` |

use axum::http::HeaderValue;
use tincan_accounts::config::{env_u64, refresh_ttl_from_env, Backend};
use tincan_accounts::{AccountError, AccountService, PasswordParams, StoreError};
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
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: u64,
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
            refresh_ttl_secs: refresh_ttl_from_env()?,
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

    /// Opens the stores and builds the state.
    pub async fn into_state(self) -> Result<ApiState, ConfigError> {
        let stores = self.backend.open().await?;
        let tokens = TokenKeys::new(&self.jwt_secret, self.access_ttl_secs)?;
        let accounts = AccountService::new(
            stores,
            tokens,
            PasswordParams::default(),
            self.refresh_ttl_secs,
        )?;
        Ok(ApiState {
            accounts,
            turn: self.turn,
            cors: self.cors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
