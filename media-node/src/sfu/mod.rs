//! The audio SFU (`docs/sfu.md`): each participant has one peer connection
//! to the node (the node answers), publishes its microphone on the first
//! audio m-line and receives `slots` audio streams, which the node fills
//! with the loudest other speakers of its room, rewriting SSRC, sequence
//! numbers and timestamps per slot ([`forward`]), and announces on the
//! `tincan` data channel ([`speakers`]). Opus is forwarded, never decoded.
//!
//! Built on the sans-IO `rtc` core of webrtc-rs, in layers that import
//! downwards only: [`room`] (membership, levels, slots and
//! `active-speakers`, with no connection at all) under [`core`] (every
//! connection and the forwarding, IO-free: it takes `now` and returns
//! datagrams and deadlines) under [`engine`] (the one task that owns the
//! UDP socket, the clock and the metrics); the control API ([`control`])
//! talks to the engine over a bounded channel.

pub(crate) mod connection;
pub(crate) mod control;
pub(crate) mod core;
pub(crate) mod engine;
pub(crate) mod forward;
pub(crate) mod red;
pub(crate) mod reports;
pub(crate) mod room;
pub(crate) mod speakers;
pub(crate) mod stun;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tincan_sfu_control::ControlSecret;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::{MediaNodeError, PeerFilter};

/// Default control connections open at once from one client address.
pub const DEFAULT_CONTROL_CONNECTIONS_PER_IP: usize = 8;

/// How the SFU runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SfuConfig {
    /// The secret control tokens are signed with
    /// (`TINCAN_SFU_CONTROL_SECRET`), shared with the signaling side only.
    pub secret: ControlSecret,
    /// Where the control API listens (`TINCAN_SFU_CONTROL_ADDR`).
    pub control_listen: SocketAddr,
    /// The UDP port of every participant's media (`TINCAN_SFU_UDP_PORT`);
    /// bound on the TURN listen IP; 0 picks a free port.
    pub udp_port: u16,
    /// Receive slots per participant (`TINCAN_SFU_SLOTS`).
    pub slots: usize,
    /// Participants per room (`TINCAN_SFU_ROOM_MAX`).
    pub room_max: usize,
    /// Control connections open at once; more are closed at accept.
    pub max_control_requests: usize,
    /// Control connections open at once from one client address
    /// (`TINCAN_SFU_CONTROL_CONNS_PER_IP`); 0 for no such cap.
    pub max_control_connections_per_ip: usize,
    /// Time a control connection has to send its request head.
    pub control_header_timeout: Duration,
}

impl SfuConfig {
    /// Loopback, free ports: the control API on `127.0.0.1:0`, media on a
    /// free UDP port; default slots and room size; tokens signed with
    /// `secret`.
    pub fn loopback(secret: ControlSecret) -> Self {
        Self {
            secret,
            control_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            udp_port: 0,
            slots: tincan_sfu_control::DEFAULT_SLOTS,
            room_max: tincan_sfu_control::DEFAULT_ROOM_MAX,
            max_control_requests: 64,
            max_control_connections_per_ip: DEFAULT_CONTROL_CONNECTIONS_PER_IP,
            control_header_timeout: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), crate::ConfigError> {
        if !(1..=16).contains(&self.slots) {
            return Err(crate::ConfigError::SfuSlots(self.slots));
        }
        if self.room_max < 2 {
            return Err(crate::ConfigError::SfuRoomMax(self.room_max));
        }
        Ok(())
    }
}

/// The running SFU.
pub(crate) struct Sfu {
    pub(crate) control_addr: SocketAddr,
    pub(crate) udp_addr: SocketAddr,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

/// Binds the media socket and the control listener and starts both.
pub(crate) async fn start(
    config: &SfuConfig,
    bind_ip: IpAddr,
    public_ip: IpAddr,
    peers: PeerFilter,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
) -> Result<Sfu, MediaNodeError> {
    let media_addr = SocketAddr::new(bind_ip, config.udp_port);
    let bind_err = |addr| move |source| MediaNodeError::Bind { addr, source };
    let socket = UdpSocket::bind(media_addr)
        .await
        .map_err(bind_err(media_addr))?;
    let udp_addr = socket.local_addr().map_err(bind_err(media_addr))?;
    let listener = crate::tcp_listener::bind(config.control_listen)
        .map_err(bind_err(config.control_listen))?;
    let control_addr = listener
        .local_addr()
        .map_err(bind_err(config.control_listen))?;
    let engine = engine::Engine::new(
        socket,
        engine::Settings {
            slots: config.slots,
            room_max: config.room_max,
            advertised: SocketAddr::new(public_ip, udp_addr.port()),
            peers,
        },
        Arc::clone(&metrics),
        draining,
    )
    .map_err(bind_err(media_addr))?;
    let (commands, receiver) = mpsc::channel(256);
    let engine_task = tokio::spawn(engine.run(receiver));
    let control_task = tokio::spawn(control::serve(
        listener,
        control::ControlState::new(commands, config.secret.clone()),
        config.max_control_requests,
        config.max_control_connections_per_ip,
        config.control_header_timeout,
    ));
    tracing::info!(%control_addr, %udp_addr, slots = config.slots, room_max = config.room_max, "SFU listening");
    Ok(Sfu {
        control_addr,
        udp_addr,
        tasks: vec![engine_task, control_task],
    })
}
