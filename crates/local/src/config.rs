//! Configuration of the local stack: [`LocalSettings`], its flags and
//! environment variables (`tincan-local --help`, and the README's table),
//! become a [`LocalConfig`], which tests build directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::ArgAction;
use tincan_accounts::config::{AccountSettings, MongoSettings};
use tincan_accounts::AccountOptions;
use tincan_settings::{ConnectionsTable, DynamoSettings, Secret, SignalingSettings};

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

/// Everything the local stack runs with.
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
    pub jwt_secret: Option<Secret>,
    /// `TINCAN_TURN_SECRET`; unset, one is made and kept in the data dir.
    pub turn_secret: Option<Secret>,
    /// `TINCAN_SFU_CONTROL_SECRET` (at least 32 bytes): signs the embedded
    /// SFU's control tokens; unset, one is made and kept in the data dir.
    pub sfu_control_secret: Option<Secret>,
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
    /// The account service's hashing pool, limits and refresh-token
    /// lifetime (`TINCAN_HASH_WORKERS`, `TINCAN_LOGIN_*`, ...).
    pub account_options: AccountOptions,
}

impl LocalConfig {
    /// The signaling's limits: with an SFU, meshes up to `mesh_max` and
    /// rooms up to `room_max` (default `sfu_room_max`); without one, every
    /// room a mesh of up to `room_max` (default 8).
    pub fn signaling_limits(&self, sfu: bool) -> tincan_signaling::Limits {
        SignalingSettings {
            room_max: self.room_max,
            mesh_max: self.mesh_max,
            sfu_slots: self.sfu_slots,
            max_message: self.max_message,
            resume_grace_secs: self.resume_grace_secs,
            msg_rate: self.limits.msg_rate,
            msg_burst: self.limits.msg_burst,
            max_sockets_per_user: self.limits.max_sockets_per_user,
        }
        .limits(sfu.then_some(self.sfu_room_max))
    }

    /// Defaults for a stack on `addr` keeping its files in `data_dir`, as
    /// tests want it: no environment read.
    pub fn for_tests(addr: SocketAddr, data_dir: PathBuf) -> Self {
        let signaling = SignalingSettings::default();
        Self {
            addr,
            data_dir: data_dir.clone(),
            web_dir: None,
            room_max: None,
            mesh_max: signaling.mesh_max,
            sfu_slots: signaling.sfu_slots,
            sfu_room_max: tincan_sfu_control::DEFAULT_ROOM_MAX,
            max_message: signaling.max_message,
            resume_grace_secs: signaling.resume_grace_secs,
            management_addr: SocketAddr::new(addr.ip(), 0),
            limits: GatewayLimits::default(),
            listener: ListenerLimits::default(),
            stage: "local".to_owned(),
            turn_addr: None,
            jwt_secret: None,
            turn_secret: None,
            sfu_control_secret: None,
            dynamodb_endpoint: None,
            connections_table: ConnectionsTable::default().connections_table,
            accounts: tincan_accounts::config::Backend::Embedded(data_dir.clone()),
            lambda_url: None,
            users_must_exist: true,
            cors: tincan_http_api::CorsOrigins::List(Vec::new()),
            api_keys: tincan_token::join::ApiKeys::none(),
            account_options: AccountOptions::default(),
        }
    }

    /// The settings of the environment (flags ignored): what the load
    /// tools' own stacks start from.
    pub fn from_env() -> anyhow::Result<Self> {
        let cmd = tincan_settings::command::<LocalSettings>();
        let matches = cmd.try_get_matches_from(["tincan-local"])?;
        <LocalSettings as clap::FromArgMatches>::from_arg_matches(&matches)?.into_config()
    }
}

/// `tincan-local`'s settings: every flag also reads its environment
/// variable, with defaults that work on a laptop.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tincan-local",
    version,
    about = "The whole of Tincan on one machine: the web app, the HTTP API, the WebSocket API \
             and an embedded media node"
)]
pub struct LocalSettings {
    /// Where the web app, HTTP API, `/ws` and `/healthz` are served.
    #[arg(long, env = "TINCAN_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The Management API (`/@connections/{id}`), on a listener of its
    /// own; keep it on loopback.
    #[arg(long, env = "TINCAN_MANAGEMENT_ADDR", default_value = "127.0.0.1:8081")]
    pub management_addr: SocketAddr,
    /// Embedded stores and generated local secrets.
    #[arg(long, env = "TINCAN_DATA_DIR", default_value = "./.tincan")]
    pub data_dir: PathBuf,
    /// A directory to serve at `/` instead of the web app built into the
    /// binary.
    #[arg(long, env = "TINCAN_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Other origins whose pages may call the HTTP API: a comma-separated
    /// list of origins, `*`, or `none` (same-origin only).
    #[arg(long, env = "TINCAN_CORS_ORIGINS", default_value = "none", value_parser = crate::web_app::parse_cors_origins)]
    pub cors_origins: tincan_http_api::CorsOrigins,
    /// HS256 secret for access tokens (at least 32 bytes); unset, one is
    /// generated and kept in the data dir.
    #[arg(long, env = "TINCAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// TURN REST API shared secret (at least 32 bytes); unset, one is
    /// generated and kept in the data dir.
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<Secret>,
    /// Signs the embedded SFU's control tokens (at least 32 bytes); unset,
    /// one is generated and kept in the data dir.
    #[arg(long, env = "TINCAN_SFU_CONTROL_SECRET", hide_env_values = true)]
    pub sfu_control_secret: Option<Secret>,
    /// API keys of apps that embed calls: `id:secret` pairs,
    /// comma-separated; `$connect` accepts join tokens they sign. Unset,
    /// join tokens are refused.
    #[arg(long, env = "TINCAN_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<Secret>,
    /// Run the embedded media node (TURN and SFU): `on` or `off`.
    #[arg(long, env = "TINCAN_TURN", default_value = "on", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub turn: bool,
    /// The embedded TURN server (UDP and TCP).
    #[arg(long, env = "TINCAN_TURN_ADDR", default_value = "127.0.0.1:3478")]
    pub turn_addr: SocketAddr,
    /// Most participants the embedded node's SFU takes in one room.
    #[arg(long, env = "TINCAN_SFU_ROOM_MAX", default_value_t = tincan_sfu_control::DEFAULT_ROOM_MAX)]
    pub sfu_room_max: usize,
    /// Seconds without a client frame before a socket is closed.
    #[arg(long, env = "TINCAN_IDLE_TIMEOUT", default_value_t = GatewayLimits::default().idle_timeout.as_secs())]
    pub idle_timeout: u64,
    /// A socket's lifetime, seconds; then it is closed with 1001.
    #[arg(long, env = "TINCAN_MAX_CONNECTION_SECS", default_value_t = GatewayLimits::default().max_connection.as_secs())]
    pub max_connection_secs: u64,
    /// Delay each frame's invocation by a random 0..N ms.
    #[arg(long, env = "TINCAN_INVOKE_JITTER_MS", default_value_t = GatewayLimits::default().invoke_jitter.as_millis() as u64)]
    pub invoke_jitter_ms: u64,
    /// Invocations running at once for one socket (at least 1).
    #[arg(long, env = "TINCAN_MAX_INFLIGHT_PER_SOCKET", default_value_t = GatewayLimits::default().max_inflight_per_socket)]
    pub max_inflight_per_socket: usize,
    /// Invocations running at once in the whole gateway (at least 1).
    #[arg(long, env = "TINCAN_MAX_INFLIGHT", default_value_t = GatewayLimits::default().max_inflight)]
    pub max_inflight: usize,
    /// Messages queued for one socket (at least 1); a socket whose queue is
    /// full is closed with 1008.
    #[arg(long, env = "TINCAN_OUTBOUND_QUEUE", default_value_t = GatewayLimits::default().outbound_queue)]
    pub outbound_queue: usize,
    /// Bytes read from a socket at a time (at least 256).
    #[arg(long, env = "TINCAN_WS_READ_BUFFER", default_value_t = GatewayLimits::default().read_buffer)]
    pub ws_read_buffer: usize,
    /// Seconds for a connection to send a complete request head.
    #[arg(long, env = "TINCAN_HEADER_TIMEOUT", default_value_t = ListenerLimits::default().header_timeout.as_secs())]
    pub header_timeout: u64,
    /// TCP connections open at once from one client address (0: no limit).
    #[arg(long, env = "TINCAN_MAX_CONNS_PER_IP", default_value_t = ListenerLimits::default().max_conns_per_ip)]
    pub max_conns_per_ip: usize,
    /// TCP connections open at once in all (at least 1).
    #[arg(long, env = "TINCAN_MAX_CONNS", default_value_t = ListenerLimits::default().max_conns)]
    pub max_conns: usize,
    /// Stage path of the Management API: `/{stage}/@connections/{id}`.
    #[arg(long, env = "TINCAN_STAGE", default_value = "local")]
    pub stage: String,
    /// Forward WebSocket events to Lambdas under `cargo lambda watch` at
    /// this URL.
    #[arg(long, env = "TINCAN_LAMBDA_URL")]
    pub lambda_url: Option<String>,
    /// Log filter.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info,tower_http=warn")]
    pub rust_log: String,
    #[command(flatten)]
    pub signaling: SignalingSettings,
    #[command(flatten)]
    pub connections: ConnectionsTable,
    #[command(flatten)]
    pub dynamo: DynamoSettings,
    #[command(flatten)]
    pub mongo: MongoSettings,
    #[command(flatten)]
    pub accounts: AccountSettings,
}

impl LocalSettings {
    /// The stack's configuration; a malformed `TINCAN_API_KEYS` is an error
    /// naming at most a key id, never a secret.
    pub fn into_config(self) -> anyhow::Result<LocalConfig> {
        let api_keys =
            tincan_token::join::ApiKeys::parse(self.api_keys.as_ref().map_or("", Secret::expose))
                .map_err(|e| anyhow::anyhow!("TINCAN_API_KEYS: {e}"))?;
        Ok(LocalConfig {
            addr: self.addr,
            accounts: tincan_accounts::config::Backend::mongo_or_embedded(
                &self.mongo,
                &self.data_dir,
            ),
            data_dir: self.data_dir,
            web_dir: self.web_dir,
            room_max: self.signaling.room_max,
            mesh_max: self.signaling.mesh_max,
            sfu_slots: self.signaling.sfu_slots,
            sfu_room_max: self.sfu_room_max,
            max_message: self.signaling.max_message,
            resume_grace_secs: self.signaling.resume_grace_secs,
            management_addr: self.management_addr,
            limits: GatewayLimits {
                idle_timeout: Duration::from_secs(self.idle_timeout),
                max_connection: Duration::from_secs(self.max_connection_secs),
                invoke_jitter: Duration::from_millis(self.invoke_jitter_ms),
                max_inflight_per_socket: self.max_inflight_per_socket.max(1),
                max_inflight: self.max_inflight.max(1),
                outbound_queue: self.outbound_queue.max(1),
                max_sockets_per_user: self.signaling.max_sockets_per_user,
                msg_rate: self.signaling.msg_rate,
                msg_burst: self.signaling.msg_burst,
                read_buffer: self.ws_read_buffer.max(256),
                ..GatewayLimits::default()
            },
            listener: ListenerLimits {
                header_timeout: Duration::from_secs(self.header_timeout),
                max_conns_per_ip: self.max_conns_per_ip,
                max_conns: self.max_conns.max(1),
            },
            stage: self.stage,
            turn_addr: self.turn.then_some(self.turn_addr),
            jwt_secret: self.jwt_secret,
            turn_secret: self.turn_secret,
            sfu_control_secret: self.sfu_control_secret,
            dynamodb_endpoint: self.dynamo.dynamodb_endpoint,
            connections_table: self.connections.connections_table,
            lambda_url: self.lambda_url,
            users_must_exist: true,
            cors: self.cors_origins,
            api_keys,
            account_options: self.accounts.options(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn the_settings_defaults_are_the_tests_defaults() {
        let dir = PathBuf::from("./.tincan");
        let settings = LocalSettings::try_parse_from(["tincan-local", "--turn=off"]).unwrap();
        let from_settings = settings.into_config().unwrap();
        let for_tests = LocalConfig::for_tests(from_settings.addr, dir);
        assert_eq!(
            format!("{:?}", from_settings.signaling_limits(true)),
            format!("{:?}", for_tests.signaling_limits(true))
        );
        assert_eq!(
            format!("{:?}", from_settings.limits),
            format!("{:?}", GatewayLimits::default())
        );
        assert_eq!(from_settings.turn_addr, None);
        assert_eq!(from_settings.connections_table, for_tests.connections_table);
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_variable_and_secrets_never_print() {
        let mut cmd = tincan_settings::command::<LocalSettings>();
        let err = cmd
            .try_get_matches_from_mut(["tincan-local", "--max-message=lots"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TINCAN_MAX_MESSAGE"), "{err}");
        let settings = LocalSettings::try_parse_from([
            "tincan-local",
            "--jwt-secret=jwt-secret-value-jwt-secret-value",
            "--api-keys=app:api-key-secret-value-api-key-secret",
        ])
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("secret-value"), "{debug}");
        let err = LocalSettings::try_parse_from(["tincan-local", "--api-keys=app:short"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("TINCAN_API_KEYS") && !err.contains("short"),
            "{err}"
        );
    }
}
