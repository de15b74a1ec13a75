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
//! - Fail-safe defaults, as coturn's: a peer deny-list (private, loopback,
//!   link-local and metadata, multicast and reserved ranges; 403) with an
//!   allow-list over it ([`PeerFilter`]); stateless nonces, so
//!   unauthenticated requests cost no memory; TCP/TLS connections closed
//!   when silent or idle, capped per client address, and their allocations
//!   deleted with them; a secret of at least 32 bytes.
//! - Allocation quotas per user and per client address (486) and drain:
//!   [`MediaNode::drain`] stops new allocations (403) while existing ones
//!   run out.
//! - Counters for Prometheus ([`MetricsSnapshot::to_prometheus`]).
//! - The audio SFU for group calls and its authenticated control API
//!   (`docs/sfu.md`, [`SfuConfig`]), on one UDP port of its own.
//!
//! Embed one with [`start`]; the `tincan-media-node` binary wraps it with
//! flags, `/metrics` and SIGTERM handling.

mod admission;
pub mod conn_caps;
mod front;
pub mod heartbeat;
mod metrics;
mod nonce;
pub mod peer_filter;
mod relay;
mod rewrite;
pub mod settings;
pub mod sfu;
pub mod tcp;
pub mod tcp_listener;
pub mod tls;
mod udp_socket;

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
pub use peer_filter::{PeerFilter, PeerFilterError};
pub use sfu::SfuConfig;
pub use tincan_sfu_control::ControlSecret;
pub use tincan_turn_credentials::TurnSecret;
pub use tls::TlsError;

use admission::{Admission, Policy};
use front::FrontConn;
use relay::{PendingOwner, RelayPorts};
use udp_socket::UdpOptions;

/// The default TURN port.
pub const DEFAULT_TURN_PORT: u16 = 3478;
/// The shortest TURN secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Default live allocations per user: one relayed user in a room of 8
/// needs 7 peer connections x 2 (UDP and TCP candidates) = 14.
pub const DEFAULT_ALLOCATIONS_PER_USER: u32 = 16;
/// Default live allocations per client IP address.
pub const DEFAULT_ALLOCATIONS_PER_IP: u32 = 128;
/// Default open TCP/TLS connections per client IP address.
pub const DEFAULT_TCP_CONNECTIONS_PER_IP: usize = 256;
/// Default seconds a TCP/TLS connection may take to deliver its first
/// complete STUN message (TLS handshake included).
pub const DEFAULT_TCP_FIRST_MESSAGE_SECS: u64 = 10;
/// Default seconds a TCP/TLS connection may stay idle.
pub const DEFAULT_TCP_IDLE_SECS: u64 = 300;
/// Default lifetime of a nonce, seconds.
pub const DEFAULT_NONCE_TTL_SECS: u64 = 3600;
/// Default `SO_RCVBUF` and `SO_SNDBUF` asked for on UDP listener and relay
/// sockets: 2 MiB, about 2,500 small datagrams (Linux doubles the figure
/// for its bookkeeping, and caps it at `net.core.rmem_max`).
pub const DEFAULT_UDP_BUFFER_BYTES: usize = 2 << 20;
/// Largest socket buffer accepted in the configuration.
pub const MAX_UDP_BUFFER_BYTES: usize = 1 << 30;
/// Most UDP listener sockets (and reading tasks) on the TURN port.
pub const MAX_UDP_LISTENERS: usize = 64;

/// Default number of UDP listener sockets: one per CPU the process may use.
pub fn default_udp_listeners() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_UDP_LISTENERS)
}

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
    /// Live allocations one client IP address may hold; 0 for no limit.
    pub max_allocations_per_ip: u32,
    /// Open TURN-over-TCP connections at most (and as many over TLS).
    pub max_tcp_connections: usize,
    /// Open TCP (and TLS) connections from one IP address; 0 for no limit.
    pub max_tcp_connections_per_ip: usize,
    /// Seconds a TCP/TLS connection has to deliver its first STUN message.
    pub tcp_first_message_secs: u64,
    /// Seconds a TCP/TLS connection may pass with no frame either way.
    pub tcp_idle_secs: u64,
    /// Which peers relays may reach (default: coturn's deny-list).
    pub peers: PeerFilter,
    /// How long a nonce stays good, seconds.
    pub nonce_ttl_secs: u64,
    /// Longest allocation lifetime granted, seconds (clients refresh
    /// before it runs out); at most 3600, the `turn` crate's own cap.
    pub max_allocation_lifetime_secs: u32,
    /// The audio SFU and its control API; off when `None` (the default:
    /// it needs a control secret of its own, [`SfuConfig::loopback`]).
    pub sfu: Option<SfuConfig>,
    /// `SO_RCVBUF` and `SO_SNDBUF` asked for on the UDP listener and relay
    /// sockets, bytes; 0 keeps the kernel's defaults.
    pub udp_buffer_bytes: usize,
    /// UDP sockets on the TURN port (`SO_REUSEPORT`), each read by its own
    /// task; the kernel spreads clients over them by address and port.
    pub udp_listeners: usize,
}

impl MediaNodeConfig {
    /// Loopback defaults: 127.0.0.1:3478, relay ports 49152-65535, realm
    /// `tincan`, 16 allocations per user and 128 per client address, the
    /// default peer deny-list.
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
            max_allocations_per_user: DEFAULT_ALLOCATIONS_PER_USER,
            max_allocations_per_ip: DEFAULT_ALLOCATIONS_PER_IP,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_ip: DEFAULT_TCP_CONNECTIONS_PER_IP,
            tcp_first_message_secs: DEFAULT_TCP_FIRST_MESSAGE_SECS,
            tcp_idle_secs: DEFAULT_TCP_IDLE_SECS,
            peers: PeerFilter::default(),
            nonce_ttl_secs: DEFAULT_NONCE_TTL_SECS,
            max_allocation_lifetime_secs: 3600,
            sfu: None,
            udp_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            udp_listeners: default_udp_listeners(),
        }
    }

    /// Same, with `peers` deciding which peers relays may reach.
    pub fn with_peers(mut self, peers: PeerFilter) -> Self {
        self.peers = peers;
        self
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
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::WeakSecret {
                len: self.secret.len(),
            });
        }
        for (name, secs) in [
            ("first message", self.tcp_first_message_secs),
            ("idle", self.tcp_idle_secs),
            ("nonce lifetime", self.nonce_ttl_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
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
        if let Some(sfu) = &self.sfu {
            sfu.validate()?;
        }
        if self.udp_buffer_bytes > MAX_UDP_BUFFER_BYTES {
            return Err(ConfigError::UdpBuffer(self.udp_buffer_bytes));
        }
        if !(1..=MAX_UDP_LISTENERS).contains(&self.udp_listeners) {
            return Err(ConfigError::UdpListeners(self.udp_listeners));
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
    #[error(
        "the TURN secret is {len} bytes; at least 32 are required \
         (e.g. `openssl rand -hex 32`)"
    )]
    WeakSecret { len: usize },
    #[error("the TCP {0} timeout must be at least 1 s")]
    ZeroTimeout(&'static str),
    #[error("SFU slots must be 1-16, not {0}")]
    SfuSlots(usize),
    #[error("an SFU room must hold at least 2 participants, not {0}")]
    SfuRoomMax(usize),
    #[error("UDP socket buffer of {0} bytes is over the 1 GiB limit")]
    UdpBuffer(usize),
    #[error("{0} UDP listeners: between 1 and 64 are allowed")]
    UdpListeners(usize),
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
    sfu_control_addr: Option<SocketAddr>,
    sfu_udp_addr: Option<SocketAddr>,
    udp_listeners: usize,
    udp_buffers: (usize, usize),
    server: Server,
    admission: Arc<Admission>,
    closing: Arc<AtomicBool>,
    /// The TCP and TLS accept loops and the crate nonce's renewal.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
    let udp_options = UdpOptions {
        buffer_bytes: config.udp_buffer_bytes,
        reuse_port: config.udp_listeners > 1,
    };
    let (udp, tcp) = bind_listeners(config.listen, config.tcp, udp_options).await?;
    let udp_addr = udp.local_addr().map_err(|source| MediaNodeError::Bind {
        addr: config.listen,
        source,
    })?;
    // The other listener sockets share the port, now fixed.
    let mut more_udp = Vec::new();
    for _ in 1..config.udp_listeners {
        more_udp.push(udp_socket::bind(udp_addr, udp_options).map_err(|source| {
            MediaNodeError::Bind {
                addr: udp_addr,
                source,
            }
        })?);
    }
    let udp_buffers = udp_socket::buffer_sizes(&udp).map_err(|source| MediaNodeError::Bind {
        addr: udp_addr,
        source,
    })?;
    if udp_socket::capped(udp_buffers, config.udp_buffer_bytes) {
        tracing::warn!(
            asked = config.udp_buffer_bytes,
            receive = udp_buffers.0,
            send = udp_buffers.1,
            "the kernel granted smaller UDP socket buffers than configured; raise \
             net.core.rmem_max and net.core.wmem_max to avoid drops under load"
        );
    }

    let metrics = Arc::new(metrics::Metrics::default());
    let admission = Arc::new(Admission::new(
        Policy {
            secret: config.secret.clone(),
            realm: config.realm.clone(),
            max_per_user: config.max_allocations_per_user,
            max_per_ip: config.max_allocations_per_ip,
            max_lifetime_secs: config.max_allocation_lifetime_secs,
            peers: config.peers.clone(),
            nonce_ttl_secs: config.nonce_ttl_secs,
        },
        Arc::clone(&metrics),
    ));
    let closing = Arc::new(AtomicBool::new(false));
    let stream_limits = tcp::StreamLimits {
        max_connections: config.max_tcp_connections,
        max_per_ip: config.max_tcp_connections_per_ip,
        first_message: Duration::from_secs(config.tcp_first_message_secs),
        idle: Duration::from_secs(config.tcp_idle_secs),
    };

    let listener = |inner: Arc<dyn Conn + Send + Sync>,
                    shape: Box<dyn FnOnce(FrontConn) -> FrontConn>| {
        let pending = Arc::new(PendingOwner::default());
        let front = FrontConn::new(
            inner,
            Arc::clone(&admission),
            Arc::clone(&pending),
            Arc::clone(&closing),
        );
        ConnConfig {
            conn: Arc::new(shape(front)),
            relay_addr_generator: Box::new(RelayPorts {
                bind_ip: config.relay_bind_ip(),
                public_ip,
                min_port: config.relay_port_min,
                max_port: config.relay_port_max,
                buffer_bytes: config.udp_buffer_bytes,
                admission: Arc::clone(&admission),
                pending,
            }),
        }
    };

    // The node's own requests to the crate go in through the UDP listener.
    let (inject, injected) = tokio::sync::mpsc::channel(4);
    let mut conn_configs = vec![listener(
        Arc::new(udp),
        Box::new(move |front: FrontConn| front.with_injected(injected)),
    )];
    for socket in more_udp {
        conn_configs.push(listener(Arc::new(socket), Box::new(|front| front)));
    }
    let mut tcp_addr = None;
    let mut tasks = Vec::new();
    if let Some(tcp) = tcp {
        let (mux, task) = tcp::TcpMux::start(tcp, None, stream_limits, Arc::clone(&metrics))
            .map_err(|source| MediaNodeError::Bind {
                addr: udp_addr,
                source,
            })?;
        tcp_addr = Some(udp_addr);
        tasks.push(task);
        conn_configs.push(listener(mux, Box::new(FrontConn::for_streams)));
    }
    let mut tls_addr = None;
    if let Some((addr, acceptor)) = tls {
        let bind_err = |source| MediaNodeError::Bind { addr, source };
        let tls_listener = tcp_listener::bind(addr).map_err(bind_err)?;
        tls_addr = Some(tls_listener.local_addr().map_err(bind_err)?);
        let (mux, task) = tcp::TcpMux::start(
            tls_listener,
            Some(acceptor),
            stream_limits,
            Arc::clone(&metrics),
        )
        .map_err(bind_err)?;
        tasks.push(task);
        conn_configs.push(listener(mux, Box::new(FrontConn::for_streams)));
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
    tasks.push(tokio::spawn(front::keep_crate_nonce(
        inject,
        Arc::clone(&admission),
    )));
    wait_for_crate_nonce(&admission).await;

    let (mut sfu_control_addr, mut sfu_udp_addr) = (None, None);
    if let Some(sfu) = &config.sfu {
        let running = sfu::start(
            sfu,
            config.listen.ip(),
            public_ip,
            config.peers.clone(),
            Arc::clone(&metrics),
            admission.draining_flag(),
        )
        .await?;
        sfu_control_addr = Some(running.control_addr);
        sfu_udp_addr = Some(running.udp_addr);
        tasks.extend(running.tasks);
    }

    tracing::info!(
        %udp_addr,
        tcp = tcp_addr.is_some(),
        tls_addr = ?tls_addr,
        %public_ip,
        udp_listeners = config.udp_listeners,
        udp_receive_buffer = udp_buffers.0,
        relay_ports = %format!("{}-{}", config.relay_port_min, config.relay_port_max),
        realm = %config.realm,
        denied_peers = config.peers.denied().len(),
        allowed_peers = config.peers.allowed().len(),
        "media node listening"
    );
    Ok(MediaNode {
        udp_addr,
        tcp_addr,
        tls_addr,
        public_ip,
        relay_ports: (config.relay_port_min, config.relay_port_max),
        sfu_control_addr,
        sfu_udp_addr,
        udp_listeners: config.udp_listeners,
        udp_buffers,
        server,
        admission,
        closing,
        tasks: std::sync::Mutex::new(tasks),
    })
}

/// Until the crate has issued the node its nonce (at once, unless the
/// runtime is starved); requests that arrive before are dropped and
/// retransmitted.
async fn wait_for_crate_nonce(admission: &Admission) {
    let wait = async {
        loop {
            let learned = admission.crate_nonce_learned.notified();
            if admission.crate_nonce().is_some() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), learned).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        tracing::warn!("the TURN server has issued no nonce yet; still trying");
    }
}

/// Binds UDP and TCP on the same port; with port 0 retries until a port is
/// free on both.
async fn bind_listeners(
    addr: SocketAddr,
    tcp: bool,
    options: UdpOptions,
) -> Result<(UdpSocket, Option<TcpListener>), MediaNodeError> {
    let bind_err = |source| MediaNodeError::Bind { addr, source };
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = udp_socket::bind(addr, options).map_err(bind_err)?;
        if !tcp {
            return Ok((udp, None));
        }
        let port = udp.local_addr().map_err(bind_err)?.port();
        match tcp_listener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(listener) => return Ok((udp, Some(listener))),
            Err(err) => last = Some(err),
        }
    }
    Err(bind_err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "no common UDP/TCP port")
    })))
}

/// The crate's own credential check, behind the front door's: same key.
/// Every request reaching the crate has passed the front door (which
/// checks expiry) or was made by the node itself, so expiry is not checked
/// again here: a closed TCP connection's allocation must be deletable after
/// its credential expired.
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
        Ok(self.admission.key_unchecked(username, realm))
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

    /// Where the SFU control API listens, if the SFU runs.
    pub fn sfu_control_addr(&self) -> Option<SocketAddr> {
        self.sfu_control_addr
    }

    /// The SFU's media UDP address (bound), if the SFU runs.
    pub fn sfu_udp_addr(&self) -> Option<SocketAddr> {
        self.sfu_udp_addr
    }

    /// How many UDP sockets listen on the TURN port.
    pub fn udp_listeners(&self) -> usize {
        self.udp_listeners
    }

    /// The receive and send buffer sizes the kernel gave the UDP listener,
    /// bytes (on Linux twice what it granted, and at most twice
    /// `net.core.rmem_max` / `wmem_max`).
    pub fn udp_buffer_sizes(&self) -> (usize, usize) {
        self.udp_buffers
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.admission.metrics.snapshot()
    }

    /// Live allocations.
    pub fn allocations(&self) -> u64 {
        self.metrics().allocations
    }

    /// Stops taking new allocations (Allocate gets 403) and SFU joins (503
    /// `draining`); existing ones keep relaying, can refresh, and run out.
    pub fn drain(&self) {
        if !self.admission.is_draining() {
            tracing::info!(allocations = self.allocations(), "media node draining");
        }
        self.admission.set_draining();
    }

    pub fn is_draining(&self) -> bool {
        self.admission.is_draining()
    }

    /// Waits until no allocation and no SFU participant is left or
    /// `timeout` passes; true if none is left.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let released = self.admission.released.notified();
                if self.metrics().load() == 0 {
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
                .tasks
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
