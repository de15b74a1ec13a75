//! What the WebSocket Lambdas read from their environment, once per cold
//! start. `template.yaml` and `infra/` set every one of these.

use tincan_signaling::{Limits, MessageRate};
use tincan_token::join::ApiKeys;
use tincan_token::{TokenKeys, DEFAULT_ACCESS_TTL_SECS};
use tincan_turn_credentials::{TurnSecret, DEFAULT_TTL_SECS};
use tincan_ws_api::ControlSecret;

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// A variable does not parse.
    #[error("{0} is not valid")]
    Invalid(&'static str),
}

/// The WebSocket functions' configuration.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// `TINCAN_JWT_SECRET`: verifies access tokens (at least 32 bytes).
    pub tokens: TokenKeys,
    /// The API keys whose join tokens `$connect` accepts: none here;
    /// `Deps::for_connect` reads `TINCAN_API_KEYS` (only `ws-connect` does).
    pub api_keys: ApiKeys,
    /// `TINCAN_CONNECTIONS_TABLE`, default `tincan-connections`.
    pub connections_table: String,
    /// `DYNAMODB_ENDPOINT`: optional endpoint override (moto, DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// `TINCAN_WS_ENDPOINT`: optional Management API endpoint; by default
    /// `https://{domainName}/{stage}` from each event.
    pub ws_endpoint: Option<String>,
    /// `TINCAN_ROOM_MAX`, `TINCAN_MAX_MESSAGE` (default 16384) and
    /// `TINCAN_RESUME_GRACE_SECS` (default 30). With the fleet (and so the
    /// media nodes' SFUs): rooms of up to `TINCAN_MESH_MAX` (default 4) are
    /// meshes, larger ones go to the SFU with `TINCAN_SFU_SLOTS` (default 3)
    /// slots, up to `TINCAN_ROOM_MAX` (default 100) participants; without
    /// it, every room is a mesh of up to `TINCAN_ROOM_MAX` (default 8).
    /// `TINCAN_MSG_RATE` (default 20 a second, 0: no limit) and
    /// `TINCAN_MSG_BURST` (default 40) messages per socket;
    /// `TINCAN_MAX_SOCKETS_PER_USER` (default 8, 0: no limit) at `$connect`.
    pub limits: Limits,
    /// `TINCAN_TURN_SECRET` and `TINCAN_TURN_URL` (host:port): TURN
    /// credentials in `joined`; unset, no ICE servers are handed out.
    pub turn: Option<(TurnSecret, String)>,
    /// `TINCAN_TURN_SECRET` alone, for credentials on fleet nodes.
    pub turn_secret: Option<TurnSecret>,
    /// `TINCAN_MEDIA_NODES_TABLE`: the media-node fleet registry; with
    /// `TINCAN_TURN_SECRET`, each room is placed on a healthy, least-loaded
    /// node and `joined` carries that node's TURN URLs.
    pub media_nodes_table: Option<String>,
    /// `TINCAN_TURN_TTL` seconds, default 3600.
    pub turn_ttl_secs: u64,
    /// `TINCAN_SFU_CONTROL_SECRET` (at least 32 bytes): signs the tokens of
    /// the media nodes' SFU control API; `$default` needs it with the fleet.
    pub sfu_control_secret: Option<ControlSecret>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        Some(v) => v.parse().map_err(|_| ConfigError::Invalid(name)),
        None => Ok(default),
    }
}

impl FunctionConfig {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let secret = var("TINCAN_JWT_SECRET").ok_or(ConfigError::Missing("TINCAN_JWT_SECRET"))?;
        let tokens = TokenKeys::new(secret.as_bytes(), DEFAULT_ACCESS_TTL_SECS)
            .map_err(|_| ConfigError::Invalid("TINCAN_JWT_SECRET"))?;
        let defaults = Limits::default();
        let turn_secret = var("TINCAN_TURN_SECRET").map(TurnSecret::new);
        let turn = match (&turn_secret, var("TINCAN_TURN_URL")) {
            (Some(secret), Some(url)) => Some((secret.clone(), url)),
            _ => None,
        };
        let media_nodes_table = var("TINCAN_MEDIA_NODES_TABLE");
        let sfu = media_nodes_table.is_some() && turn_secret.is_some();
        let (mesh_max, room_max) = if sfu {
            (
                parse("TINCAN_MESH_MAX", 4usize)?.max(1),
                parse("TINCAN_ROOM_MAX", 100usize)?,
            )
        } else {
            let room_max = parse("TINCAN_ROOM_MAX", defaults.room_max)?;
            (room_max, room_max)
        };
        Ok(Self {
            tokens,
            api_keys: ApiKeys::none(),
            connections_table: var("TINCAN_CONNECTIONS_TABLE")
                .unwrap_or_else(|| "tincan-connections".to_owned()),
            dynamodb_endpoint: var("DYNAMODB_ENDPOINT"),
            ws_endpoint: var("TINCAN_WS_ENDPOINT"),
            limits: Limits {
                room_max,
                mesh_max,
                sfu_slots: parse("TINCAN_SFU_SLOTS", defaults.sfu_slots)?.max(1),
                max_message_bytes: parse("TINCAN_MAX_MESSAGE", defaults.max_message_bytes)?,
                resume_grace_secs: parse("TINCAN_RESUME_GRACE_SECS", defaults.resume_grace_secs)?,
                msg_rate: MessageRate {
                    per_sec: parse("TINCAN_MSG_RATE", defaults.msg_rate.per_sec)?,
                    burst: parse("TINCAN_MSG_BURST", defaults.msg_rate.burst)?,
                },
                max_sockets_per_user: parse(
                    "TINCAN_MAX_SOCKETS_PER_USER",
                    defaults.max_sockets_per_user,
                )?,
                ..defaults
            },
            turn,
            turn_secret,
            media_nodes_table,
            turn_ttl_secs: parse("TINCAN_TURN_TTL", DEFAULT_TTL_SECS)?,
            sfu_control_secret: var("TINCAN_SFU_CONTROL_SECRET")
                .map(ControlSecret::new)
                .transpose()
                .map_err(|_| ConfigError::Invalid("TINCAN_SFU_CONTROL_SECRET"))?,
        })
    }
}
