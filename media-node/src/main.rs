//! `tincan-media-node`: the TURN relay and the audio SFU as a process, with Prometheus
//! `/metrics` and `/healthz`, JSON or text logs, SIGTERM/Ctrl-C drain, and
//! (with `TINCAN_MEDIA_NODES_TABLE`) a fleet heartbeat into DynamoDB.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use ipnet::IpNet;
use tincan_fleet::{DynamoMediaNodeStore, MediaNodeStore};
use tincan_media_node::heartbeat::{self, Heartbeat, HeartbeatConfig, TlsName};
use tincan_media_node::peer_filter::parse_ranges;
use tincan_media_node::{ControlSecret, MediaNode, MediaNodeConfig, PeerFilter, TurnSecret};
use tracing_subscriber::EnvFilter;

/// A Tincan media node: TURN relay over UDP, TCP and (optionally) TLS with
/// TURN REST API credentials.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TURN listen address, UDP and TCP.
    #[arg(long, env = "TINCAN_TURN_ADDR", default_value = "127.0.0.1:3478")]
    turn_addr: SocketAddr,
    /// Secret shared with the signaling side for TURN REST API credentials;
    /// required, at least 32 bytes (e.g. `openssl rand -hex 32`).
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    turn_secret: String,
    /// IP advertised in relayed addresses (defaults to the relay bind IP).
    #[arg(long, env = "TINCAN_TURN_PUBLIC_IP")]
    turn_public_ip: Option<IpAddr>,
    /// IP relay sockets bind to (defaults to the TURN listen IP).
    #[arg(long, env = "TINCAN_RELAY_BIND_IP")]
    relay_bind_ip: Option<IpAddr>,
    /// TURN realm.
    #[arg(long, env = "TINCAN_TURN_REALM", default_value = "tincan")]
    turn_realm: String,
    /// Lowest relay port.
    #[arg(long, env = "TINCAN_RELAY_PORT_MIN", default_value_t = 49152)]
    relay_port_min: u16,
    /// Highest relay port.
    #[arg(long, env = "TINCAN_RELAY_PORT_MAX", default_value_t = 65535)]
    relay_port_max: u16,
    /// Live allocations per user (0: no limit). 16 admits one relayed user
    /// in a room of 8 over UDP and TCP (7 x 2).
    #[arg(long, env = "TINCAN_TURN_USER_QUOTA", default_value_t = tincan_media_node::DEFAULT_ALLOCATIONS_PER_USER)]
    user_quota: u32,
    /// Live allocations per client IP address (0: no limit).
    #[arg(long, env = "TINCAN_TURN_IP_QUOTA", default_value_t = tincan_media_node::DEFAULT_ALLOCATIONS_PER_IP)]
    ip_quota: u32,
    /// Peer ranges relays may not reach, comma-separated CIDRs, replacing
    /// the default (coturn's private, loopback, link-local, multicast and
    /// reserved ranges); `none` denies nothing.
    #[arg(long, env = "TINCAN_TURN_DENIED_PEERS", value_parser = ranges)]
    denied_peers: Option<Ranges>,
    /// Peer ranges allowed over the deny-list, comma-separated CIDRs (e.g.
    /// `10.0.0.0/8` for peers on the node's own private network).
    #[arg(long, env = "TINCAN_TURN_ALLOWED_PEERS", value_parser = ranges)]
    allowed_peers: Option<Ranges>,
    /// Open TCP/TLS connections per client IP address (0: no limit).
    #[arg(long, env = "TINCAN_TURN_TCP_PER_IP", default_value_t = tincan_media_node::DEFAULT_TCP_CONNECTIONS_PER_IP)]
    tcp_per_ip: usize,
    /// Seconds a TCP/TLS connection has to send its first STUN message, and
    /// an SFU control connection its request head.
    #[arg(long, env = "TINCAN_TURN_TCP_FIRST_MESSAGE_SECS", default_value_t = tincan_media_node::DEFAULT_TCP_FIRST_MESSAGE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_first_message_secs: u64,
    /// Seconds a TCP/TLS connection may stay idle (no frame either way).
    #[arg(long, env = "TINCAN_TURN_TCP_IDLE_SECS", default_value_t = tincan_media_node::DEFAULT_TCP_IDLE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_idle_secs: u64,
    /// Longest allocation lifetime granted, seconds (1-3600).
    #[arg(long, env = "TINCAN_TURN_MAX_LIFETIME_SECS", default_value_t = 3600)]
    max_lifetime_secs: u32,
    /// SO_RCVBUF and SO_SNDBUF asked for on UDP listener and relay sockets,
    /// bytes (0: the kernel's defaults). Linux caps it at
    /// net.core.rmem_max / wmem_max; the node warns when it got less.
    #[arg(long, env = "TINCAN_TURN_UDP_BUFFER", default_value_t = tincan_media_node::DEFAULT_UDP_BUFFER_BYTES as u64, value_parser = clap::value_parser!(u64).range(0..=tincan_media_node::MAX_UDP_BUFFER_BYTES as u64))]
    udp_buffer: u64,
    /// UDP sockets on the TURN port, each read by its own task (1-64;
    /// default: one per CPU).
    #[arg(long, env = "TINCAN_TURN_UDP_LISTENERS", value_parser = clap::value_parser!(u64).range(1..=tincan_media_node::MAX_UDP_LISTENERS as u64))]
    udp_listeners: Option<u64>,
    /// Disable the TCP listener.
    #[arg(long, env = "TINCAN_TURN_NO_TCP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    no_tcp: bool,
    /// TURN-over-TLS listen address (e.g. 0.0.0.0:443); TLS is off unless
    /// this, the certificate and the key are all given.
    #[arg(long, env = "TINCAN_TURN_TLS_ADDR")]
    turn_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for TURN over TLS.
    #[arg(long, env = "TINCAN_TURN_TLS_CERT")]
    turn_tls_cert: Option<PathBuf>,
    /// PEM private key for TURN over TLS.
    #[arg(long, env = "TINCAN_TURN_TLS_KEY")]
    turn_tls_key: Option<PathBuf>,
    /// The DNS name in the TLS certificate, advertised to the fleet as
    /// `turns:NAME:PORT` (PORT: the TLS listen port, unless given as
    /// `NAME:PORT`, e.g. behind a load balancer); no `turns:` without it.
    #[arg(long, env = "TINCAN_TURN_TLS_NAME")]
    turn_tls_name: Option<TlsName>,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, env = "TINCAN_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    metrics_addr: SocketAddr,
    /// How long a drain waits for allocations to end before closing them.
    #[arg(long, env = "TINCAN_DRAIN_GRACE_SECS", default_value_t = 600)]
    drain_grace_secs: u64,
    /// Log as JSON lines.
    #[arg(long, env = "TINCAN_LOG_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    log_json: bool,
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    sfu: SfuArgs,
}

/// The audio SFU for group calls (docs/sfu.md).
#[derive(Debug, clap::Args)]
struct SfuArgs {
    /// Turn the SFU and its control API off.
    #[arg(long, env = "TINCAN_SFU_DISABLED", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    sfu_disabled: bool,
    /// Where the SFU control API listens (token-authenticated HTTP).
    #[arg(long, env = "TINCAN_SFU_CONTROL_ADDR", default_value = "0.0.0.0:7881")]
    sfu_control_addr: SocketAddr,
    /// Secret shared with the signaling side for the control tokens, and
    /// used for nothing else; required unless the SFU is disabled, at least
    /// 32 bytes (e.g. `openssl rand -hex 32`).
    #[arg(long, env = "TINCAN_SFU_CONTROL_SECRET", hide_env_values = true)]
    sfu_control_secret: Option<String>,
    /// Control connections open at once from one client address (0: no
    /// limit); 64 are open at most in all.
    #[arg(long, env = "TINCAN_SFU_CONTROL_CONNS_PER_IP", default_value_t = tincan_media_node::sfu::DEFAULT_CONTROL_CONNECTIONS_PER_IP)]
    sfu_control_conns_per_ip: usize,
    /// The one UDP port of all SFU media, on the TURN listen IP.
    #[arg(long, env = "TINCAN_SFU_UDP_PORT", default_value_t = tincan_sfu_control::DEFAULT_UDP_PORT)]
    sfu_udp_port: u16,
    /// Receive slots per participant (the loudest speakers), 1-16.
    #[arg(long, env = "TINCAN_SFU_SLOTS", default_value_t = tincan_sfu_control::DEFAULT_SLOTS as u16, value_parser = clap::value_parser!(u16).range(1..=16))]
    sfu_slots: u16,
    /// Participants per SFU room.
    #[arg(long, env = "TINCAN_SFU_ROOM_MAX", default_value_t = tincan_sfu_control::DEFAULT_ROOM_MAX)]
    sfu_room_max: usize,
    /// The control URL advertised to the fleet (default: `http://` the
    /// control listener's IP, or the public IP when it listens on every
    /// address, and its port).
    #[arg(long, env = "TINCAN_SFU_CONTROL_URL")]
    sfu_control_url: Option<String>,
}

/// Logs unless `RUST_LOG` says otherwise: info, without the WebRTC
/// core's per-connection warnings that are part of normal set-up (DTLS
/// without a server name, SCTP's first packet arriving before the
/// association is configured).
const DEFAULT_LOG_FILTER: &str = "info,rtc_dtls::config=error,rtc_sctp::endpoint=error";

/// A CIDR list from a flag or variable.
#[derive(Debug, Clone)]
struct Ranges(Vec<IpNet>);

fn ranges(list: &str) -> Result<Ranges, tincan_media_node::PeerFilterError> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(Ranges(Vec::new()));
    }
    parse_ranges(list).map(Ranges)
}

/// Joining the fleet: where and as whom to heartbeat.
#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// DynamoDB table to register and heartbeat in (e.g.
    /// `tincan-media-nodes`); no heartbeat when unset. `DYNAMODB_ENDPOINT`
    /// points it at an emulator, where the table is created if missing.
    #[arg(long, env = "TINCAN_MEDIA_NODES_TABLE")]
    media_nodes_table: Option<String>,
    /// This node's id in the fleet (default: hostname and TURN port).
    #[arg(long, env = "TINCAN_NODE_ID")]
    node_id: Option<String>,
    /// Region or zone reported to the fleet (default: `AWS_REGION`, else
    /// `local`).
    #[arg(long, env = "TINCAN_REGION")]
    region: Option<String>,
    /// Seconds between heartbeats; each keeps the record alive three times
    /// as long.
    #[arg(long, env = "TINCAN_HEARTBEAT_SECS", default_value_t = heartbeat::DEFAULT_HEARTBEAT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut config = MediaNodeConfig::new(TurnSecret::new(args.turn_secret.into_bytes()))
        .with_listen(args.turn_addr);
    config.tcp = !args.no_tcp;
    config.public_ip = args.turn_public_ip;
    config.relay_bind_ip = args.relay_bind_ip;
    config.realm = args.turn_realm;
    config.relay_port_min = args.relay_port_min;
    config.relay_port_max = args.relay_port_max;
    config.max_allocations_per_user = args.user_quota;
    config.max_allocations_per_ip = args.ip_quota;
    config.max_tcp_connections_per_ip = args.tcp_per_ip;
    config.tcp_first_message_secs = args.tcp_first_message_secs;
    config.tcp_idle_secs = args.tcp_idle_secs;
    let mut peers = match args.denied_peers {
        Some(Ranges(denied)) => PeerFilter::new(denied, Vec::new()),
        None => PeerFilter::default(),
    };
    if let Some(Ranges(allowed)) = args.allowed_peers {
        peers = peers.allow(allowed);
    }
    config.peers = peers;
    config.max_allocation_lifetime_secs = args.max_lifetime_secs;
    if !args.sfu.sfu_disabled {
        let secret = args.sfu.sfu_control_secret.context(
            "TINCAN_SFU_CONTROL_SECRET is required (at least 32 bytes, shared with the \
             signaling side), or turn the SFU off with TINCAN_SFU_DISABLED=true",
        )?;
        let mut sfu = tincan_media_node::SfuConfig::loopback(ControlSecret::new(secret)?);
        sfu.control_listen = args.sfu.sfu_control_addr;
        sfu.udp_port = args.sfu.sfu_udp_port;
        sfu.slots = usize::from(args.sfu.sfu_slots);
        sfu.room_max = args.sfu.sfu_room_max;
        sfu.max_control_connections_per_ip = args.sfu.sfu_control_conns_per_ip;
        // The control API's request head gets what a TURN TCP connection
        // gets for its first message: the node's one header timeout.
        sfu.control_header_timeout = Duration::from_secs(args.tcp_first_message_secs);
        config.sfu = Some(sfu);
    }
    config.udp_buffer_bytes = usize::try_from(args.udp_buffer)?;
    if let Some(n) = args.udp_listeners {
        config.udp_listeners = usize::try_from(n)?;
    }
    match (args.turn_tls_addr, args.turn_tls_cert, args.turn_tls_key) {
        (Some(addr), Some(cert), Some(key)) => {
            config.tls_listen = Some(addr);
            config.tls_cert_path = Some(cert);
            config.tls_key_path = Some(key);
        }
        (None, None, None) => {
            if args.turn_tls_name.is_some() {
                anyhow::bail!(
                    "TINCAN_TURN_TLS_NAME names the TURN-over-TLS listener: it needs \
                     TINCAN_TURN_TLS_ADDR, TINCAN_TURN_TLS_CERT and TINCAN_TURN_TLS_KEY"
                );
            }
        }
        // Half a TLS setup is a mistake an operator wants to hear about at
        // once, not a node that silently serves no `turns:`.
        _ => anyhow::bail!(
            "TURN over TLS needs TINCAN_TURN_TLS_ADDR, TINCAN_TURN_TLS_CERT and \
             TINCAN_TURN_TLS_KEY all set (or none)"
        ),
    }

    let node = Arc::new(
        tincan_media_node::start(config)
            .await
            .context("starting the media node")?,
    );
    if let Some(tls) = node.tls_addr() {
        match &args.turn_tls_name {
            Some(name) => tracing::info!(
                %tls,
                turns_addr = %name.host_port(tls.port()),
                "TURN over TLS listening"
            ),
            None => tracing::warn!(
                %tls,
                "TURN over TLS listening, but TINCAN_TURN_TLS_NAME is unset: no turns: \
                 URLs are advertised (clients need the certificate's DNS name)"
            ),
        }
    }

    let metrics_listener = tincan_media_node::tcp_listener::bind(args.metrics_addr)
        .with_context(|| format!("binding metrics on {}", args.metrics_addr))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::clone(&node));
    let http = tokio::spawn(async move { axum::serve(metrics_listener, app).await });
    let heartbeat = start_heartbeat(
        &args.fleet,
        args.turn_tls_name.clone(),
        args.sfu.sfu_control_url.clone(),
        &node,
    )
    .await?;

    shutdown_signal().await;
    tracing::info!("shutdown signal: draining");
    node.drain();
    // Tell the fleet at once, so no new room is placed here.
    if let Some(heartbeat) = &heartbeat {
        heartbeat.beat_now();
    }
    // /metrics and /healthz keep answering, and the heartbeat keeps saying
    // "draining", while allocations run out; a second signal stops at once.
    tokio::select! {
        done = node.drain_and_shutdown(Duration::from_secs(args.drain_grace_secs)) => done?,
        () = shutdown_signal() => {
            tracing::warn!(allocations = node.allocations(), "second signal: stopping now");
            node.shutdown().await?;
        }
    }
    if let Some(heartbeat) = heartbeat {
        heartbeat.stop(true).await;
    }
    http.abort();
    Ok(())
}

/// With `TINCAN_MEDIA_NODES_TABLE` set, registers the node in that table
/// and heartbeats it.
async fn start_heartbeat(
    args: &FleetArgs,
    tls_name: Option<TlsName>,
    sfu_control_url: Option<String>,
    node: &Arc<MediaNode>,
) -> anyhow::Result<Option<Heartbeat>> {
    let Some(table) = args
        .media_nodes_table
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    else {
        tracing::info!("TINCAN_MEDIA_NODES_TABLE unset: not joining a fleet");
        return Ok(None);
    };
    let node_id = args
        .node_id
        .clone()
        .unwrap_or_else(|| heartbeat::default_node_id(node.udp_addr().port()));
    tincan_fleet::validate_node_id(&node_id).context("TINCAN_NODE_ID")?;
    let region = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "local".to_owned());

    let client = tincan_store::dynamo_client_from_env().await;
    let emulator =
        std::env::var(tincan_store::DYNAMODB_ENDPOINT_ENV).is_ok_and(|e| !e.trim().is_empty());
    if emulator {
        if let Err(err) = tincan_fleet::create_media_nodes_table(&client, table).await {
            tracing::warn!(table, error = %err, "could not create the media nodes table");
        }
    }
    let store: Arc<dyn MediaNodeStore> = Arc::new(DynamoMediaNodeStore::new(client, table));
    let mut config = HeartbeatConfig::new(
        node_id.clone(),
        region.clone(),
        Duration::from_secs(args.heartbeat_secs),
    );
    if let Some(name) = tls_name {
        config = config.with_tls_name(name);
    }
    if let Some(url) = sfu_control_url.filter(|u| !u.trim().is_empty()) {
        config = config.with_sfu_control_url(url);
    }
    tracing::info!(
        table,
        node = %node_id,
        %region,
        interval_secs = args.heartbeat_secs,
        ttl_secs = config.ttl_secs,
        "heartbeating into the fleet"
    );
    Ok(Some(heartbeat::spawn(Arc::clone(node), store, config)))
}

async fn metrics(State(node): State<Arc<MediaNode>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics().to_prometheus(),
    )
}

async fn healthz(State(node): State<Arc<MediaNode>>) -> impl IntoResponse {
    if node.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ok")
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
