//! The account settings the binaries share (`tincan-local` and the
//! `http-api` Lambda; the WebSocket Lambdas take [`MongoSettings`] alone, for
//! call history), as `clap` groups each binary flattens into its own
//! settings: every setting a flag and an environment variable, its default
//! written here once. The README's configuration tables list them.

#[cfg(feature = "embedded")]
use std::path::Path;
#[cfg(feature = "embedded")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tincan_settings::Secret;

#[cfg(feature = "embedded")]
use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::mongo::{
    MongoConfig, MongoStore, DEFAULT_DATABASE, DEFAULT_HEARTBEAT, DEFAULT_MAX_POOL_SIZE,
    DEFAULT_TIMEOUT,
};
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

impl Backend {
    /// MongoDB if `MONGODB_URI` is set, else the embedded store in
    /// `data_dir`.
    #[cfg(feature = "embedded")]
    pub fn mongo_or_embedded(mongo: &MongoSettings, data_dir: &Path) -> Self {
        match mongo.config() {
            Some(config) => Backend::Mongo(config),
            None => Backend::Embedded(data_dir.to_path_buf()),
        }
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

/// How to reach MongoDB, if at all.
#[derive(Debug, Clone, clap::Args)]
pub struct MongoSettings {
    /// MongoDB connection string; unset, no MongoDB. It may hold
    /// credentials, so it is never printed.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<Secret>,
    /// MongoDB database name.
    #[arg(long, env = "TINCAN_MONGODB_DB", default_value = DEFAULT_DATABASE)]
    pub mongodb_db: String,
    /// Server-selection and connect timeout, ms; each call is capped at
    /// twice this.
    #[arg(long, env = "TINCAN_MONGODB_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT.as_millis() as u64)]
    pub mongodb_timeout_ms: u64,
    /// How often the driver checks each server in the background, ms (at
    /// least 500).
    #[arg(long, env = "TINCAN_MONGODB_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT.as_millis() as u64)]
    pub mongodb_heartbeat_ms: u64,
    /// MongoDB connections per server, per process (1-1000; none opened
    /// ahead of need, idle ones closed after 60 s).
    #[arg(long, env = "TINCAN_MONGODB_MAX_POOL", default_value_t = DEFAULT_MAX_POOL_SIZE)]
    pub mongodb_max_pool: u32,
}

impl MongoSettings {
    /// MongoDB's settings if `MONGODB_URI` is set, `None` if it is not.
    pub fn config(&self) -> Option<MongoConfig> {
        let uri = self.mongodb_uri.as_ref()?;
        let mut config = MongoConfig::new(uri.expose());
        config.database = self.mongodb_db.clone();
        let ms = self.mongodb_timeout_ms;
        config.timeout = Duration::from_millis(ms);
        config.op_timeout = Duration::from_millis(ms.saturating_mul(2).max(1000));
        // The driver refuses anything under 500 ms.
        config.heartbeat = Duration::from_millis(self.mongodb_heartbeat_ms.max(500));
        config.max_pool_size = self.mongodb_max_pool.clamp(1, 1000);
        Some(config)
    }
}

/// How the account service hashes passwords and limits logins and
/// registrations; argon2id's costs are not settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AccountSettings {
    /// Refresh-token lifetime, seconds.
    #[arg(long, env = "TINCAN_REFRESH_TTL", default_value_t = DEFAULT_REFRESH_TTL_SECS)]
    pub refresh_ttl: u64,
    /// Password-hashing threads, 19 MiB of argon2 memory each, reused
    /// (1-1024; default: the number of cores).
    #[arg(long, env = "TINCAN_HASH_WORKERS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub hash_workers: Option<u64>,
    /// Hashes that may wait for a worker; beyond, 503 `busy` (default: 16
    /// per worker).
    #[arg(long, env = "TINCAN_HASH_QUEUE")]
    pub hash_queue: Option<usize>,
    /// Failed logins per username from one client address per window (0:
    /// off).
    #[arg(long, env = "TINCAN_LOGIN_FAILURES_PER_USER_ADDR", default_value_t = AuthLimits::default().failed_logins_per_user_addr.n)]
    pub login_failures_per_user_addr: u32,
    /// Failed logins per username from all addresses per window (0: off).
    #[arg(long, env = "TINCAN_LOGIN_FAILURES_PER_USER", default_value_t = AuthLimits::default().failed_logins_per_user.n)]
    pub login_failures_per_user: u32,
    /// Failed logins per client address per window (0: off).
    #[arg(long, env = "TINCAN_LOGIN_FAILURES_PER_ADDR", default_value_t = AuthLimits::default().failed_logins_per_addr.n)]
    pub login_failures_per_addr: u32,
    /// The failed-login window, seconds.
    #[arg(long, env = "TINCAN_LOGIN_FAILURE_WINDOW_SECS", default_value_t = AuthLimits::default().failed_logins_per_user_addr.window_secs)]
    pub login_failure_window_secs: u64,
    /// Registrations per client address per window (0: off).
    #[arg(long, env = "TINCAN_REGISTRATIONS_PER_ADDR", default_value_t = AuthLimits::default().registrations_per_addr.n)]
    pub registrations_per_addr: u32,
    /// The registration window, seconds.
    #[arg(long, env = "TINCAN_REGISTRATION_WINDOW_SECS", default_value_t = AuthLimits::default().registrations_per_addr.window_secs)]
    pub registration_window_secs: u64,
}

impl AccountSettings {
    /// The service's options.
    pub fn options(&self) -> AccountOptions {
        let d = AuthLimits::default();
        let hash_pool = match self.hash_workers {
            None => HashPoolConfig {
                queue: self.hash_queue.unwrap_or(HashPoolConfig::default().queue),
                ..HashPoolConfig::default()
            },
            Some(workers) => {
                // At most 1024, by the parser's range.
                let workers = usize::try_from(workers).unwrap_or(1);
                HashPoolConfig {
                    workers,
                    queue: self
                        .hash_queue
                        .unwrap_or(workers * DEFAULT_QUEUE_PER_WORKER),
                }
            }
        };
        let login = self.login_failure_window_secs;
        AccountOptions {
            refresh_ttl_secs: self.refresh_ttl,
            hash_pool,
            limits: AuthLimits {
                failed_logins_per_user_addr: Quota::new(self.login_failures_per_user_addr, login),
                failed_logins_per_user: Quota::new(self.login_failures_per_user, login),
                failed_logins_per_addr: Quota::new(self.login_failures_per_addr, login),
                registrations_per_addr: Quota::new(
                    self.registrations_per_addr,
                    self.registration_window_secs,
                ),
                max_keys: d.max_keys,
            },
            ..AccountOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Both {
        #[command(flatten)]
        mongo: MongoSettings,
        #[command(flatten)]
        accounts: AccountSettings,
    }

    #[test]
    fn the_defaults_are_the_services_own() {
        let both = Both::try_parse_from(["t"]).unwrap();
        let options = both.accounts.options();
        let d = AccountOptions::default();
        assert_eq!(options.limits, d.limits);
        assert_eq!(options.refresh_ttl_secs, d.refresh_ttl_secs);
        assert_eq!(options.hash_pool.workers, d.hash_pool.workers);
        assert_eq!(options.hash_pool.queue, d.hash_pool.queue);
    }

    #[test]
    fn mongo_is_configured_by_its_uri_alone_and_bounded() {
        let both = Both::try_parse_from(["t"]).unwrap();
        assert!(both.mongo.config().is_none());
        let both = Both::try_parse_from([
            "t",
            "--mongodb-uri=mongodb://127.0.0.1:1",
            "--mongodb-heartbeat-ms=10",
            "--mongodb-max-pool=0",
            "--hash-workers=2",
        ])
        .unwrap();
        let config = both.mongo.config().unwrap();
        assert_eq!(config.database, "tincan");
        assert_eq!(config.heartbeat, Duration::from_millis(500));
        assert_eq!(config.max_pool_size, 1);
        assert_eq!(config.op_timeout, Duration::from_secs(4));
        assert_eq!(both.accounts.options().hash_pool.queue, 32);
        assert!(Both::try_parse_from(["t", "--hash-workers=0"]).is_err());
    }
}
