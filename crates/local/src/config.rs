//! Configuration of the local stack, from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// API Gateway's WebSocket limits, which the emulator enforces as it does.
#[derive(Debug, Clone, Copy)]
pub struct GatewayLimits {
    /// Largest frame (API Gateway: 32 KB).
    pub max_frame_bytes: usize,
    /// Largest message (API Gateway: 128 KB); over it, close code 1009.
    pub max_message_bytes: usize,
    /// Close a socket with no client frame for this long (API Gateway: 10 min).
    pub idle_timeout: Duration,
    /// Close every socket after this long (API Gateway: 2 h).
    pub max_connection: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_connection: Duration::from_secs(2 * 3600),
        }
    }
}

/// Everything `tincan-local` reads from its environment.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `TINCAN_ADDR`, default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `TINCAN_DATA_DIR`, default `./.tincan`.
    pub data_dir: PathBuf,
    /// `TINCAN_WEB_DIR`, default the repository's `web/`.
    pub web_dir: PathBuf,
    /// `TINCAN_ROOM_MAX`, default 8.
    pub room_max: usize,
    /// `TINCAN_MAX_MESSAGE`, default 16384.
    pub max_message: usize,
    /// `TINCAN_RESUME_GRACE_SECS`, default 30: how long a participant whose
    /// socket dropped stays in its room, resumable.
    pub resume_grace_secs: u64,
    /// `TINCAN_IDLE_TIMEOUT` seconds, default 600.
    pub limits: GatewayLimits,
    /// `TINCAN_STAGE`, default `local`: the stage path of the Management API
    /// (`/{stage}/@connections/{id}`; the bare `/@connections/{id}` works too).
    pub stage: String,
    /// `TINCAN_TURN_ADDR`, default `127.0.0.1:3478`: the embedded TURN server
    /// (UDP and TCP); `TINCAN_TURN=off` runs none.
    pub turn_addr: Option<SocketAddr>,
    /// `TINCAN_JWT_SECRET` (at least 32 bytes); unset, one is made and kept
    /// in the data dir.
    pub jwt_secret: Option<String>,
    /// `TINCAN_TURN_SECRET`; unset, one is made and kept in the data dir.
    pub turn_secret: Option<String>,
    /// `DYNAMODB_ENDPOINT`: keep connection state in DynamoDB there (e.g. a
    /// moto server or DynamoDB Local) instead of in memory.
    pub dynamodb_endpoint: Option<String>,
    /// `TINCAN_CONNECTIONS_TABLE`, default `tincan-connections`; created if
    /// missing.
    pub connections_table: String,
    /// Where accounts live: MongoDB at `MONGODB_URI` (database
    /// `TINCAN_MONGODB_DB`), else the embedded store in the data dir.
    pub accounts: tincan_accounts::config::Backend,
    /// `TINCAN_LAMBDA_URL`: forward events to `cargo lambda watch` there.
    pub lambda_url: Option<String>,
}

impl LocalConfig {
    /// Defaults for a stack on `addr` keeping its files in `data_dir`, as
    /// tests want it: no environment read.
    pub fn for_tests(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            addr,
            data_dir: data_dir.clone(),
            web_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web")),
            room_max: 8,
            max_message: 16 * 1024,
            resume_grace_secs: 30,
            limits: GatewayLimits::default(),
            stage: "local".to_owned(),
            turn_addr: None,
            jwt_secret: None,
            turn_secret: None,
            dynamodb_endpoint: None,
            connections_table: "tincan-connections".to_owned(),
            accounts: tincan_accounts::config::Backend::Embedded(data_dir.clone()),
            lambda_url: None,
        }
    }

    /// Reads the environment, with defaults that work on a laptop.
    pub fn from_env() -> anyhow::Result<Self> {
        let limits = GatewayLimits {
            idle_timeout: Duration::from_secs(parse_env("TINCAN_IDLE_TIMEOUT", 600u64)?),
            ..GatewayLimits::default()
        };
        let data_dir = std::env::var_os("TINCAN_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".tincan"));
        Ok(Self {
            addr: parse_env("TINCAN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            data_dir: data_dir.clone(),
            web_dir: std::env::var_os("TINCAN_WEB_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web"))
                }),
            room_max: parse_env("TINCAN_ROOM_MAX", 8usize)?,
            max_message: parse_env("TINCAN_MAX_MESSAGE", 16 * 1024usize)?,
            resume_grace_secs: parse_env("TINCAN_RESUME_GRACE_SECS", 30u64)?,
            limits,
            stage: std::env::var("TINCAN_STAGE").unwrap_or_else(|_| "local".to_owned()),
            turn_addr: match std::env::var("TINCAN_TURN").as_deref() {
                Ok("off") => None,
                _ => Some(parse_env(
                    "TINCAN_TURN_ADDR",
                    SocketAddr::from(([127, 0, 0, 1], 3478)),
                )?),
            },
            jwt_secret: std::env::var("TINCAN_JWT_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            turn_secret: std::env::var("TINCAN_TURN_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            dynamodb_endpoint: std::env::var("DYNAMODB_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty()),
            connections_table: std::env::var("TINCAN_CONNECTIONS_TABLE")
                .unwrap_or_else(|_| "tincan-connections".to_owned()),
            accounts: accounts_backend(&data_dir)?,
            lambda_url: std::env::var("TINCAN_LAMBDA_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }
}

/// `name` parsed, or `default` when unset; an unparsable value is an error
/// naming the variable.
pub(crate) fn parse_env<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid value")),
        _ => Ok(default),
    }
}

/// MongoDB if `MONGODB_URI` is set, else the embedded store in `data_dir`.
fn accounts_backend(
    data_dir: &std::path::Path,
) -> anyhow::Result<tincan_accounts::config::Backend> {
    use tincan_accounts::config::Backend;
    if std::env::var("MONGODB_URI").is_ok_and(|v| !v.trim().is_empty()) {
        return Ok(Backend::from_env()?);
    }
    Ok(Backend::Embedded(data_dir.to_path_buf()))
}
