//! What the Lambdas read from their environment, once per cold start: one
//! settings struct per function (`--help` on each binary lists its
//! variables), built from the groups they share. `template.yaml` and
//! `infra/` set every one the deployed functions need.

use tincan_accounts::config::MongoSettings;
use tincan_http_api::ApiSettings;
use tincan_settings::{ConnectionsTable, DynamoSettings, Secret, SignalingSettings};
use tincan_signaling::Limits;
use tincan_token::join::ApiKeys;
use tincan_token::{TokenKeys, DEFAULT_ACCESS_TTL_SECS};
use tincan_turn_credentials::{TurnSecret, DEFAULT_TTL_SECS};
use tincan_ws_api::ControlSecret;

/// A missing or malformed setting.
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

/// How much the functions log: `RUST_LOG`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log filter: a default level and `target=level` pairs, e.g.
    /// `info,tincan_ws_api=debug` (logs are JSON lines).
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
}

/// What every WebSocket function reads.
#[derive(Debug, Clone, clap::Args)]
pub struct WsSettings {
    /// Verifies access tokens (at least 32 bytes).
    #[arg(long, env = "TINCAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Secret,
    /// Management API endpoint for PostToConnection (default:
    /// `https://{domainName}/{stage}` of each event); required by
    /// `ws-sweep`, whose scheduled event names none.
    #[arg(long, env = "TINCAN_WS_ENDPOINT")]
    pub ws_endpoint: Option<String>,
    /// TURN REST API secret shared with the media nodes: with
    /// `TINCAN_TURN_URL`, `joined` carries TURN credentials; with
    /// `TINCAN_MEDIA_NODES_TABLE`, rooms are placed on media nodes.
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<Secret>,
    /// TURN `host:port` (with a fleet, the fallback when no node is alive).
    #[arg(long, env = "TINCAN_TURN_URL")]
    pub turn_url: Option<String>,
    /// TURN credential lifetime, seconds.
    #[arg(long, env = "TINCAN_TURN_TTL", default_value_t = DEFAULT_TTL_SECS)]
    pub turn_ttl: u64,
    /// The media-node fleet registry; with `TINCAN_TURN_SECRET`, each room
    /// is placed on a healthy, least-loaded node, and rooms past the mesh
    /// size go to its SFU.
    #[arg(long, env = "TINCAN_MEDIA_NODES_TABLE")]
    pub media_nodes_table: Option<String>,
    /// Signs the tokens of the media nodes' SFU control API (at least 32
    /// bytes, the nodes' value); `ws-default` and `ws-sweep` need it with
    /// the fleet.
    #[arg(long, env = "TINCAN_SFU_CONTROL_SECRET", hide_env_values = true)]
    pub sfu_control_secret: Option<Secret>,
    #[command(flatten)]
    pub connections: ConnectionsTable,
    #[command(flatten)]
    pub dynamo: DynamoSettings,
    #[command(flatten)]
    pub signaling: SignalingSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// `ws-connect`'s settings: the API keys of embedding apps are its alone.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "The $connect route of Tincan's WebSocket API (a Lambda function)")]
pub struct ConnectSettings {
    #[command(flatten)]
    pub ws: WsSettings,
    /// `id:secret` pairs, comma-separated, whose join tokens `$connect`
    /// accepts (apps that embed calls); unset, join tokens are refused.
    #[arg(long, env = "TINCAN_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<Secret>,
}

/// The settings of `ws-disconnect`, `ws-default` and `ws-sweep`: call
/// history in MongoDB, when `MONGODB_URI` is set.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "A route of Tincan's WebSocket API, or its sweep (a Lambda function)")]
pub struct HistorySettings {
    #[command(flatten)]
    pub ws: WsSettings,
    #[command(flatten)]
    pub mongo: MongoSettings,
}

/// The `http-api` function's settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Tincan's HTTP API (a Lambda function)")]
pub struct HttpApiSettings {
    #[command(flatten)]
    pub api: ApiSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// The WebSocket functions' configuration, from their settings.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// `TINCAN_JWT_SECRET`: verifies access tokens (at least 32 bytes).
    pub tokens: TokenKeys,
    /// The API keys whose join tokens `$connect` accepts: none but in
    /// `ws-connect` (`TINCAN_API_KEYS`).
    pub api_keys: ApiKeys,
    /// `TINCAN_CONNECTIONS_TABLE`.
    pub connections_table: String,
    /// `DYNAMODB_ENDPOINT`: optional endpoint override (moto, DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// `TINCAN_WS_ENDPOINT`: optional Management API endpoint; by default
    /// `https://{domainName}/{stage}` from each event.
    pub ws_endpoint: Option<String>,
    /// The signaling limits ([`SignalingSettings::limits`]): with the fleet
    /// (and so the media nodes' SFUs), rooms up to the SFU's size.
    pub limits: Limits,
    /// `TINCAN_TURN_SECRET` and `TINCAN_TURN_URL` (host:port): TURN
    /// credentials in `joined`; unset, no ICE servers are handed out.
    pub turn: Option<(TurnSecret, String)>,
    /// `TINCAN_TURN_SECRET` alone, for credentials on fleet nodes.
    pub turn_secret: Option<TurnSecret>,
    /// `TINCAN_MEDIA_NODES_TABLE`: the media-node fleet registry.
    pub media_nodes_table: Option<String>,
    /// `TINCAN_TURN_TTL` seconds.
    pub turn_ttl_secs: u64,
    /// `TINCAN_SFU_CONTROL_SECRET` (at least 32 bytes): signs the tokens of
    /// the media nodes' SFU control API; `$default` needs it with the fleet.
    pub sfu_control_secret: Option<ControlSecret>,
}

impl FunctionConfig {
    /// The configuration `settings` describe; a secret too short is an
    /// error naming its variable.
    pub fn from_settings(settings: WsSettings) -> Result<Self, ConfigError> {
        let tokens = TokenKeys::new(
            settings.jwt_secret.expose().as_bytes(),
            DEFAULT_ACCESS_TTL_SECS,
        )
        .map_err(|_| ConfigError::Invalid("TINCAN_JWT_SECRET"))?;
        let turn_secret = settings
            .turn_secret
            .as_ref()
            .map(|s| TurnSecret::new(s.expose()));
        let turn = match (&turn_secret, settings.turn_url) {
            (Some(secret), Some(url)) => Some((secret.clone(), url)),
            _ => None,
        };
        let sfu = settings.media_nodes_table.is_some() && turn_secret.is_some();
        Ok(Self {
            tokens,
            api_keys: ApiKeys::none(),
            connections_table: settings.connections.connections_table,
            dynamodb_endpoint: settings.dynamo.dynamodb_endpoint,
            ws_endpoint: settings.ws_endpoint,
            limits: settings
                .signaling
                .limits(sfu.then_some(tincan_sfu_control::DEFAULT_ROOM_MAX)),
            turn,
            turn_secret,
            media_nodes_table: settings.media_nodes_table,
            turn_ttl_secs: settings.turn_ttl,
            sfu_control_secret: settings
                .sfu_control_secret
                .map(|s| ControlSecret::new(s.expose()))
                .transpose()
                .map_err(|_| ConfigError::Invalid("TINCAN_SFU_CONTROL_SECRET"))?,
        })
    }
}

/// `TINCAN_API_KEYS`: unset, none (every join token is refused). A
/// malformed list is refused naming the variable alone, never a secret.
pub(crate) fn api_keys(value: Option<&Secret>) -> Result<ApiKeys, ConfigError> {
    ApiKeys::parse(value.map_or("", Secret::expose))
        .map_err(|_| ConfigError::Invalid("TINCAN_API_KEYS"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn settings(args: &[&str]) -> HistorySettings {
        let jwt = format!("--jwt-secret={SECRET}");
        HistorySettings::try_parse_from(["ws-default", jwt.as_str()].iter().chain(args)).unwrap()
    }

    #[test]
    fn rooms_are_meshes_of_8_alone_and_go_to_the_sfu_past_4_with_the_fleet() {
        let alone = FunctionConfig::from_settings(settings(&[]).ws).unwrap();
        assert_eq!((alone.limits.mesh_max, alone.limits.room_max), (8, 8));
        assert_eq!(alone.connections_table, "tincan-connections");
        let fleet = FunctionConfig::from_settings(
            settings(&["--media-nodes-table=nodes", "--turn-secret=t"]).ws,
        )
        .unwrap();
        assert_eq!((fleet.limits.mesh_max, fleet.limits.room_max), (4, 100));
    }

    #[test]
    fn a_short_secret_is_refused_by_its_name_alone() {
        let err = FunctionConfig::from_settings(
            settings(&["--sfu-control-secret=short-secret-value"]).ws,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "TINCAN_SFU_CONTROL_SECRET is not valid");
        let err = api_keys(Some(&Secret::new("app:short-secret-value"))).unwrap_err();
        assert_eq!(err.to_string(), "TINCAN_API_KEYS is not valid");
        let debug = format!("{:?}", settings(&["--turn-secret=turn-secret-value"]));
        assert!(
            !debug.contains(SECRET) && !debug.contains("turn-secret-value"),
            "{debug}"
        );
    }
}
