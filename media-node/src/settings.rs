//! The media node's settings: every flag also reads an environment
//! variable (`tincan-media-node --help`, and the README's table), with
//! defaults that work on loopback.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use ipnet::IpNet;
use tincan_settings::{DynamoSettings, Secret};

use crate::heartbeat::{self, TlsName};
use crate::peer_filter::parse_ranges;

/// A Tincan media node: TURN relay over UDP, TCP and (optionally) TLS with
/// TURN REST API credentials.
#[derive(Debug, Parser)]
#[command(name = "tincan-media-node", version, about)]
pub struct Settings {
    /// TURN listen address, UDP and TCP.
    #[arg(long, env = "TINCAN_TURN_ADDR", default_value = "127.0.0.1:3478")]
    pub turn_addr: SocketAddr,
    /// Secret shared with the signaling side for TURN REST API credentials;
    /// required, at least 32 bytes (e.g. `openssl rand -hex 32`).
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Secret,
    /// IP advertised in relayed addresses (defaults to the relay bind IP).
    #[arg(long, env = "TINCAN_TURN_PUBLIC_IP")]
    pub turn_public_ip: Option<IpAddr>,
    /// IP relay sockets bind to (defaults to the TURN listen IP).
    #[arg(long, env = "TINCAN_RELAY_BIND_IP")]
    pub relay_bind_ip: Option<IpAddr>,
    /// TURN realm.
    #[arg(long, env = "TINCAN_TURN_REALM", default_value = "tincan")]
    pub turn_realm: String,
    /// Lowest relay port.
    #[arg(long, env = "TINCAN_RELAY_PORT_MIN", default_value_t = 49152)]
    pub relay_port_min: u16,
    /// Highest relay port.
    #[arg(long, env = "TINCAN_RELAY_PORT_MAX", default_value_t = 65535)]
    pub relay_port_max: u16,
    /// Live allocations per user (0: no limit). 16 admits one relayed user
    /// in a room of 8 over UDP and TCP (7 x 2).
    #[arg(long, env = "TINCAN_TURN_USER_QUOTA", default_value_t = crate::DEFAULT_ALLOCATIONS_PER_USER)]
    pub user_quota: u32,
    /// Live allocations per client IP address (0: no limit).
    #[arg(long, env = "TINCAN_TURN_IP_QUOTA", default_value_t = crate::DEFAULT_ALLOCATIONS_PER_IP)]
    pub ip_quota: u32,
    /// Peer ranges relays may not reach, comma-separated CIDRs, replacing
    /// the default (coturn's private, loopback, link-local, multicast and
    /// reserved ranges); `none` denies nothing.
    #[arg(long, env = "TINCAN_TURN_DENIED_PEERS", value_parser = ranges)]
    pub denied_peers: Option<Ranges>,
    /// Peer ranges allowed over the deny-list, comma-separated CIDRs (e.g.
    /// `10.0.0.0/8` for peers on the node's own private network).
    #[arg(long, env = "TINCAN_TURN_ALLOWED_PEERS", value_parser = ranges)]
    pub allowed_peers: Option<Ranges>,
    /// Open TCP/TLS connections per client IP address (0: no limit).
    #[arg(long, env = "TINCAN_TURN_TCP_PER_IP", default_value_t = crate::DEFAULT_TCP_CONNECTIONS_PER_IP)]
    pub tcp_per_ip: usize,
    /// Seconds a TCP/TLS connection has to send its first STUN message, and
    /// an SFU control connection its request head.
    #[arg(long, env = "TINCAN_TURN_TCP_FIRST_MESSAGE_SECS", default_value_t = crate::DEFAULT_TCP_FIRST_MESSAGE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub tcp_first_message_secs: u64,
    /// Seconds a TCP/TLS connection may stay idle (no frame either way).
    #[arg(long, env = "TINCAN_TURN_TCP_IDLE_SECS", default_value_t = crate::DEFAULT_TCP_IDLE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub tcp_idle_secs: u64,
    /// Longest allocation lifetime granted, seconds (1-3600).
    #[arg(long, env = "TINCAN_TURN_MAX_LIFETIME_SECS", default_value_t = 3600)]
    pub max_lifetime_secs: u32,
    /// SO_RCVBUF and SO_SNDBUF asked for on UDP listener and relay sockets,
    /// bytes (0: the kernel's defaults). Linux caps it at
    /// net.core.rmem_max / wmem_max; the node warns when it got less.
    #[arg(long, env = "TINCAN_TURN_UDP_BUFFER", default_value_t = crate::DEFAULT_UDP_BUFFER_BYTES as u64, value_parser = clap::value_parser!(u64).range(0..=crate::MAX_UDP_BUFFER_BYTES as u64))]
    pub udp_buffer: u64,
    /// UDP sockets on the TURN port, each read by its own task (1-64;
    /// default: one per CPU).
    #[arg(long, env = "TINCAN_TURN_UDP_LISTENERS", value_parser = clap::value_parser!(u64).range(1..=crate::MAX_UDP_LISTENERS as u64))]
    pub udp_listeners: Option<u64>,
    /// Disable the TCP listener.
    #[arg(long, env = "TINCAN_TURN_NO_TCP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_tcp: bool,
    /// TURN-over-TLS listen address (e.g. 0.0.0.0:443); TLS is off unless
    /// this, the certificate and the key are all given.
    #[arg(long, env = "TINCAN_TURN_TLS_ADDR")]
    pub turn_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for TURN over TLS.
    #[arg(long, env = "TINCAN_TURN_TLS_CERT")]
    pub turn_tls_cert: Option<PathBuf>,
    /// PEM private key for TURN over TLS.
    #[arg(long, env = "TINCAN_TURN_TLS_KEY")]
    pub turn_tls_key: Option<PathBuf>,
    /// The DNS name in the TLS certificate, advertised to the fleet as
    /// `turns:NAME:PORT` (PORT: the TLS listen port, unless given as
    /// `NAME:PORT`, e.g. behind a load balancer); no `turns:` without it.
    #[arg(long, env = "TINCAN_TURN_TLS_NAME")]
    pub turn_tls_name: Option<TlsName>,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, env = "TINCAN_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: SocketAddr,
    /// How long a drain waits for allocations to end before closing them.
    #[arg(long, env = "TINCAN_DRAIN_GRACE_SECS", default_value_t = 600)]
    pub drain_grace_secs: u64,
    /// Log as JSON lines.
    #[arg(long, env = "TINCAN_LOG_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub log_json: bool,
    /// Log filter.
    #[arg(long = "log", env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub rust_log: String,
    #[command(flatten)]
    pub fleet: FleetSettings,
    #[command(flatten)]
    pub sfu: SfuSettings,
}

/// The audio SFU for group calls (docs/sfu.md).
#[derive(Debug, clap::Args)]
pub struct SfuSettings {
    /// Turn the SFU and its control API off.
    #[arg(long, env = "TINCAN_SFU_DISABLED", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub sfu_disabled: bool,
    /// Where the SFU control API listens (token-authenticated HTTP).
    #[arg(long, env = "TINCAN_SFU_CONTROL_ADDR", default_value = "0.0.0.0:7881")]
    pub sfu_control_addr: SocketAddr,
    /// Secret shared with the signaling side for the control tokens, and
    /// used for nothing else; required unless the SFU is disabled, at least
    /// 32 bytes (e.g. `openssl rand -hex 32`).
    #[arg(long, env = "TINCAN_SFU_CONTROL_SECRET", hide_env_values = true)]
    pub sfu_control_secret: Option<Secret>,
    /// Control connections open at once from one client address (0: no
    /// limit); 64 are open at most in all.
    #[arg(long, env = "TINCAN_SFU_CONTROL_CONNS_PER_IP", default_value_t = crate::sfu::DEFAULT_CONTROL_CONNECTIONS_PER_IP)]
    pub sfu_control_conns_per_ip: usize,
    /// The one UDP port of all SFU media, on the TURN listen IP.
    #[arg(long, env = "TINCAN_SFU_UDP_PORT", default_value_t = tincan_sfu_control::DEFAULT_UDP_PORT)]
    pub sfu_udp_port: u16,
    /// Receive slots per participant (the loudest speakers), 1-16.
    #[arg(long, env = "TINCAN_SFU_SLOTS", default_value_t = tincan_sfu_control::DEFAULT_SLOTS as u16, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sfu_slots: u16,
    /// Participants per SFU room.
    #[arg(long, env = "TINCAN_SFU_ROOM_MAX", default_value_t = tincan_sfu_control::DEFAULT_ROOM_MAX)]
    pub sfu_room_max: usize,
    /// The control URL advertised to the fleet (default: `http://` the
    /// control listener's IP, or the public IP when it listens on every
    /// address, and its port).
    #[arg(long, env = "TINCAN_SFU_CONTROL_URL")]
    pub sfu_control_url: Option<String>,
}

/// Logs unless `RUST_LOG` says otherwise: info, without the WebRTC
/// core's per-connection warnings that are part of normal set-up (DTLS
/// without a server name, SCTP's first packet arriving before the
/// association is configured).
pub const DEFAULT_LOG_FILTER: &str = "info,rtc_dtls::config=error,rtc_sctp::endpoint=error";

/// A CIDR list from a flag or variable.
#[derive(Debug, Clone)]
pub struct Ranges(pub Vec<IpNet>);

fn ranges(list: &str) -> Result<Ranges, crate::PeerFilterError> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(Ranges(Vec::new()));
    }
    parse_ranges(list).map(Ranges)
}

/// Joining the fleet: where and as whom to heartbeat.
#[derive(Debug, clap::Args)]
pub struct FleetSettings {
    /// DynamoDB table to register and heartbeat in (e.g.
    /// `tincan-media-nodes`); no heartbeat when unset. `DYNAMODB_ENDPOINT`
    /// points it at an emulator, where the table is created if missing.
    #[arg(long, env = "TINCAN_MEDIA_NODES_TABLE")]
    pub media_nodes_table: Option<String>,
    /// This node's id in the fleet (default: hostname and TURN port).
    #[arg(long, env = "TINCAN_NODE_ID")]
    pub node_id: Option<String>,
    /// Region or zone reported to the fleet (default: `AWS_REGION`, else
    /// `local`).
    #[arg(long, env = "TINCAN_REGION")]
    pub region: Option<String>,
    /// The AWS region (Lambda and EC2 set it): the DynamoDB client's, and
    /// the node's region when `TINCAN_REGION` is unset.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    #[command(flatten)]
    pub dynamo: DynamoSettings,
    /// Seconds between heartbeats; each keeps the record alive three times
    /// as long.
    #[arg(long, env = "TINCAN_HEARTBEAT_SECS", default_value_t = heartbeat::DEFAULT_HEARTBEAT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_secs: u64,
}
