//! Choosing and configuring the account stores from the environment, once at
//! start-up (the `http-api` Lambda and the local stack share this).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MONGODB_URI` | unset | if set, use MongoDB; otherwise the embedded store |
//! | `TINCAN_MONGODB_DB` | `tincan` | MongoDB database name |
//! | `TINCAN_MONGODB_TIMEOUT_MS` | `2000` | server selection / connect timeout |
//! | `TINCAN_DATA_DIR` | `./.tincan` | directory of the embedded store |
//! | `TINCAN_REFRESH_TTL` | `2592000` (30 days) | refresh-token lifetime, seconds |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::mongo::{MongoConfig, MongoStore, DEFAULT_DATABASE};
use crate::service::DEFAULT_REFRESH_TTL_SECS;
use crate::store::Stores;

/// Where accounts live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded on-disk store in this directory.
    Embedded(PathBuf),
    /// MongoDB.
    Mongo(MongoConfig),
}

/// A variable that is set but does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be {expected}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it must be.
    pub expected: &'static str,
}

/// A number from the environment, or `default` if unset.
pub fn env_u64(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| ConfigError {
            name,
            expected: "a whole number",
        }),
        _ => Ok(default),
    }
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Backend {
    /// `MONGODB_URI` set: MongoDB; otherwise the embedded store in
    /// `TINCAN_DATA_DIR`.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Some(uri) = env_string("MONGODB_URI") {
            let mut config = MongoConfig::new(uri);
            config.database =
                env_string("TINCAN_MONGODB_DB").unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
            let ms = env_u64("TINCAN_MONGODB_TIMEOUT_MS", 2000)?;
            config.timeout = Duration::from_millis(ms);
            config.op_timeout = Duration::from_millis(ms.saturating_mul(2).max(1000));
            return Ok(Backend::Mongo(config));
        }
        let dir = env_string("TINCAN_DATA_DIR").unwrap_or_else(|| "./.tincan".to_owned());
        Ok(Backend::Embedded(PathBuf::from(dir)))
    }

    /// Opens the stores.
    pub async fn open(&self) -> Result<Stores, StoreError> {
        match self {
            Backend::Embedded(dir) => Ok(Stores::from_backend(Arc::new(EmbeddedStore::open(dir)?))),
            Backend::Mongo(config) => Ok(Stores::from_backend(Arc::new(
                MongoStore::connect(config).await?,
            ))),
        }
    }
}

/// `TINCAN_REFRESH_TTL`, seconds.
pub fn refresh_ttl_from_env() -> Result<u64, ConfigError> {
    env_u64("TINCAN_REFRESH_TTL", DEFAULT_REFRESH_TTL_SECS)
}
