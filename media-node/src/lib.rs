//! The Tincan media node: a TURN relay (RFC 5766/8656) on the webrtc-rs
//! `turn` crate, for browsers that cannot reach each other directly.
//!
//! What this crate adds around the `turn` server:
//! - TURN REST API credentials (`expiry:userId`, base64 HMAC-SHA1 password
//!   under a secret shared with the signaling side, see
//!   `tincan-turn-credentials`); wrong, expired and foreign credentials get
//!   401 Unauthorized.
//! - UDP and TCP listeners on one address (TURN over TCP is a framing
//!   multiplexer in front of the crate's datagram server, see [`tcp`]),
//!   and optionally TURN over TLS on its own address (the same framing
//!   inside rustls, see [`tls`]).
//! - Relay sockets in a configured port range, advertised at a public IP.
//! - A per-user allocation quota (486) and drain: [`MediaNode::drain`] stops
//!   new allocations (403) while existing ones run out.
//! - Counters for Prometheus ([`MetricsSnapshot::to_prometheus`]).
//!
//! Embed one with [`start`]; the `tincan-media-node` binary wraps it with
//! flags, `/metrics` and SIGTERM handling.

mod admission;
mod front;
pub mod heartbeat;
mod metrics;
mod relay;
pub mod tcp;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::Conn;

pub use metrics::{AuthFailure, MetricsSnapshot};
pub use tincan_turn_credentials::TurnSecret;
pub use tls::TlsError;

use admission::Admission;
use front::FrontConn;
use relay::{PendingUser, RelayPorts};

/// The default TURN port.
pub const DEFAULT_TURN_PORT: u16 = 3478;

/// How to run a media node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaNodeConfig {
    /// Where TURN listens, on UDP and (if `tcp`) TCP alike. Port 0 picks a
    /// free port, the same for both.
    pub listen: SocketAddr,
    /// Also listen on TCP.
    pub tcp: bool,
    /// Where TURN over TLS listens (TCP), e.g. `0.0.0.0:443`; off when
    /// unset. Needs `tls_cert_path` and `tls_key_path`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TURN over TLS, leaf first.
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key for TURN over TLS.
    pub tls_key_path: Option<PathBuf>,
    /// The IP put in relayed addresses (what peers send to). Defaults to the
    /// relay bind IP; required when that is unspecified (0.0.0.0).
    pub public_ip: Option<IpAddr>,
    /// Where relay sockets bind. Defaults to the listen IP.
    pub relay_bind_ip: Option<IpAddr>,
    /// Relay ports, inclusive.
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    /// The TURN realm.
    pub realm: String,
    /// The secret shared with the signaling side.
    pub secret: TurnSecret,
    /// Live allocations one user may hold; 0 for no limit.
    pub max_allocations_per_user: u32,
    /// Open TURN-over-TCP connections at most.
    pub max_tcp_connections: usize,
    /// Longest allocation lifetime granted, seconds (clients refresh
    /// before it runs out); at most 3600, the `turn` crate's own cap.
    pub max_allocation_lifetime_secs: u32,
}

impl MediaNodeConfig {
    /// Loopback defaults: 127.0.0.1:3478, relay ports 49152-65535, realm
    /// `tincan`, 10 allocations per user.
    pub fn new(secret: TurnSecret) -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_TURN_PORT),
            tcp: true,
            tls_listen: None,
            tls_cert_path: None,
            tls_key_path: None,
            public_ip: None,
            relay_bind_ip: None,
            relay_port_min: 49152,
            relay_port_max: 65535,
            realm: "tincan".to_owned(),
            secret,
            max_allocations_per_user: 10,
            max_tcp_connections: 10_000,
            max_allocation_lifetime_secs: 3600,
        }
    }

    /// Same, listening on `listen`.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    fn relay_bind_ip(&self) -> IpAddr {
        self.relay_bind_ip.unwrap_or(self.listen.ip())
    }

    fn public_ip(&self) -> Result<IpAddr, ConfigError> {
        let ip = self.public_ip.unwrap_or(self.relay_bind_ip());
        if ip.is_unspecified() {
            return Err(ConfigError::PublicIpRequired);
        }
        Ok(ip)
    }

    fn validate(&self) -> Result<IpAddr, ConfigError> {
        if self.relay_port_min == 0 || self.relay_port_max < self.relay_port_min {
            return Err(ConfigError::RelayPortRange {
                min: self.relay_port_min,
                max: self.relay_port_max,
            });
        }
        if self.realm.is_empty() {
            return Err(ConfigError::EmptyRealm);
        }
        if !(1..=3600).contains(&self.max_allocation_lifetime_secs) {
            return Err(ConfigError::AllocationLifetime(
                self.max_allocation_lifetime_secs,
            ));
        }
        if self.tls_listen.is_some()
            && (self.tls_cert_path.is_none() || self.tls_key_path.is_none())
        {
            return Err(ConfigError::TlsCertificateRequired);
        }
        self.public_ip()
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("relay port range {min}-{max} is empty or includes port 0")]
    RelayPortRange { min: u16, max: u16 },
    #[error("the realm is empty")]
    EmptyRealm,
    #[error("allocation lifetime {0} s is not within 1-3600 s")]
    AllocationLifetime(u32),
    #[error("relays bind to an unspecified address: set the public IP")]
    PublicIpRequired,
    #[error("TURN over TLS needs a certificate chain and a private key")]
    TlsCertificateRequired,
}

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaNodeError {
    #[error("invalid media node configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TURN server: {0}")]
    Turn(#[from] turn::Error),
    #[error("TURN over TLS: {0}")]
    Tls(#[from] TlsError),
}

/// A running media node.
pub struct MediaNode {
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    public_ip: IpAddr,
    relay_ports: (u16, u16),
    server: Server,
    admission: Arc<Admission>,
    closing: Arc<AtomicBool>,
    /// The TCP and TLS accept loops.
    stream_tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for MediaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaNode")
            .field("udp_addr", &self.udp_addr)
            .field("tcp_addr", &self.tcp_addr)
            .field("tls_addr", &self.tls_addr)
            .field("public_ip", &self.public_ip)
            .finish_non_exhaustive()
    }
}

/// Binds the listeners and starts relaying.
pub async fn start(config: MediaNodeConfig) -> Result<MediaNode, MediaNodeError> {
    let public_ip = config.validate()?;
    // Load the certificate before binding anything: a bad file fails fast.
    let tls = match (
        &config.tls_listen,
        &config.tls_cert_path,
        &config.tls_key_path,
    ) {
        (Some(addr), Some(cert), Some(key)) => Some((*addr, tls::acceptor(cert, key)?)),
        _ => None,
    };
    let (udp, tcp) = bind_listeners(config.listen, config.tcp).await?;
    let udp_addr = udp.local_addr().map_err(|source| MediaNodeError::Bind {
        addr: config.listen,
        source,
    })?;

    let metrics = Arc::new(metrics::Metrics::default());
    let admission = Arc::new(Admission::new(
        config.secret.clone(),
        config.realm.clone(),
        config.max_allocations_per_user,
        config.max_allocation_lifetime_secs,
        Arc::clone(&metrics),
    ));
    let closing = Arc::new(AtomicBool::new(false));

    let listener = |inner: Arc<dyn Conn + Send + Sync>| {
        let pending = Arc::new(PendingUser::default());
        ConnConfig {
            conn: Arc::new(FrontConn {
                inner,
                admission: Arc::clone(&admission),
                pending: Arc::clone(&pending),
                closing: Arc::clone(&closing),
            }),
            relay_addr_generator: Box::new(RelayPorts {
                bind_ip: config.relay_bind_ip(),
                public_ip,
                min_port: config.relay_port_min,
                max_port: config.relay_port_max,
                admission: Arc::clone(&admission),
                pending,
            }),
        }
    };

    let mut conn_configs = vec![listener(Arc::new(udp))];
    let mut tcp_addr = None;
    let mut stream_tasks = Vec::new();
    if let Some(tcp) = tcp {
        let (mux, task) =
            tcp::TcpMux::start(tcp, None, config.max_tcp_connections, Arc::clone(&metrics))
                .map_err(|source| MediaNodeError::Bind {
                    addr: udp_addr,
                    source,
                })?;
        tcp_addr = Some(udp_addr);
        stream_tasks.push(task);
        conn_configs.push(listener(mux));
    }
    let mut tls_addr = None;
    if let Some((addr, acceptor)) = tls {
        let bind_err = |source| MediaNodeError::Bind { addr, source };
        let tls_listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        tls_addr = Some(tls_listener.local_addr().map_err(bind_err)?);
        let (mux, task) = tcp::TcpMux::start(
            tls_listener,
            Some(acceptor),
            config.max_tcp_connections,
            Arc::clone(&metrics),
        )
        .map_err(bind_err)?;
        stream_tasks.push(task);
        conn_configs.push(listener(mux));
    }

    let server = Server::new(ServerConfig {
        conn_configs,
        realm: config.realm.clone(),
        auth_handler: Arc::new(RestApiAuth {
            admission: Arc::clone(&admission),
        }),
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: None,
    })
    .await?;

    tracing::info!(
        %udp_addr,
        tcp = tcp_addr.is_some(),
        tls_addr = ?tls_addr,
        %public_ip,
        relay_ports = %format!("{}-{}", config.relay_port_min, config.relay_port_max),
        realm = %config.realm,
        "media node listening"
    );
    Ok(MediaNode {
        udp_addr,
        tcp_addr,
        tls_addr,
        public_ip,
        relay_ports: (config.relay_port_min, config.relay_port_max),
        server,
        admission,
        closing,
        stream_tasks: std::sync::Mutex::new(stream_tasks),
    })
}

/// Binds UDP and TCP on the same port; with port 0 retries until a port is
/// free on both.
async fn bind_listeners(
    addr: SocketAddr,
    tcp: bool,
) -> Result<(UdpSocket, Option<TcpListener>), MediaNodeError> {
    let bind_err = |source| MediaNodeError::Bind { addr, source };
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        if !tcp {
            return Ok((udp, None));
        }
        let port = udp.local_addr().map_err(bind_err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(listener) => return Ok((udp, Some(listener))),
            Err(err) => last = Some(err),
        }
    }
    Err(bind_err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "no common UDP/TCP port")
    })))
}

/// The crate's own credential check, behind the front door's: same key.
struct RestApiAuth {
    admission: Arc<Admission>,
}

impl turn::auth::AuthHandler for RestApiAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.admission
            .key_for(username, realm, now)
            .map_err(|why| turn::Error::Other(format!("{why:?}")))
    }
}

impl MediaNode {
    /// The UDP listen address (the TURN/STUN port).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP listen address, if TCP is on (same port as UDP).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The TURN-over-TLS listen address, if TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The address clients should be given: public IP and TURN port.
    pub fn public_addr(&self) -> SocketAddr {
        SocketAddr::new(self.public_ip, self.udp_addr.port())
    }

    /// The relay port range, inclusive.
    pub fn relay_ports(&self) -> (u16, u16) {
        self.relay_ports
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.admission.metrics.snapshot()
    }

    /// Live allocations.
    pub fn allocations(&self) -> u64 {
        self.metrics().allocations
    }

    /// Stops taking new allocations (Allocate gets 403); existing ones keep
    /// relaying, can refresh, and run out.
    pub fn drain(&self) {
        if !self.admission.is_draining() {
            tracing::info!(allocations = self.allocations(), "media node draining");
        }
        self.admission.set_draining();
    }

    pub fn is_draining(&self) -> bool {
        self.admission.is_draining()
    }

    /// Waits until no allocation is left or `timeout` passes; true if none
    /// is left.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let released = self.admission.released.notified();
                if self.allocations() == 0 {
                    return;
                }
                // Also poll, in case a release raced the registration.
                let _ = tokio::time::timeout(Duration::from_millis(200), released).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Drains, waits up to `grace` for allocations to end, then shuts down.
    pub async fn drain_and_shutdown(&self, grace: Duration) -> Result<(), MediaNodeError> {
        self.drain();
        if !self.drained(grace).await {
            tracing::warn!(
                allocations = self.allocations(),
                "drain grace period over, closing remaining allocations"
            );
        }
        self.shutdown().await
    }

    /// Closes the listeners and every allocation now.
    pub async fn shutdown(&self) -> Result<(), MediaNodeError> {
        self.closing.store(true, Ordering::SeqCst);
        self.stop_tcp();
        self.server.close().await?;
        tracing::info!(udp_addr = %self.udp_addr, "media node stopped");
        Ok(())
    }
}

impl MediaNode {
    fn stop_tcp(&self) {
        let tasks = std::mem::take(
            &mut *self
                .stream_tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for MediaNode {
    fn drop(&mut self) {
        // Without shutdown() the UDP read loop lives on until the runtime
        // ends; the TCP and TLS sides at least stop accepting.
        self.stop_tcp();
    }
}
