//! Assembles the local stack from its configuration and serves it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use axum::Router;
use tincan_accounts::config::refresh_ttl_from_env;
use tincan_accounts::{AccountService, PasswordParams};
use tincan_http_api::{ApiState, CorsOrigins, TurnSettings};
use tincan_media_node::{MediaNode, MediaNodeConfig};
use tincan_signaling::Limits;
use tincan_store::{ConnectionStore, DynamoConnectionStore, MemoryConnectionStore};
use tincan_token::{TokenKeys, DEFAULT_ACCESS_TTL_SECS};
use tincan_turn_credentials::{TurnSecret, DEFAULT_TTL_SECS};
use tincan_ws_api::{
    AccountsCallLog, AccountsUsers, IceServerSource, NoIceServers, TurnRestIceServers, WsApi,
    WsApiConfig,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::services::ServeDir;
use tracing::info;

use crate::backend::{Backend, InProcess, LambdaForward};
use crate::config::LocalConfig;
use crate::gateway::{router, GatewayState};
use crate::sockets::{LocalPush, SocketTable};

/// A running local stack.
#[derive(Debug)]
pub struct LocalStack {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Open sockets (for tests and metrics).
    pub sockets: SocketTable,
    media_node: Option<MediaNode>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Ends participants whose resume grace ran out, once a second.
    sweeper: Option<JoinHandle<()>>,
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
    std::fs::write(&path, &fresh).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(fresh.into_bytes())
}

/// Connection state in memory, or in DynamoDB at `DYNAMODB_ENDPOINT`.
async fn connections_store(config: &LocalConfig) -> anyhow::Result<Arc<dyn ConnectionStore>> {
    let Some(endpoint) = &config.dynamodb_endpoint else {
        return Ok(Arc::new(MemoryConnectionStore::new()));
    };
    let client = tincan_store::dynamo_client_from_env().await;
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
        let jwt_secret = secret(config.jwt_secret.as_deref(), &config.data_dir, "jwt-secret")?;
        let turn_secret = secret(
            config.turn_secret.as_deref(),
            &config.data_dir,
            "turn-secret",
        )?;
        let tokens = TokenKeys::new(&jwt_secret, DEFAULT_ACCESS_TTL_SECS)
            .context("TINCAN_JWT_SECRET must be at least 32 bytes")?;
        let sockets = SocketTable::default();
        let stores = config
            .accounts
            .open()
            .await
            .context("opening the accounts store")?;
        let accounts = AccountService::new(
            stores.clone(),
            tokens.clone(),
            PasswordParams::default(),
            refresh_ttl_from_env()?,
        )?;
        let media_node = match config.turn_addr {
            Some(addr) => {
                let node = tincan_media_node::start(
                    MediaNodeConfig::new(TurnSecret::new(turn_secret.clone())).with_listen(addr),
                )
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
        let mut sweeper = None;
        let backend: Arc<dyn Backend> = match &config.lambda_url {
            Some(url) => {
                info!(%url, "forwarding WebSocket events to Lambdas");
                if config.dynamodb_endpoint.is_some() {
                    // Make sure the Lambdas find their table.
                    connections_store(&config).await?;
                }
                Arc::new(LambdaForward::new(url.clone()))
            }
            None => {
                let api = WsApi::new(WsApiConfig {
                    limits: Limits {
                        max_message_bytes: config.max_message,
                        room_max: config.room_max,
                        resume_grace_secs: config.resume_grace_secs,
                        ..Limits::default()
                    },
                    tokens: tokens.clone(),
                    store: connections_store(&config).await?,
                    push: Arc::new(LocalPush::new(sockets.clone())),
                    ice,
                    calls: Some(Arc::new(AccountsCallLog::new(stores.calls.clone()))),
                    users: Some(Arc::new(AccountsUsers::new(stores.users.clone()))),
                });
                let sweeping = api.clone();
                sweeper = Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        sweeping.sweep(crate::gateway::now_ms()).await;
                    }
                }));
                Arc::new(InProcess::new(api))
            }
        };
        let gateway = router(GatewayState {
            backend,
            sockets: sockets.clone(),
            limits: config.limits,
            stage: config.stage.clone(),
        });
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
            // The web app is served from this same origin.
            cors: CorsOrigins::None,
        });
        let app = Router::new()
            .merge(gateway)
            .merge(http_api)
            .fallback_service(ServeDir::new(&config.web_dir));

        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let addr = listener.local_addr()?;
        // Signaling frames are small and latency-bound: no Nagle delay.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await
        });
        info!(%addr, web_dir = %config.web_dir.display(), "tincan-local listening");
        Ok(Self {
            addr,
            sockets,
            media_node,
            shutdown: Some(shutdown),
            task,
            sweeper,
        })
    }

    /// Stops accepting, and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
        if let Some(node) = self.media_node.take() {
            let _ = node.shutdown().await;
        }
    }
}
