//! The fleet heartbeat: a task that registers this node in a
//! [`MediaNodeStore`] and refreshes its record every few seconds with its
//! address, ports, region, load and state, so the signaling side can place
//! rooms on it ([`tincan_fleet`]). A node that stops heartbeating drops out
//! when its record's TTL (three intervals by default) runs out.
//!
//! Load: live allocations and SFU participants from the node's counters
//! (their sum is the node's one load figure, [`tincan_fleet::node_load`]),
//! relayed bandwidth from
//! the change in relayed bytes between beats, and process CPU from
//! `/proc/self/stat` (Linux; 0 elsewhere). State: `draining` once
//! [`MediaNode::drain`] was called; call [`Heartbeat::beat_now`] after
//! draining so the fleet hears it at once rather than at the next tick.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tincan_fleet::{MediaNodeInfo, MediaNodeStore, NodeLoad, NodeState};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::MediaNode;

/// Seconds between heartbeats unless configured (`TINCAN_HEARTBEAT_SECS`).
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;

/// Clock ticks per second in `/proc/self/stat` (`USER_HZ`): 100 on every
/// Linux architecture we run on; reading it exactly would need `sysconf`.
const USER_HZ: f64 = 100.0;

/// What the heartbeat says about the node beyond what the node knows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// The node's id in the fleet (see [`tincan_fleet::validate_node_id`]).
    pub node_id: String,
    /// Region or zone.
    pub region: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// How long each heartbeat keeps the record alive, seconds.
    pub ttl_secs: u64,
    /// The name clients reach TURN over TLS at; with TLS on, the node
    /// advertises it as its `turns_addr`. `None`: no `turns:`.
    pub tls_name: Option<TlsName>,
    /// The SFU control URL to advertise (`TINCAN_SFU_CONTROL_URL`), e.g.
    /// on a private address; `None`: `http://` the control listener's IP
    /// (the public IP when it listens on every address) and port.
    pub sfu_control_url: Option<String>,
}

impl HeartbeatConfig {
    /// Beats every `interval`, each alive for three intervals (at least
    /// one second).
    pub fn new(node_id: impl Into<String>, region: impl Into<String>, interval: Duration) -> Self {
        Self {
            node_id: node_id.into(),
            region: region.into(),
            interval,
            ttl_secs: (interval * 3).as_secs_f64().ceil().max(1.0) as u64,
            tls_name: None,
            sfu_control_url: None,
        }
    }

    /// Advertises the SFU control API at `url`.
    pub fn with_sfu_control_url(mut self, url: String) -> Self {
        self.sfu_control_url = Some(url);
        self
    }

    /// Advertises TURN over TLS at `name` (when the node's TLS listener
    /// runs).
    pub fn with_tls_name(mut self, name: TlsName) -> Self {
        self.tls_name = Some(name);
        self
    }

    /// Records live `secs` after each heartbeat.
    pub fn with_ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }
}

/// Where clients reach this node's TURN over TLS (`TINCAN_TURN_TLS_NAME`):
/// the DNS name in its certificate, which browsers check, and optionally a
/// port (`turn.example.com:443`) for a node behind a load balancer or port
/// mapping; without one, the TLS listener's own port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsName {
    host: String,
    port: Option<u16>,
}

/// Why a `TINCAN_TURN_TLS_NAME` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsNameError {
    #[error("not a DNS name (letters, digits, '-' and '.', labels of 1-63 characters, at most 253 in all)")]
    NotADnsName,
    #[error("an IP address: give the DNS name in the node's certificate")]
    IpAddress,
    #[error("port must be a number from 1 to 65535")]
    BadPort,
}

impl TlsName {
    /// The DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The `host:port` to advertise when TLS listens on `listener_port`.
    pub fn host_port(&self, listener_port: u16) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(listener_port))
    }
}

impl std::str::FromStr for TlsName {
    type Err = TlsNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(TlsNameError::BadPort)?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.parse::<std::net::IpAddr>().is_ok()
            || host
                .rsplit('.')
                .next()
                .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(TlsNameError::IpAddress);
        }
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(TlsNameError::NotADnsName);
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for TlsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A running heartbeat task.
pub struct Heartbeat {
    node_id: String,
    store: Arc<dyn MediaNodeStore>,
    beat: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Starts heartbeating `node` into `store`: the first beat at once, then
/// every `config.interval`. Failures are logged and retried at the next
/// beat; the task runs until [`Heartbeat::stop`] or drop.
pub fn spawn(
    node: Arc<MediaNode>,
    store: Arc<dyn MediaNodeStore>,
    config: HeartbeatConfig,
) -> Heartbeat {
    let beat = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    let node_id = config.node_id.clone();
    let task = tokio::spawn(run(
        node,
        Arc::clone(&store),
        config,
        Arc::clone(&beat),
        stopped,
    ));
    Heartbeat {
        node_id,
        store,
        beat,
        stop,
        task: Some(task),
    }
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// Beats now rather than at the next tick (e.g. right after a drain).
    pub fn beat_now(&self) {
        self.beat.notify_one();
    }

    /// Stops beating; with `deregister`, also removes the node's record so
    /// it drops out at once instead of when its TTL runs out.
    pub async fn stop(mut self, deregister: bool) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if deregister {
            match self.store.remove(&self.node_id).await {
                Ok(()) => tracing::info!(node = %self.node_id, "media node deregistered"),
                Err(err) => {
                    tracing::warn!(node = %self.node_id, error = %err, "deregistering failed");
                }
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    node: Arc<MediaNode>,
    store: Arc<dyn MediaNodeStore>,
    config: HeartbeatConfig,
    beat: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut sampler = LoadSampler::default();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_state = None;
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = beat.notified() => {}
            _ = stopped.changed() => return,
        }
        let info = node_info(&node, &config, sampler.sample(&node));
        let state = info.state;
        let load = info.load;
        match store.heartbeat(info, unix_now(), config.ttl_secs).await {
            Ok(()) => {
                if last_state != Some(state) || !healthy {
                    tracing::info!(
                        node = %config.node_id,
                        ?state,
                        turn_addr = %node.public_addr(),
                        turns_addr = turns_addr(&node, &config).as_deref().unwrap_or("none"),
                        ttl_secs = config.ttl_secs,
                        "media node registered"
                    );
                }
                tracing::debug!(
                    node = %config.node_id,
                    allocations = load.allocations,
                    bandwidth_bps = load.bandwidth_bps,
                    cpu_percent = load.cpu_percent,
                    "heartbeat"
                );
                last_state = Some(state);
                healthy = true;
            }
            Err(err) => {
                tracing::warn!(node = %config.node_id, error = %err, "heartbeat failed");
                healthy = false;
            }
        }
    }
}

/// This node's record as of now.
pub fn node_info(node: &MediaNode, config: &HeartbeatConfig, load: NodeLoad) -> MediaNodeInfo {
    let (relay_port_min, relay_port_max) = node.relay_ports();
    MediaNodeInfo {
        id: config.node_id.clone(),
        region: config.region.clone(),
        turn_addr: node.public_addr().to_string(),
        turns_addr: turns_addr(node, config),
        udp: true,
        tcp: node.tcp_addr().is_some(),
        relay_port_min,
        relay_port_max,
        load,
        state: if node.is_draining() {
            NodeState::Draining
        } else {
            NodeState::Active
        },
        sfu_control: config
            .sfu_control_url
            .clone()
            .or_else(|| sfu_control_url(node)),
    }
}

/// Where the signaling side reaches the SFU control API: the listener's
/// own IP, or the node's public IP when it listens on every address.
fn sfu_control_url(node: &MediaNode) -> Option<String> {
    let control = node.sfu_control_addr()?;
    let ip = if control.ip().is_unspecified() {
        node.public_addr().ip()
    } else {
        control.ip()
    };
    Some(format!(
        "http://{}",
        std::net::SocketAddr::new(ip, control.port())
    ))
}

/// The `turns:` address: with TLS on and a name for it, that name and
/// the configured port, else the TLS listener's.
fn turns_addr(node: &MediaNode, config: &HeartbeatConfig) -> Option<String> {
    let listener = node.tls_addr()?;
    Some(config.tls_name.as_ref()?.host_port(listener.port()))
}

/// Turns counters into rates between two samples.
#[derive(Debug, Default)]
struct LoadSampler {
    last: Option<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    relayed_bytes: u64,
    cpu_secs: Option<f64>,
}

impl LoadSampler {
    /// The load now; rates are 0 until there is an earlier sample.
    fn sample(&mut self, node: &MediaNode) -> NodeLoad {
        let metrics = node.metrics();
        let now = Sample {
            at: Instant::now(),
            relayed_bytes: metrics.peer_bytes_in.saturating_add(metrics.peer_bytes_out),
            cpu_secs: process_cpu_secs(),
        };
        let mut load = instant_load(&metrics);
        if let Some(last) = self.last {
            let elapsed = now.at.duration_since(last.at).as_secs_f64();
            if elapsed > 0.0 {
                let bytes = now.relayed_bytes.saturating_sub(last.relayed_bytes);
                load.bandwidth_bps = (bytes as f64 * 8.0 / elapsed) as u64;
                if let (Some(cpu), Some(before)) = (now.cpu_secs, last.cpu_secs) {
                    load.cpu_percent = ((cpu - before).max(0.0) / elapsed * 100.0).max(0.0);
                }
            }
        }
        self.last = Some(now);
        load
    }
}

/// The load the node's counters show now, without the rates (bandwidth
/// and CPU) that need two samples: its allocations and SFU participants,
/// whose sum ([`NodeLoad::sessions`]) is the figure of
/// [`MetricsSnapshot::load`](crate::MetricsSnapshot::load).
pub fn instant_load(metrics: &crate::MetricsSnapshot) -> NodeLoad {
    NodeLoad {
        allocations: metrics.allocations,
        sfu_participants: metrics.sfu_participants,
        sfu_streams: metrics.sfu_streams,
        ..NodeLoad::default()
    }
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat`; `None` where there is no procfs.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / USER_HZ)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces and `)`,
/// so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state): utime is field 14, 11 further on.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A node id for this host when none is configured: the hostname (kept to
/// `[A-Za-z0-9._-]`) and the TURN port, so two nodes on one host differ and
/// a restarted node takes over its own record; a random id if the hostname
/// is unknown.
pub fn default_node_id(turn_port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(100)
        .collect();
    if host.is_empty() {
        format!("media-node-{:016x}", rand::random::<u64>())
    } else {
        format!("{host}-{turn_port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_past_a_tricky_command_name() {
        let stat = "4242 (tincan) media (node)) S 1 4242 4242 0 -1 4194560 \
                    1234 0 0 0 250 75 0 0 20 0 9 0 12345 1000000 500 \
                    18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        if std::path::Path::new("/proc/self/stat").exists() {
            let secs = process_cpu_secs().expect("parses our own stat");
            assert!(secs >= 0.0);
        }
    }

    #[test]
    fn default_node_ids_are_valid_fleet_ids() {
        let id = default_node_id(3478);
        assert!(tincan_fleet::validate_node_id(&id).is_ok(), "{id}");
        assert!(id.ends_with("-3478") || id.starts_with("media-node-"));
    }

    #[test]
    fn tls_names_are_dns_names_with_an_optional_port() {
        let name: TlsName = "Turn-1.Example.com".parse().expect("a name");
        assert_eq!(name.host(), "turn-1.example.com");
        assert_eq!(name.host_port(5349), "turn-1.example.com:5349");
        let name: TlsName = " turn.example.com.:443 ".parse().expect("name and port");
        assert_eq!(name.host_port(5349), "turn.example.com:443");
        assert_eq!(name.to_string(), "turn.example.com:443");
        assert!("localhost".parse::<TlsName>().is_ok());

        let long = format!("{}.com", "a".repeat(64));
        for (bad, why) in [
            ("", TlsNameError::NotADnsName),
            ("turn example.com", TlsNameError::NotADnsName),
            ("*.example.com", TlsNameError::NotADnsName),
            ("-turn.example.com", TlsNameError::NotADnsName),
            ("turn..example.com", TlsNameError::NotADnsName),
            ("https://turn.example.com", TlsNameError::BadPort),
            (long.as_str(), TlsNameError::NotADnsName),
            ("turn.example.com:0", TlsNameError::BadPort),
            ("turn.example.com:70000", TlsNameError::BadPort),
            ("turn.example.com:", TlsNameError::BadPort),
            ("203.0.113.5", TlsNameError::IpAddress),
            ("203.0.113.5:443", TlsNameError::IpAddress),
            ("[::1]:443", TlsNameError::NotADnsName),
        ] {
            assert_eq!(bad.parse::<TlsName>(), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn a_node_with_only_sfu_participants_reports_load() {
        let metrics = crate::metrics::Metrics::default();
        metrics
            .sfu_participants
            .store(4, std::sync::atomic::Ordering::Relaxed);
        let snapshot = metrics.snapshot();
        let load = instant_load(&snapshot);
        assert_eq!(load.allocations, 0);
        assert_eq!(load.sfu_participants, 4);
        assert_eq!(load.sessions(), 4);
        assert_eq!(load.sessions(), snapshot.load(), "one figure everywhere");
        assert!(load.score() > 0);
    }

    #[test]
    fn ttl_is_three_intervals_and_at_least_a_second() {
        assert_eq!(
            HeartbeatConfig::new("n", "r", Duration::from_secs(10)).ttl_secs,
            30
        );
        assert_eq!(
            HeartbeatConfig::new("n", "r", Duration::from_millis(100)).ttl_secs,
            1
        );
    }
}
