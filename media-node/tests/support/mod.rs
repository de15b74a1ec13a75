//! Test helpers: a node on a free loopback port, a minimal hand-built TURN
//! client (stun crate messages over a real UDP socket), and coturn's
//! `turnutils_*` tools as independent clients and peers.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Method, Setter, CLASS_ERROR_RESPONSE, CLASS_INDICATION,
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CREATE_PERMISSION, METHOD_DATA,
    METHOD_REFRESH, METHOD_SEND,
};
use stun::textattrs::TextAttribute;
use tincan_media_node::{
    ControlSecret, MediaNode, MediaNodeConfig, PeerFilter, SfuConfig, TurnSecret,
};
use tokio::net::UdpSocket;
use turn::proto::data::Data;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn::proto::PROTO_UDP;

pub mod sfu_client;

pub const SECRET: &str = "test-shared-secret-of-at-least-32-bytes";
/// The SFU control secret of the tests' nodes (`TINCAN_SFU_CONTROL_SECRET`).
pub const CONTROL_SECRET: &str = "test-sfu-control-secret-of-32-bytes-or-more";
pub const REALM: &str = "tincan";
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn secret() -> TurnSecret {
    TurnSecret::new(SECRET)
}

pub fn control_secret() -> ControlSecret {
    ControlSecret::new(CONTROL_SECRET).expect("32 bytes or more")
}

/// A node on 127.0.0.1, free port, UDP and TCP, with loopback peers
/// allowed (the tests' peers are on loopback), and the SFU on loopback with
/// [`control_secret`].
pub async fn start_node() -> MediaNode {
    start_node_with(|_| {}).await
}

pub async fn start_node_with(tweak: impl FnOnce(&mut MediaNodeConfig)) -> MediaNode {
    let mut config = MediaNodeConfig::new(secret())
        .with_listen(SocketAddr::new(LOCALHOST, 0))
        .with_peers(PeerFilter::default().allow_loopback());
    config.sfu = Some(SfuConfig::loopback(control_secret()));
    tweak(&mut config);
    tincan_media_node::start(config).await.expect("node starts")
}

/// A free UDP port on loopback (bound then released).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind((LOCALHOST, 0)).expect("bind");
    s.local_addr().expect("addr").port()
}

/// The outcome of an authenticated TURN request.
#[derive(Debug)]
pub enum Outcome {
    Ok(Message),
    Error(u16),
}

impl Outcome {
    pub fn code(&self) -> Option<u16> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Error(code) => Some(*code),
        }
    }
}

/// A minimal TURN client over one UDP socket: long-term credentials, the
/// 401 nonce dance, Allocate, Refresh, CreatePermission, Send.
pub struct TurnClient {
    pub socket: UdpSocket,
    /// Set for TURN over TCP: requests go down this stream instead.
    tcp: Option<tokio::sync::Mutex<tokio::net::TcpStream>>,
    server: SocketAddr,
    username: String,
    password: String,
    realm: String,
    nonce: Option<String>,
    /// LIFETIME of the last successful Allocate.
    pub granted_lifetime: Option<Duration>,
}

impl TurnClient {
    pub async fn new(server: SocketAddr, username: &str, password: &str) -> Self {
        Self {
            socket: UdpSocket::bind((LOCALHOST, 0)).await.expect("bind client"),
            tcp: None,
            server,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: REALM.to_owned(),
            nonce: None,
            granted_lifetime: None,
        }
    }

    /// A client with a fresh credential for `user` under the test secret.
    pub async fn for_user(server: SocketAddr, user: &str) -> Self {
        let cred = secret().mint(user, now(), 600);
        Self::new(server, &cred.username, &cred.password).await
    }

    /// A client for `user` speaking TURN over a new TCP connection.
    pub async fn over_tcp(server: SocketAddr, user: &str) -> Self {
        let mut client = Self::for_user(server, user).await;
        let stream = tokio::net::TcpStream::connect(server)
            .await
            .expect("TCP connect");
        client.tcp = Some(tokio::sync::Mutex::new(stream));
        client
    }

    /// Closes the TCP connection, if any.
    pub fn close_tcp(&mut self) {
        self.tcp = None;
    }

    pub async fn request(
        &mut self,
        method: Method,
        attrs: Vec<Box<dyn Setter>>,
    ) -> anyhow::Result<Outcome> {
        for _ in 0..3 {
            let m = self.build_request(method, &attrs)?;
            let reply = self.round_trip(&m).await?;
            if reply.typ.class == CLASS_SUCCESS_RESPONSE {
                return Ok(Outcome::Ok(reply));
            }
            let mut err = ErrorCodeAttribute::default();
            err.get_from(&reply)
                .map_err(|e| anyhow!("no error code: {e}"))?;
            let code = err.code.0;
            let fresh_nonce = TextAttribute::get_from_as(&reply, ATTR_NONCE).ok();
            // 401 without credentials yet, or 438 stale nonce: retry once
            // with the server's nonce. A 401 to credentials is final.
            let retry = (code == 401 && self.nonce.is_none()) || code == 438;
            if let (true, Some(nonce)) = (retry, fresh_nonce) {
                if let Ok(realm) = TextAttribute::get_from_as(&reply, ATTR_REALM) {
                    if self.realm.is_empty() {
                        self.realm = realm.text;
                    }
                }
                self.nonce = Some(nonce.text);
                continue;
            }
            return Ok(Outcome::Error(code));
        }
        bail!("too many retries")
    }

    fn build_request(&self, method: Method, attrs: &[Box<dyn Setter>]) -> anyhow::Result<Message> {
        let id = TransactionId::new();
        let typ = MessageType::new(method, CLASS_REQUEST);
        let mut setters: Vec<&dyn Setter> = vec![&id, &typ];
        setters.extend(attrs.iter().map(|a| a.as_ref()));
        let mut auth: Vec<Box<dyn Setter>> = Vec::new();
        if let Some(nonce) = &self.nonce {
            auth.push(Box::new(TextAttribute::new(
                ATTR_USERNAME,
                self.username.clone(),
            )));
            auth.push(Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())));
            auth.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.clone())));
            auth.push(Box::new(MessageIntegrity::new_long_term_integrity(
                self.username.clone(),
                self.realm.clone(),
                self.password.clone(),
            )));
        }
        setters.extend(auth.iter().map(|a| a.as_ref()));
        let mut m = Message::new();
        m.write_header();
        for s in setters {
            s.add_to(&mut m).map_err(|e| anyhow!("build: {e}"))?;
        }
        Ok(m)
    }

    async fn round_trip_tcp(
        &self,
        stream: &tokio::sync::Mutex<tokio::net::TcpStream>,
        m: &Message,
    ) -> anyhow::Result<Message> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = stream.lock().await;
        stream.write_all(&m.raw).await?;
        let read = async {
            loop {
                let mut head = [0u8; 20];
                stream.read_exact(&mut head).await?;
                let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                let mut raw = head.to_vec();
                raw.resize(20 + len, 0);
                stream.read_exact(&mut raw[20..]).await?;
                let mut reply = Message::new();
                reply.raw = raw;
                if reply.decode().is_ok() && reply.transaction_id == m.transaction_id {
                    return anyhow::Ok(reply);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .context("no reply over TCP")?
    }

    async fn round_trip(&self, m: &Message) -> anyhow::Result<Message> {
        if let Some(stream) = &self.tcp {
            return self.round_trip_tcp(stream, m).await;
        }
        for _ in 0..5 {
            self.socket.send_to(&m.raw, self.server).await?;
            let mut buf = vec![0u8; 2048];
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(got) =
                tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
            {
                let (n, _) = got?;
                let mut reply = Message::new();
                reply.raw = buf[..n].to_vec();
                if reply.decode().is_ok() && reply.transaction_id == m.transaction_id {
                    return Ok(reply);
                }
            }
        }
        bail!("no reply from {}", self.server)
    }

    /// Allocate; on success the relayed address.
    pub async fn allocate(&mut self) -> anyhow::Result<Result<SocketAddr, u16>> {
        let outcome = self
            .request(
                METHOD_ALLOCATE,
                vec![Box::new(RequestedTransport {
                    protocol: PROTO_UDP,
                })],
            )
            .await?;
        Ok(match outcome {
            Outcome::Ok(reply) => {
                let mut lifetime = Lifetime::default();
                if lifetime.get_from(&reply).is_ok() {
                    self.granted_lifetime = Some(lifetime.0);
                }
                let mut relayed = RelayedAddress::default();
                relayed
                    .get_from(&reply)
                    .map_err(|e| anyhow!("no relayed address: {e}"))?;
                Ok(SocketAddr::new(relayed.ip, relayed.port))
            }
            Outcome::Error(code) => Err(code),
        })
    }

    pub async fn refresh(&mut self, lifetime: Duration) -> anyhow::Result<Outcome> {
        self.request(METHOD_REFRESH, vec![Box::new(Lifetime(lifetime))])
            .await
    }

    pub async fn create_permission(&mut self, peer: SocketAddr) -> anyhow::Result<Outcome> {
        self.request(
            METHOD_CREATE_PERMISSION,
            vec![Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            })],
        )
        .await
    }

    /// A Send indication carrying `data` to `peer`.
    pub async fn send_to_peer(&self, peer: SocketAddr, data: &[u8]) -> anyhow::Result<()> {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(Data(data.to_vec())),
        ])
        .map_err(|e| anyhow!("build: {e}"))?;
        self.socket.send_to(&m.raw, self.server).await?;
        Ok(())
    }

    /// The next Data indication within `wait`: (peer, data).
    pub async fn recv_data(&self, wait: Duration) -> Option<(SocketAddr, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
        {
            let mut m = Message::new();
            m.raw = buf[..n].to_vec();
            if m.decode().is_err() || m.typ != MessageType::new(METHOD_DATA, CLASS_INDICATION) {
                continue;
            }
            let mut peer = PeerAddress::default();
            let mut data = Data::default();
            if peer.get_from(&m).is_ok() && data.get_from(&m).is_ok() {
                return Some((SocketAddr::new(peer.ip, peer.port), data.0));
            }
        }
        None
    }
}

pub fn is_error_class(m: &Message) -> bool {
    m.typ.class == CLASS_ERROR_RESPONSE
}

/// coturn's tools, or a clear failure naming the package to install.
pub fn require_coturn_tools() {
    for tool in ["turnutils_uclient", "turnutils_peer"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} missing: run `bash tests/setup.sh` (Debian package coturn)"
        );
    }
}

/// A `turnutils_peer` echo peer on a free loopback port, killed on drop.
pub struct EchoPeer {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl EchoPeer {
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_udp_port();
        let child = tokio::process::Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning turnutils_peer")?;
        // Wait until it echoes.
        let probe = UdpSocket::bind((LOCALHOST, 0)).await?;
        let addr = SocketAddr::new(LOCALHOST, port);
        for _ in 0..50 {
            probe.send_to(b"ping", addr).await?;
            let mut buf = [0u8; 16];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(100), probe.recv_from(&mut buf)).await
            {
                return Ok(Self { addr, child });
            }
        }
        bail!("turnutils_peer did not come up on {addr}")
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What `turnutils_uclient` reported.
#[derive(Debug)]
pub struct UclientReport {
    pub success: bool,
    pub sent: u64,
    pub received: u64,
    pub lost: Option<u64>,
    pub output: String,
}

/// Runs `turnutils_uclient` against `server` with `extra` flags and a REST
/// credential, bounded by `limit`.
pub async fn run_uclient(
    server: SocketAddr,
    username: &str,
    password: &str,
    extra: &[&str],
    limit: Duration,
) -> anyhow::Result<UclientReport> {
    let mut cmd = tokio::process::Command::new("turnutils_uclient");
    cmd.args([
        "-p",
        &server.port().to_string(),
        "-u",
        username,
        "-w",
        password,
    ])
    .args(extra)
    .arg(server.ip().to_string())
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .context("turnutils_uclient timed out")??;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last_number_after = |key: &str| -> Option<u64> {
        output.lines().rev().find_map(|line| {
            let rest = &line[line.find(key)? + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
    };
    Ok(UclientReport {
        success: out.status.success(),
        sent: last_number_after("tot_send_msgs=").unwrap_or(0),
        received: last_number_after("tot_recv_msgs=").unwrap_or(0),
        lost: last_number_after("Total lost packets "),
        output,
    })
}

/// Runs `clients` × `messages` audio-sized (160 B) packets through
/// `turnutils_uclient` on `server` (with `transport` flags, e.g. `-t`,
/// `-t -S`) to an echo peer, and asserts every one came back.
pub async fn assert_uclient_relays_without_loss(
    server: SocketAddr,
    transport: &[&str],
    clients: u64,
    messages: u64,
) {
    let peer = EchoPeer::start().await.expect("peer");
    let cred = secret().mint("alice", now(), 600);
    let (clients_arg, messages_arg) = (clients.to_string(), messages.to_string());
    let peer_port = peer.addr.port().to_string();
    let mut args = transport.to_vec();
    args.extend_from_slice(&[
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-m",
        &clients_arg,
        "-n",
        &messages_arg,
        "-l",
        "160",
        "-z",
        "5",
        "-c",
    ]);
    let report = run_uclient(
        server,
        &cred.username,
        &cred.password,
        &args,
        Duration::from_secs(60),
    )
    .await
    .expect("uclient ran");
    assert!(report.success, "uclient failed:\n{}", report.output);
    assert_eq!(report.sent, clients * messages, "{}", report.output);
    assert_eq!(report.received, clients * messages, "{}", report.output);
    assert_eq!(report.lost, Some(0), "{}", report.output);
}

/// Heartbeats `node` into `store` as `id` every 250 ms, its record living
/// `ttl_secs` (whole seconds, at least one more than the interval): a fleet
/// that notices a dead node within seconds, for the fault tests.
pub fn heartbeat_into(
    store: &std::sync::Arc<dyn tincan_fleet::MediaNodeStore>,
    node: &std::sync::Arc<MediaNode>,
    id: &str,
    ttl_secs: u64,
) -> tincan_media_node::heartbeat::Heartbeat {
    let config =
        tincan_media_node::heartbeat::HeartbeatConfig::new(id, "local", Duration::from_millis(250))
            .with_ttl_secs(ttl_secs);
    tincan_media_node::heartbeat::spawn(
        std::sync::Arc::clone(node),
        std::sync::Arc::clone(store),
        config,
    )
}

/// Two live nodes heartbeating as `node-a` and `node-b` into one in-memory
/// registry, their records living `ttl_secs`, and the fleet over it: the
/// set-up of the node-kill tests. Dropping a beat kills that node's
/// registration.
pub struct TwoNodeFleet {
    pub store: std::sync::Arc<dyn tincan_fleet::MediaNodeStore>,
    pub nodes: [std::sync::Arc<MediaNode>; 2],
    pub beats: [Option<tincan_media_node::heartbeat::Heartbeat>; 2],
    pub fleet: tincan_fleet::FleetIceServers,
}

/// [`TwoNodeFleet`], once both nodes are listed alive.
pub async fn two_node_fleet(ttl_secs: u64) -> TwoNodeFleet {
    let store: std::sync::Arc<dyn tincan_fleet::MediaNodeStore> =
        std::sync::Arc::new(tincan_fleet::InMemoryMediaNodeStore::new());
    let a = std::sync::Arc::new(start_node().await);
    let b = std::sync::Arc::new(start_node().await);
    let beats = [
        Some(heartbeat_into(&store, &a, "node-a", ttl_secs)),
        Some(heartbeat_into(&store, &b, "node-b", ttl_secs)),
    ];
    while store.list_alive(now()).await.unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fleet = tincan_fleet::FleetIceServers::new(std::sync::Arc::clone(&store), secret(), 600);
    TwoNodeFleet {
        store,
        nodes: [a, b],
        beats,
        fleet,
    }
}
