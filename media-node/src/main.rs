//! `tincan-media-node`: the TURN relay and the audio SFU as a process, with Prometheus
//! `/metrics` and `/healthz`, JSON or text logs, SIGTERM/Ctrl-C drain, and
//! (with `TINCAN_MEDIA_NODES_TABLE`) a fleet heartbeat into DynamoDB.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tincan_fleet::{DynamoMediaNodeStore, MediaNodeStore};
use tincan_media_node::heartbeat::{self, Heartbeat, HeartbeatConfig, TlsName};
use tincan_media_node::settings::{FleetSettings, Ranges, Settings};
use tincan_media_node::{ControlSecret, MediaNode, MediaNodeConfig, PeerFilter, TurnSecret};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Settings = tincan_settings::parse();
    let filter = EnvFilter::try_new(&args.rust_log)
        .unwrap_or_else(|_| EnvFilter::new(tincan_media_node::settings::DEFAULT_LOG_FILTER));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut config = MediaNodeConfig::new(TurnSecret::new(args.turn_secret.expose().as_bytes()))
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
        let secret = ControlSecret::new(secret.expose()).context("TINCAN_SFU_CONTROL_SECRET")?;
        let mut sfu = tincan_media_node::SfuConfig::loopback(secret);
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
    args: &FleetSettings,
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
        .or_else(|| args.aws_region.clone())
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "local".to_owned());

    let endpoint = args.dynamo.dynamodb_endpoint.as_deref();
    let client = tincan_aws::dynamo_client_from_env(endpoint).await;
    if endpoint.is_some() {
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
