//! Configuration of the local stack, from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// API Gateway's WebSocket limits, which the emulator enforces as it does,
/// and the limits that keep one hostile client from harming the others.
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
    /// Delay each `$default` invocation by a random 0..=this, to widen the
    /// reordering of frames that API Gateway allows.
    pub invoke_jitter: Duration,
    /// Most `$default` invocations running at once for one socket; past it
    /// the gateway stops reading that socket until one ends.
    pub max_inflight_per_socket: usize,
    /// Most `$default` invocations running at once in the whole gateway.
    pub max_inflight: usize,
    /// Frames queued for one socket; a socket whose queue is full is not
    /// reading, and is closed with 1008.
    pub outbound_queue: usize,
    /// Most open sockets of one user (0: no limit). Not applied by the
    /// gateway: the in-process backend's `$connect` applies it (see
    /// [`LocalConfig::signaling_limits`]); forwarding to Lambdas, theirs.
    pub max_sockets_per_user: usize,
    /// Messages per second one socket may send (0: no limit); applied by
    /// the backend like `max_sockets_per_user`.
    pub msg_rate: u32,
    /// Messages one socket may send in a burst; applied by the backend.
    pub msg_burst: u32,
    /// Bytes read from a socket at a time: the WebSocket read buffer each
    /// open socket holds (tungstenite's default, 128 KiB, would dominate a
    /// socket's memory). A larger frame still arrives whole.
    pub read_buffer: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_connection: Duration::from_secs(2 * 3600),
            invoke_jitter: Duration::ZERO,
            max_inflight_per_socket: 64,
            max_inflight: 4096,
            outbound_queue: 256,
            max_sockets_per_user: 8,
            msg_rate: 20,
            msg_burst: 40,
            read_buffer: 4 * 1024,
        }
    }
}

impl GatewayLimits {
    /// The defaults, overridden by whatever the environment sets.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        Ok(Self {
            max_frame_bytes: d.max_frame_bytes,
            max_message_bytes: d.max_message_bytes,
            idle_timeout: secs("TINCAN_IDLE_TIMEOUT", d.idle_timeout)?,
            max_connection: secs("TINCAN_MAX_CONNECTION_SECS", d.max_connection)?,
            invoke_jitter: Duration::from_millis(parse_env("TINCAN_INVOKE_JITTER_MS", 0u64)?),
            max_inflight_per_socket: at_least_one(parse_env(
                "TINCAN_MAX_INFLIGHT_PER_SOCKET",
                d.max_inflight_per_socket,
            )?),
            max_inflight: at_least_one(parse_env("TINCAN_MAX_INFLIGHT", d.max_inflight)?),
            outbound_queue: at_least_one(parse_env("TINCAN_OUTBOUND_QUEUE", d.outbound_queue)?),
            max_sockets_per_user: parse_env("TINCAN_MAX_SOCKETS_PER_USER", d.max_sockets_per_user)?,
            msg_rate: parse_env("TINCAN_MSG_RATE", d.msg_rate)?,
            msg_burst: parse_env("TINCAN_MSG_BURST", d.msg_burst)?,
            read_buffer: parse_env("TINCAN_WS_READ_BUFFER", d.read_buffer)?.max(256),
        })
    }
}

/// Limits of every TCP listener (the public one and the Management API's).
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Close a connection whose request head (or WebSocket handshake) is not
    /// complete this long after it opened or after its last response.
    pub header_timeout: Duration,
    /// Most connections open at once from one client address (0: no limit).
    pub max_conns_per_ip: usize,
    /// Most connections open at once; also kept under the process's open-file
    /// limit, so there is always a descriptor for the next accept.
    pub max_conns: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_conns_per_ip: 256,
            max_conns: 10_000,
        }
    }
}

impl ListenerLimits {
    /// The defaults, overridden by whatever the environment sets.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        Ok(Self {
            header_timeout: secs("TINCAN_HEADER_TIMEOUT", d.header_timeout)?,
            max_conns_per_ip: parse_env("TINCAN_MAX_CONNS_PER_IP", d.max_conns_per_ip)?,
            max_conns: at_least_one(parse_env("TINCAN_MAX_CONNS", d.max_conns)?),
        })
    }
}

fn secs(name: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(parse_env(name, default.as_secs())?))
}

fn at_least_one(n: usize) -> usize {
    n.max(1)
}

/// Everything `tincan-local` reads from its environment.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `TINCAN_ADDR`, default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `TINCAN_DATA_DIR`, default `./.tincan`.
    pub data_dir: PathBuf,
    /// `TINCAN_WEB_DIR`: serve the web app from this directory; `None` (the
    /// default) serves the copy built into the binary.
    pub web_dir: Option<PathBuf>,
    /// `TINCAN_ROOM_MAX`: most participants of a room; by default
    /// `sfu_room_max` with the embedded node's SFU, 8 (a mesh) without.
    pub room_max: Option<usize>,
    /// `TINCAN_MESH_MAX`, default 4: most participants of a mesh room; one
    /// more moves the room to the embedded node's SFU.
    pub mesh_max: usize,
    /// `TINCAN_SFU_SLOTS`, default 3: audio slots each SFU participant
    /// receives.
    pub sfu_slots: usize,
    /// `TINCAN_SFU_ROOM_MAX`, default 100: most participants of a room on
    /// the SFU.
    pub sfu_room_max: usize,
    /// `TINCAN_MAX_MESSAGE`, default 16384.
    pub max_message: usize,
    /// `TINCAN_RESUME_GRACE_SECS`, default 30: how long a participant whose
    /// socket dropped stays in its room, resumable.
    pub resume_grace_secs: u64,
    /// `TINCAN_MANAGEMENT_ADDR`, default `127.0.0.1:8081`: the Management
    /// API (`/@connections`), never served on `addr`.
    pub management_addr: SocketAddr,
    /// The WebSocket limits (`TINCAN_IDLE_TIMEOUT`, `TINCAN_MSG_RATE`, ...).
    pub limits: GatewayLimits,
    /// The listeners' limits (`TINCAN_HEADER_TIMEOUT`,
    /// `TINCAN_MAX_CONNS_PER_IP`, `TINCAN_MAX_CONNS`).
    pub listener: ListenerLimits,
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
    /// `TINCAN_SFU_CONTROL_SECRET` (at least 32 bytes): signs the embedded
    /// SFU's control tokens; unset, one is made and kept in the data dir.
    pub sfu_control_secret: Option<String>,
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
    /// Whether `$connect` checks that the token's user still exists (a
    /// deleted account's tokens open no socket). Always on, but for tests
    /// and load runs that mint tokens for users they never registered.
    pub users_must_exist: bool,
    /// `TINCAN_CORS_ORIGINS`: other origins whose pages may call the HTTP
    /// API (a web app served elsewhere); default none, same-origin only.
    pub cors: tincan_http_api::CorsOrigins,
    /// `TINCAN_API_KEYS`: `id:secret` pairs, comma-separated, whose join
    /// tokens `$connect` accepts (apps that embed calls); default none.
    pub api_keys: tincan_token::join::ApiKeys,
}

impl LocalConfig {
    /// The signaling's limits: with an SFU, meshes up to `mesh_max` and
    /// rooms up to `room_max` (default `sfu_room_max`); without one, every
    /// room a mesh of up to `room_max` (default 8).
    pub fn signaling_limits(&self, sfu: bool) -> tincan_signaling::Limits {
        let (mesh_max, room_max) = if sfu {
            (
                self.mesh_max.max(1),
                self.room_max.unwrap_or(self.sfu_room_max),
            )
        } else {
            let room_max = self.room_max.unwrap_or(8);
            (room_max, room_max)
        };
        tincan_signaling::Limits {
            max_message_bytes: self.max_message,
            room_max,
            resume_grace_secs: self.resume_grace_secs,
            mesh_max,
            sfu_slots: self.sfu_slots.max(1),
            msg_rate: tincan_signaling::MessageRate {
                per_sec: self.limits.msg_rate,
                burst: self.limits.msg_burst,
            },
            max_sockets_per_user: self.limits.max_sockets_per_user,
            ..tincan_signaling::Limits::default()
        }
    }

    /// Defaults for a stack on `addr` keeping its files in `data_dir`, as
    /// tests want it: no environment read.
    pub fn for_tests(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            addr,
            data_dir: data_dir.clone(),
            web_dir: None,
            room_max: None,
            mesh_max: 4,
            sfu_slots: 3,
            sfu_room_max: 100,
            max_message: 16 * 1024,
            resume_grace_secs: 30,
            management_addr: SocketAddr::new(addr.ip(), 0),
            limits: GatewayLimits::default(),
            listener: ListenerLimits::default(),
            stage: "local".to_owned(),
            turn_addr: None,
            jwt_secret: None,
            turn_secret: None,
            sfu_control_secret: None,
            dynamodb_endpoint: None,
            connections_table: "tincan-connections".to_owned(),
            accounts: tincan_accounts::config::Backend::Embedded(data_dir.clone()),
            lambda_url: None,
            users_must_exist: true,
            cors: tincan_http_api::CorsOrigins::List(Vec::new()),
            api_keys: tincan_token::join::ApiKeys::none(),
        }
    }

    /// Reads the environment, with defaults that work on a laptop.
    pub fn from_env() -> anyhow::Result<Self> {
        let data_dir = std::env::var_os("TINCAN_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".tincan"));
        Ok(Self {
            addr: parse_env("TINCAN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            data_dir: data_dir.clone(),
            web_dir: std::env::var_os("TINCAN_WEB_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            room_max: match std::env::var("TINCAN_ROOM_MAX") {
                Ok(v) if !v.is_empty() => Some(
                    v.parse()
                        .map_err(|_| anyhow::anyhow!("TINCAN_ROOM_MAX must be a number"))?,
                ),
                _ => None,
            },
            mesh_max: parse_env("TINCAN_MESH_MAX", 4usize)?,
            sfu_slots: parse_env("TINCAN_SFU_SLOTS", 3usize)?,
            sfu_room_max: parse_env("TINCAN_SFU_ROOM_MAX", 100usize)?,
            max_message: parse_env("TINCAN_MAX_MESSAGE", 16 * 1024usize)?,
            resume_grace_secs: parse_env("TINCAN_RESUME_GRACE_SECS", 30u64)?,
            management_addr: parse_env(
                "TINCAN_MANAGEMENT_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8081)),
            )?,
            limits: GatewayLimits::from_env()?,
            listener: ListenerLimits::from_env()?,
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
            sfu_control_secret: std::env::var("TINCAN_SFU_CONTROL_SECRET")
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
            users_must_exist: true,
            cors: crate::web_app::parse_cors_origins(
                &std::env::var("TINCAN_CORS_ORIGINS").unwrap_or_default(),
            )?,
            // The error names a key id at most, never a secret.
            api_keys: tincan_token::join::ApiKeys::parse(
                &std::env::var("TINCAN_API_KEYS").unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("TINCAN_API_KEYS: {e}"))?,
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
