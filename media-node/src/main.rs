//! `tincan-media-node`: the TURN relay as a process, with Prometheus
//! `/metrics` and `/healthz`, JSON or text logs, and SIGTERM/Ctrl-C drain.

use std::net::{IpAddr, SocketAddr};
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
use tincan_media_node::{MediaNode, MediaNodeConfig, TurnSecret};
use tracing_subscriber::EnvFilter;

/// A Tincan media node: TURN relay over UDP and TCP with TURN REST API
/// credentials.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TURN listen address, UDP and TCP.
    #[arg(long, env = "TINCAN_TURN_ADDR", default_value = "127.0.0.1:3478")]
    turn_addr: SocketAddr,
    /// Secret shared with the signaling side for TURN REST API credentials.
    #[arg(
        long,
        env = "TINCAN_TURN_SECRET",
        default_value = "tincan-dev-turn-secret",
        hide_env_values = true
    )]
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
    /// Live allocations per user (0: no limit).
    #[arg(long, env = "TINCAN_TURN_USER_QUOTA", default_value_t = 10)]
    user_quota: u32,
    /// Longest allocation lifetime granted, seconds (1-3600).
    #[arg(long, env = "TINCAN_TURN_MAX_LIFETIME_SECS", default_value_t = 3600)]
    max_lifetime_secs: u32,
    /// Disable the TCP listener.
    #[arg(long, env = "TINCAN_TURN_NO_TCP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    no_tcp: bool,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, env = "TINCAN_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    metrics_addr: SocketAddr,
    /// How long a drain waits for allocations to end before closing them.
    #[arg(long, env = "TINCAN_DRAIN_GRACE_SECS", default_value_t = 600)]
    drain_grace_secs: u64,
    /// Log as JSON lines.
    #[arg(long, env = "TINCAN_LOG_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
    config.max_allocation_lifetime_secs = args.max_lifetime_secs;

    let node = Arc::new(
        tincan_media_node::start(config)
            .await
            .context("starting the media node")?,
    );

    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding metrics on {}", args.metrics_addr))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::clone(&node));
    let http = tokio::spawn(async move { axum::serve(metrics_listener, app).await });

    shutdown_signal().await;
    tracing::info!("shutdown signal: draining");
    // /metrics and /healthz keep answering while allocations run out; a
    // second signal stops at once.
    tokio::select! {
        done = node.drain_and_shutdown(Duration::from_secs(args.drain_grace_secs)) => done?,
        () = shutdown_signal() => {
            tracing::warn!(allocations = node.allocations(), "second signal: stopping now");
            node.shutdown().await?;
        }
    }
    http.abort();
    Ok(())
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
