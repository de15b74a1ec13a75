//! Choosing and configuring the account stores from the environment, once at
//! start-up (the `http-api` Lambda and the local stack share this).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MONGODB_URI` | unset | if set, use MongoDB; otherwise the embedded store (required in builds without the `embedded` feature: the Lambdas) |
//! | `TINCAN_MONGODB_DB` | `tincan` | MongoDB database name |
//! | `TINCAN_MONGODB_TIMEOUT_MS` | `2000` | server selection / connect timeout |
//! | `TINCAN_MONGODB_HEARTBEAT_MS` | `10000` | background check of each server (at least 500) |
//! | `TINCAN_MONGODB_MAX_POOL` | `10` | connections per server, per process (min pool 0, idle ones closed after 60 s) |
//! | `TINCAN_DATA_DIR` | `./.tincan` | directory of the embedded store |
//! | `TINCAN_REFRESH_TTL` | `2592000` (30 days) | refresh-token lifetime, seconds |
//! | `TINCAN_HASH_WORKERS` | number of cores | password-hashing threads (19 MiB each) |
//! | `TINCAN_HASH_QUEUE` | 16 per worker | hashes that may wait; beyond, 503 `busy` |
//! | `TINCAN_LOGIN_FAILURES_PER_USER_ADDR` | `10` | failed logins per username from one client address per window (0: off) |
//! | `TINCAN_LOGIN_FAILURES_PER_USER` | `100` | failed logins per username from all addresses per window (0: off) |
//! | `TINCAN_LOGIN_FAILURES_PER_ADDR` | `50` | failed logins per client address per window (0: off) |
//! | `TINCAN_LOGIN_FAILURE_WINDOW_SECS` | `900` | the failed-login window |
//! | `TINCAN_REGISTRATIONS_PER_ADDR` | `20` | registrations per client address per window (0: off) |
//! | `TINCAN_REGISTRATION_WINDOW_SECS` | `3600` | the registration window |

#[cfg(feature = "embedded")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "embedded")]
use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::mongo::{MongoConfig, MongoStore, DEFAULT_DATABASE};
use crate::password::{HashPoolConfig, DEFAULT_QUEUE_PER_WORKER};
use crate::rate_limit::{AuthLimits, Quota};
use crate::service::{AccountOptions, DEFAULT_REFRESH_TTL_SECS};
use crate::store::Stores;

/// Where accounts live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded on-disk store in this directory.
    #[cfg(feature = "embedded")]
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
    /// `TINCAN_DATA_DIR`, or, in a build without it, an error that says
    /// `MONGODB_URI` is required.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Some(config) = Self::mongo_from_env()? {
            return Ok(Backend::Mongo(config));
        }
        #[cfg(feature = "embedded")]
        {
            let dir = env_string("TINCAN_DATA_DIR").unwrap_or_else(|| "./.tincan".to_owned());
            Ok(Backend::Embedded(PathBuf::from(dir)))
        }
        #[cfg(not(feature = "embedded"))]
        Err(ConfigError {
            name: "MONGODB_URI",
            expected: "set (this build has no embedded store)",
        })
    }

    /// MongoDB's settings if `MONGODB_URI` is set, `None` if it is not.
    pub fn mongo_from_env() -> Result<Option<MongoConfig>, ConfigError> {
        if let Some(uri) = env_string("MONGODB_URI") {
            let mut config = MongoConfig::new(uri);
            config.database =
                env_string("TINCAN_MONGODB_DB").unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
            let ms = env_u64("TINCAN_MONGODB_TIMEOUT_MS", 2000)?;
            config.timeout = Duration::from_millis(ms);
            config.op_timeout = Duration::from_millis(ms.saturating_mul(2).max(1000));
            let heartbeat_ms = env_u64(
                "TINCAN_MONGODB_HEARTBEAT_MS",
                crate::mongo::DEFAULT_HEARTBEAT.as_millis() as u64,
            )?;
            // The driver refuses anything under 500 ms.
            config.heartbeat = Duration::from_millis(heartbeat_ms.max(500));
            let pool = env_u64(
                "TINCAN_MONGODB_MAX_POOL",
                u64::from(crate::mongo::DEFAULT_MAX_POOL_SIZE),
            )?;
            config.max_pool_size = u32::try_from(pool.clamp(1, 1000)).unwrap_or(1);
            return Ok(Some(config));
        }
        Ok(None)
    }

    /// Opens the stores.
    pub async fn open(&self) -> Result<Stores, StoreError> {
        match self {
            #[cfg(feature = "embedded")]
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

fn env_u32(name: &'static str, default: u32) -> Result<u32, ConfigError> {
    u32::try_from(env_u64(name, u64::from(default))?).map_err(|_| ConfigError {
        name,
        expected: "a whole number below 2^32",
    })
}

impl HashPoolConfig {
    /// `TINCAN_HASH_WORKERS` and `TINCAN_HASH_QUEUE` over the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let workers = env_u64("TINCAN_HASH_WORKERS", defaults.workers as u64)?;
        if workers == 0 || workers > 1024 {
            return Err(ConfigError {
                name: "TINCAN_HASH_WORKERS",
                expected: "1 to 1024",
            });
        }
        let workers = workers as usize;
        let queue = env_u64(
            "TINCAN_HASH_QUEUE",
            (workers * DEFAULT_QUEUE_PER_WORKER) as u64,
        )?;
        Ok(Self {
            workers,
            queue: usize::try_from(queue).unwrap_or(usize::MAX),
        })
    }
}

impl AuthLimits {
    /// The `TINCAN_LOGIN_*` and `TINCAN_REGISTRATION*` variables over the
    /// defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let login_window = env_u64(
            "TINCAN_LOGIN_FAILURE_WINDOW_SECS",
            d.failed_logins_per_user_addr.window_secs,
        )?;
        let register_window = env_u64(
            "TINCAN_REGISTRATION_WINDOW_SECS",
            d.registrations_per_addr.window_secs,
        )?;
        Ok(Self {
            failed_logins_per_user_addr: Quota::new(
                env_u32(
                    "TINCAN_LOGIN_FAILURES_PER_USER_ADDR",
                    d.failed_logins_per_user_addr.n,
                )?,
                login_window,
            ),
            failed_logins_per_user: Quota::new(
                env_u32("TINCAN_LOGIN_FAILURES_PER_USER", d.failed_logins_per_user.n)?,
                login_window,
            ),
            failed_logins_per_addr: Quota::new(
                env_u32("TINCAN_LOGIN_FAILURES_PER_ADDR", d.failed_logins_per_addr.n)?,
                login_window,
            ),
            registrations_per_addr: Quota::new(
                env_u32("TINCAN_REGISTRATIONS_PER_ADDR", d.registrations_per_addr.n)?,
                register_window,
            ),
            max_keys: d.max_keys,
        })
    }
}

impl AccountOptions {
    /// Everything from the environment: `TINCAN_REFRESH_TTL`, the hashing
    /// pool and the limits (table above); argon2id costs stay the default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            refresh_ttl_secs: refresh_ttl_from_env()?,
            hash_pool: HashPoolConfig::from_env()?,
            limits: AuthLimits::from_env()?,
            ..Self::default()
        })
    }
}
