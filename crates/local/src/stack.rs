//! Assembles the local stack from its configuration and serves it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use std::sync::OnceLock;

use async_trait::async_trait;
use tincan_accounts::{AccountEvents, AccountService};
use tincan_http_api::{ApiState, TurnSettings};
use tincan_media_node::{ControlSecret, MediaNode, MediaNodeConfig};
use tincan_settings::Secret;
use tincan_store::{ConnectionStore, DynamoConnectionStore, MemoryConnectionStore};
use tincan_token::{TokenKeys, DEFAULT_ACCESS_TTL_SECS};
use tincan_turn_credentials::{TurnSecret, DEFAULT_TTL_SECS};
use tincan_ws_api::{
    AccountsCallLog, AccountsUsers, IceServerSource, NoIceServers, TurnRestIceServers, WsApi,
    WsApiConfig,
};
use tokio::task::JoinHandle;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::info;

use crate::backend::{Backend, InProcess, LambdaForward};
use crate::config::{ListenerLimits, LocalConfig};
use crate::gateway::{management_router, router};
use crate::gateway_state::{now_ms, GatewayState};
use crate::listener::{connection_budget, serve, Listener};
use crate::sockets::{LocalPush, SocketTable};

/// How long a stopping stack waits for its sockets' `$disconnect`.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running local stack.
#[derive(Debug)]
pub struct LocalStack {
    /// Where it listens: web app, HTTP API, `/ws`, `/healthz`.
    pub addr: SocketAddr,
    /// Where the Management API (`/@connections`) listens.
    pub management_addr: SocketAddr,
    /// Open sockets (for tests and metrics).
    pub sockets: SocketTable,
    media_node: Option<MediaNode>,
    public: Listener,
    management: Listener,
    /// Ends participants whose resume grace ran out, once a second, and
    /// notes that the stack is alive (for the next start).
    sweeper: Option<JoinHandle<()>>,
    /// Where the sweeper notes that the stack is alive (signaling in
    /// process only).
    data_dir: Option<std::path::PathBuf>,
}

/// The secret `given`, or one kept in `data_dir/file` (made on first start),
/// so tokens and credentials stay valid across restarts of the local stack.
pub(crate) fn secret(given: Option<&str>, data_dir: &Path, file: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(value) = given {
        return Ok(value.as_bytes().to_vec());
    }
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let fresh: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Owner-only from the moment it exists.
    tincan_accounts::write_private_file(&path, fresh.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(fresh.into_bytes())
}

/// Closes a deleted account's sockets through the in-process handlers (set
/// once they exist); with the Lambdas forwarded to, writes the deleted-user
/// marker their `$connect` checks instead, as the `http-api` Lambda does.
#[derive(Default)]
struct CloseDeletedUsersSockets {
    api: OnceLock<WsApi>,
    markers: OnceLock<DynamoConnectionStore>,
}

#[async_trait]
impl AccountEvents for CloseDeletedUsersSockets {
    async fn account_deleted(&self, user_id: &str) {
        if let Some(markers) = self.markers.get() {
            // Outlives every access token issued before the deletion.
            let until = now_ms() / 1000 + DEFAULT_ACCESS_TTL_SECS + 300;
            if let Err(err) = markers.mark_user_deleted(user_id, until).await {
                tracing::error!(%user_id, error = %err, "deleted user not marked; its tokens may open sockets until they expire");
            }
        }
        match self.api.get() {
            Some(api) => {
                if let Err(err) = api
                    .disconnect_user(user_id, now_ms())
                    .await
                {
                    tracing::warn!(error = %err, "could not close a deleted user's sockets");
                }
            }
            None => tracing::warn!(
                "account deleted; its open sockets stay until they close (signaling runs in the Lambdas)"
            ),
        }
    }

    /// With the Lambdas forwarded to, the revoked-session markers their
    /// `$connect` checks, as the `http-api` Lambda writes them (in process,
    /// `$connect` asks the session store itself).
    async fn sessions_revoked(&self, user_id: &str, session_ids: &[String]) {
        let Some(markers) = self.markers.get() else {
            return;
        };
        let until = now_ms() / 1000 + DEFAULT_ACCESS_TTL_SECS + 300;
        for sid in session_ids {
            if let Err(err) = markers.mark_session_revoked(sid, until).await {
                tracing::error!(%user_id, error = %err, "revoked session not marked; its tokens may open sockets until they expire");
            }
        }
    }
}

/// Connection state in memory, or in DynamoDB at `DYNAMODB_ENDPOINT`.
async fn connections_store(config: &LocalConfig) -> anyhow::Result<Arc<dyn ConnectionStore>> {
    let Some(endpoint) = &config.dynamodb_endpoint else {
        return Ok(Arc::new(MemoryConnectionStore::new()));
    };
    let client = tincan_store::dynamo_client_from_env(Some(endpoint)).await;
    if let Err(err) = tincan_store::create_table(&client, &config.connections_table).await {
        // Most often: it exists already.
        info!(table = %config.connections_table, error = %err, "not creating the connections table");
    }
    info!(%endpoint, table = %config.connections_table, "connection state in DynamoDB");
    Ok(Arc::new(DynamoConnectionStore::new(
        client,
        config.connections_table.clone(),
    )))
}

impl LocalStack {
    /// Builds the stack from `config` and starts serving.
    pub async fn start(config: LocalConfig) -> anyhow::Result<Self> {
        let jwt_secret = secret(
            config.jwt_secret.as_ref().map(Secret::expose),
            &config.data_dir,
            "jwt-secret",
        )?;
        let turn_secret = secret(
            config.turn_secret.as_ref().map(Secret::expose),
            &config.data_dir,
            "turn-secret",
        )?;
        let sfu_secret = ControlSecret::new(secret(
            config.sfu_control_secret.as_ref().map(Secret::expose),
            &config.data_dir,
            "sfu-control-secret",
        )?)
        .context("TINCAN_SFU_CONTROL_SECRET")?;
        let tokens = TokenKeys::new(&jwt_secret, DEFAULT_ACCESS_TTL_SECS)
            .context("TINCAN_JWT_SECRET must be at least 32 bytes")?;
        let sockets = SocketTable::default();
        let stores = config
            .accounts
            .open()
            .await
            .context("opening the accounts store")?;
        let account_events = Arc::new(CloseDeletedUsersSockets::default());
        let accounts =
            AccountService::with_options(stores.clone(), tokens.clone(), config.account_options)?
                .with_events(account_events.clone());
        let media_node = match config.turn_addr {
            Some(addr) => {
                let mut node_config = MediaNodeConfig::new(TurnSecret::new(turn_secret.clone()))
                    .with_listen(addr)
                    // Browsers and peers here are all on loopback.
                    .with_peers(tincan_media_node::PeerFilter::default().allow_loopback());
                // The SFU of group calls: control API and media on free
                // loopback ports (the signaling and the SDP carry them).
                let mut sfu = tincan_media_node::SfuConfig::loopback(sfu_secret.clone());
                sfu.slots = config.sfu_slots.max(1);
                sfu.room_max = config.sfu_room_max;
                // The public listener's header timeout.
                sfu.control_header_timeout = config.listener.header_timeout;
                node_config.sfu = Some(sfu);
                let node = tincan_media_node::start(node_config)
                    .await
                    .with_context(|| format!("starting the embedded TURN server on {addr}"))?;
                info!(udp = %node.udp_addr(), "embedded media node listening");
                Some(node)
            }
            None => None,
        };
        let ice: Arc<dyn IceServerSource> = match &media_node {
            Some(node) => Arc::new(TurnRestIceServers::new(
                TurnSecret::new(turn_secret.clone()),
                node.udp_addr().to_string(),
                DEFAULT_TTL_SECS,
            )),
            None => Arc::new(NoIceServers),
        };
        let sfu_control = media_node.as_ref().and_then(|node| node.sfu_control_addr());
        let sfu_on = sfu_control.is_some();
        let sfu: Arc<dyn tincan_ws_api::SfuGateway> = match sfu_control {
            Some(addr) => {
                info!(control = %addr, "embedded SFU for rooms past TINCAN_MESH_MAX");
                Arc::new(tincan_ws_api::NodeSfu::new(
                    tincan_ws_api::SfuControlClient::new(sfu_secret.clone())
                        .context("building the SFU control client")?,
                    tincan_ws_api::FixedSfuNode(format!("http://{addr}")),
                ))
            }
            None => Arc::new(tincan_ws_api::NoSfu),
        };
        let mut sweeper = None;
        let mut data_dir = None;
        let backend: Arc<dyn Backend> = match &config.lambda_url {
            Some(url) => {
                info!(%url, "forwarding WebSocket events to Lambdas");
                if let Some(endpoint) = &config.dynamodb_endpoint {
                    // Make sure the Lambdas find their table.
                    connections_store(&config).await?;
                    let client = tincan_store::dynamo_client_from_env(Some(endpoint)).await;
                    let _ = account_events.markers.set(DynamoConnectionStore::new(
                        client,
                        config.connections_table.clone(),
                    ));
                }
                Arc::new(LambdaForward::new(url.clone()))
            }
            None => {
                let api = WsApi::new(WsApiConfig {
                    limits: config.signaling_limits(sfu_on),
                    tokens: tokens.clone(),
                    api_keys: config.api_keys.clone(),
                    store: connections_store(&config).await?,
                    push: Arc::new(LocalPush::new(sockets.clone())),
                    ice,
                    sfu,
                    calls: Some(Arc::new(AccountsCallLog::new(stores.calls.clone()))),
                    users: config.users_must_exist.then(|| {
                        Arc::new(
                            AccountsUsers::new(stores.users.clone())
                                .with_sessions(stores.sessions.clone()),
                        ) as Arc<dyn tincan_ws_api::UserDirectory>
                    }),
                });
                let _ = account_events.api.set(api.clone());
                // The previous run's sockets are gone with its process: close
                // the visits it left open (crate::leftover).
                let started_ms = now_ms();
                let last_alive = crate::leftover::last_alive(&config.data_dir);
                if let Err(err) =
                    crate::leftover::close_left_open(stores.calls.as_ref(), last_alive, started_ms)
                        .await
                {
                    tracing::warn!(error = %err, "could not close the visits a previous run left open");
                }
                crate::leftover::note_alive(&config.data_dir, started_ms);
                data_dir = Some(config.data_dir.clone());
                let alive_dir = config.data_dir.clone();
                let sweeping = api.clone();
                sweeper = Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                    let mut noted = tokio::time::Instant::now();
                    loop {
                        tick.tick().await;
                        let now_ms = now_ms();
                        sweeping.sweep(now_ms).await;
                        if noted.elapsed() >= crate::leftover::ALIVE_EVERY {
                            noted = tokio::time::Instant::now();
                            crate::leftover::note_alive(&alive_dir, now_ms);
                        }
                    }
                }));
                Arc::new(InProcess::new(api))
            }
        };
        let gateway_state = GatewayState::new(
            backend,
            sockets.clone(),
            config.limits,
            config.stage.clone(),
        );
        let management = management_router(gateway_state.clone());
        let gateway = router(gateway_state);
        let turn_url = media_node
            .as_ref()
            .map(|node| node.udp_addr().to_string())
            .or_else(|| config.turn_addr.map(|a| a.to_string()))
            .unwrap_or_else(|| "127.0.0.1:3478".to_owned());
        let http_api = tincan_http_api::router(ApiState {
            accounts,
            turn: TurnSettings {
                secret: TurnSecret::new(turn_secret.clone()),
                url: turn_url,
                ttl_secs: DEFAULT_TTL_SECS,
            },
            // The web app is served from this same origin; a copy served
            // elsewhere is allowed by TINCAN_CORS_ORIGINS.
            cors: config.cors.clone(),
        });
        // A request body that stalls as long as a head may is cut too.
        let body_timeout = RequestBodyTimeoutLayer::new(config.listener.header_timeout);
        let app = Router::new()
            .merge(gateway)
            .merge(http_api)
            .merge(crate::web_app::router(
                config.web_dir.as_deref(),
                config.addr,
            ))
            .layer(body_timeout.clone());
        let management = management.layer(body_timeout);

        // One budget of connections for both listeners, under the open-file
        // limit: most of it public, an eighth for the Management API.
        let budget = connection_budget(config.listener.max_conns);
        let management_share = (budget / 8).max(1);
        let public_limits = ListenerLimits {
            max_conns: budget.saturating_sub(management_share).max(1),
            ..config.listener
        };
        // Only the backend calls the Management API, from this machine.
        let management_limits = ListenerLimits {
            max_conns: management_share,
            max_conns_per_ip: 0,
            ..config.listener
        };
        // The media node's listeners' backlog (1024, not tokio's 128): a
        // burst of sign-ins and socket opens must not lose handshakes.
        let public = tincan_media_node::tcp_listener::bind(config.addr)
            .with_context(|| format!("binding {}", config.addr))?;
        let management_listener = tincan_media_node::tcp_listener::bind(config.management_addr)
            .with_context(|| {
                format!(
                    "binding {} (TINCAN_MANAGEMENT_ADDR)",
                    config.management_addr
                )
            })?;
        let public = serve("public", public, app, public_limits)?;
        let management = serve(
            "management",
            management_listener,
            management,
            management_limits,
        )?;
        let addr = public.addr;
        let management_addr = management.addr;
        let web_app = config
            .web_dir
            .as_ref()
            .map_or_else(|| "built in".to_owned(), |dir| dir.display().to_string());
        info!(%addr, %management_addr, %web_app, "tincan-local listening");
        Ok(Self {
            addr,
            management_addr,
            sockets,
            media_node,
            public,
            management,
            sweeper,
            data_dir,
        })
    }

    /// Closes every socket with 1001 and waits (a bounded while) for their
    /// `$disconnect`, then stops accepting and lets open connections finish
    /// for a moment.
    pub async fn stop(mut self) {
        if !self.sockets.close_all(SHUTDOWN_GRACE).await {
            tracing::warn!(
                open = self.sockets.len(),
                "sockets still closing after {SHUTDOWN_GRACE:?}; stopping anyway"
            );
        }
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
        if let Some(dir) = &self.data_dir {
            crate::leftover::note_alive(dir, now_ms());
        }
        self.public.stop().await;
        self.management.stop().await;
        if let Some(node) = self.media_node.take() {
            let _ = node.shutdown().await;
        }
    }
}
