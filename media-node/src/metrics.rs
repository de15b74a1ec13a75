//! Counters of one media node, kept in atomics on the packet path and
//! served on `/metrics` in the Prometheus text format.
//!
//! The hot path only adds to atomics ([`Metrics`]); a scrape takes a
//! [`MetricsSnapshot`] (one instant, so `tincan_node_load` is always the sum
//! of the allocations and SFU participants it reports beside it) and hands
//! it to `prometheus-client` as a collector of constant metrics: names,
//! types, labels, escaping and layout come from the library's encoder.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
    LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Why an authenticated TURN request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The username is not `expiry:userId`.
    Malformed,
    /// The credential's expiry has passed.
    Expired,
    /// MESSAGE-INTEGRITY does not match our key (wrong password, another
    /// secret, a forged expiry or another realm).
    BadIntegrity,
}

impl AuthFailure {
    fn label(self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed",
            AuthFailure::Expired => "expired",
            AuthFailure::BadIntegrity => "bad_integrity",
        }
    }
}

/// The live counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) allocations: AtomicU64,
    pub(crate) allocations_total: AtomicU64,
    pub(crate) auth_malformed: AtomicU64,
    pub(crate) auth_expired: AtomicU64,
    pub(crate) auth_bad_integrity: AtomicU64,
    pub(crate) quota_rejections: AtomicU64,
    pub(crate) drain_rejections: AtomicU64,
    pub(crate) malformed_packets: AtomicU64,
    pub(crate) client_packets_in: AtomicU64,
    pub(crate) client_bytes_in: AtomicU64,
    pub(crate) client_packets_out: AtomicU64,
    pub(crate) client_bytes_out: AtomicU64,
    pub(crate) peer_packets_in: AtomicU64,
    pub(crate) peer_bytes_in: AtomicU64,
    pub(crate) peer_packets_out: AtomicU64,
    pub(crate) peer_bytes_out: AtomicU64,
    pub(crate) tcp_connections: AtomicU64,
    pub(crate) tcp_dropped_frames: AtomicU64,
    pub(crate) tls_handshake_failures: AtomicU64,
    pub(crate) draining: AtomicU64,
    pub(crate) peer_denials: AtomicU64,
    pub(crate) ip_quota_rejections: AtomicU64,
    pub(crate) nonce_challenges: AtomicU64,
    pub(crate) tcp_refused: AtomicU64,
    pub(crate) tcp_timeouts: AtomicU64,
    pub(crate) sfu_participants: AtomicU64,
    pub(crate) sfu_rooms: AtomicU64,
    pub(crate) sfu_streams: AtomicU64,
    pub(crate) sfu_packets_forwarded: AtomicU64,
    pub(crate) sfu_packets_dropped: AtomicU64,
    pub(crate) sfu_packets_muted: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn auth_failure(&self, why: AuthFailure) {
        let counter = match why {
            AuthFailure::Malformed => &self.auth_malformed,
            AuthFailure::Expired => &self.auth_expired,
            AuthFailure::BadIntegrity => &self.auth_bad_integrity,
        };
        add(counter, 1);
    }

    pub(crate) fn client_in(&self, bytes: usize) {
        add(&self.client_packets_in, 1);
        add(&self.client_bytes_in, bytes as u64);
    }

    pub(crate) fn client_out(&self, bytes: usize) {
        add(&self.client_packets_out, 1);
        add(&self.client_bytes_out, bytes as u64);
    }

    pub(crate) fn peer_in(&self, bytes: usize) {
        add(&self.peer_packets_in, 1);
        add(&self.peer_bytes_in, bytes as u64);
    }

    pub(crate) fn peer_out(&self, bytes: usize) {
        add(&self.peer_packets_out, 1);
        add(&self.peer_bytes_out, bytes as u64);
    }

    pub(crate) fn sfu_forwarded(&self, n: u64) {
        add(&self.sfu_packets_forwarded, n);
    }

    pub(crate) fn sfu_dropped(&self, n: u64) {
        add(&self.sfu_packets_dropped, n);
    }

    pub(crate) fn sfu_muted(&self, n: u64) {
        add(&self.sfu_packets_muted, n);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            allocations: get(&self.allocations),
            allocations_total: get(&self.allocations_total),
            auth_failures_malformed: get(&self.auth_malformed),
            auth_failures_expired: get(&self.auth_expired),
            auth_failures_bad_integrity: get(&self.auth_bad_integrity),
            quota_rejections: get(&self.quota_rejections),
            drain_rejections: get(&self.drain_rejections),
            malformed_packets: get(&self.malformed_packets),
            client_packets_in: get(&self.client_packets_in),
            client_bytes_in: get(&self.client_bytes_in),
            client_packets_out: get(&self.client_packets_out),
            client_bytes_out: get(&self.client_bytes_out),
            peer_packets_in: get(&self.peer_packets_in),
            peer_bytes_in: get(&self.peer_bytes_in),
            peer_packets_out: get(&self.peer_packets_out),
            peer_bytes_out: get(&self.peer_bytes_out),
            tcp_connections: get(&self.tcp_connections),
            tcp_dropped_frames: get(&self.tcp_dropped_frames),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            draining: get(&self.draining) != 0,
            peer_denials: get(&self.peer_denials),
            ip_quota_rejections: get(&self.ip_quota_rejections),
            nonce_challenges: get(&self.nonce_challenges),
            tcp_refused: get(&self.tcp_refused),
            tcp_timeouts: get(&self.tcp_timeouts),
            sfu_participants: get(&self.sfu_participants),
            sfu_rooms: get(&self.sfu_rooms),
            sfu_streams: get(&self.sfu_streams),
            sfu_packets_forwarded: get(&self.sfu_packets_forwarded),
            sfu_packets_dropped: get(&self.sfu_packets_dropped),
            sfu_packets_muted: get(&self.sfu_packets_muted),
        }
    }
}

/// A copy of the counters at one instant.
///
/// "client" is the side facing TURN clients (the listeners); "peer" is the
/// relayed side (the allocations' relay sockets): `peer_packets_out` are
/// packets relayed from clients to peers, `peer_packets_in` packets arriving
/// from peers to be relayed back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    pub allocations: u64,
    pub allocations_total: u64,
    pub auth_failures_malformed: u64,
    pub auth_failures_expired: u64,
    pub auth_failures_bad_integrity: u64,
    pub quota_rejections: u64,
    pub drain_rejections: u64,
    pub malformed_packets: u64,
    pub client_packets_in: u64,
    pub client_bytes_in: u64,
    pub client_packets_out: u64,
    pub client_bytes_out: u64,
    pub peer_packets_in: u64,
    pub peer_bytes_in: u64,
    pub peer_packets_out: u64,
    pub peer_bytes_out: u64,
    pub tcp_connections: u64,
    pub tcp_dropped_frames: u64,
    /// TURN-over-TLS connections closed because the handshake failed or
    /// timed out (e.g. a plain TCP client on the TLS port).
    pub tls_handshake_failures: u64,
    pub draining: bool,
    /// CreatePermission and ChannelBind requests refused with 403, and Send
    /// indications dropped, because the peer is on the deny-list.
    pub peer_denials: u64,
    /// Allocate requests refused with 486 (per-client-address quota).
    pub ip_quota_rejections: u64,
    /// 401 and 438 answers carrying a fresh (stateless) nonce.
    pub nonce_challenges: u64,
    /// TCP and TLS connections refused at accept (node or per-address cap).
    pub tcp_refused: u64,
    /// TCP and TLS connections closed for sending no complete first message
    /// in time, or for being idle too long.
    pub tcp_timeouts: u64,
    /// SFU participants (peer connections to the node).
    pub sfu_participants: u64,
    /// Rooms with at least one SFU participant.
    pub sfu_rooms: u64,
    /// Receive slots with a speaker in them, over all participants.
    pub sfu_streams: u64,
    /// RTP packets the SFU forwarded (one per receiving slot).
    pub sfu_packets_forwarded: u64,
    /// Packets the SFU lost on the way out: full socket buffers, denied
    /// destinations, refused writes (a fault, which an alarm watches).
    pub sfu_packets_dropped: u64,
    /// Packets of muted publishers the SFU discarded, as it should.
    pub sfu_packets_muted: u64,
}

impl MetricsSnapshot {
    /// The node's load as one figure ([`tincan_fleet::node_load`]): live
    /// TURN allocations plus SFU participants. What placement compares,
    /// what a drain waits on, and (as `tincan_node_load`) what the fleet
    /// scales on and what keeps a node protected from scale-in.
    pub fn load(&self) -> u64 {
        tincan_fleet::node_load(self.allocations, self.sfu_participants)
    }

    /// All authentication failures, whatever the reason.
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures_malformed + self.auth_failures_expired + self.auth_failures_bad_integrity
    }

    /// The Prometheus text exposition format (version 0.0.4), written by
    /// `prometheus-client`'s encoder: what `/metrics` serves.
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail, and every name and label here
        // is a constant; an error would leave the text cut short, not wrong.
        if let Err(err) = prometheus_text::encode(&mut out, &registry) {
            tracing::error!(error = %err, "could not encode the metrics");
        }
        out
    }
}

/// One snapshot as the families of `/metrics`, in the order they are
/// served. Names are written in full as they are exported (dashboards,
/// alarms and `publish-load` read them); the encoder adds a counter's
/// `_total` itself, so [`counter`] takes it off first.
#[derive(Debug)]
struct Exposition(MetricsSnapshot);

impl Collector for Exposition {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        gauge(
            &mut out,
            "tincan_node_load",
            "The node's load: live TURN allocations plus SFU participants.",
            s.load(),
        )?;
        gauge(
            &mut out,
            "tincan_turn_allocations",
            "Live TURN allocations.",
            s.allocations,
        )?;
        counter(
            &mut out,
            "tincan_turn_allocations_total",
            "TURN allocations created since start.",
            [(NoLabels, s.allocations_total)],
        )?;
        counter(
            &mut out,
            "tincan_turn_auth_failures_total",
            "Authenticated TURN requests refused with 401.",
            [
                (AuthFailure::Malformed, s.auth_failures_malformed),
                (AuthFailure::Expired, s.auth_failures_expired),
                (AuthFailure::BadIntegrity, s.auth_failures_bad_integrity),
            ]
            .map(|(reason, n)| ([("reason", reason)], n)),
        )?;
        for (name, help, n) in [
            (
                "tincan_turn_quota_rejections_total",
                "Allocate requests refused with 486 (per-user quota).",
                s.quota_rejections,
            ),
            (
                "tincan_turn_drain_rejections_total",
                "Allocate requests refused with 403 while draining.",
                s.drain_rejections,
            ),
            (
                "tincan_turn_malformed_packets_total",
                "Datagrams or frames that were neither STUN nor ChannelData.",
                s.malformed_packets,
            ),
        ] {
            counter(&mut out, name, help, [(NoLabels, n)])?;
        }
        counter(
            &mut out,
            "tincan_turn_packets_total",
            "Packets by side (client: TURN listeners, peer: relay sockets) and direction.",
            [
                (Traffic::CLIENT_IN, s.client_packets_in),
                (Traffic::CLIENT_OUT, s.client_packets_out),
                (Traffic::PEER_IN, s.peer_packets_in),
                (Traffic::PEER_OUT, s.peer_packets_out),
            ],
        )?;
        counter(
            &mut out,
            "tincan_turn_bytes_total",
            "Bytes by side (client: TURN listeners, peer: relay sockets) and direction.",
            [
                (Traffic::CLIENT_IN, s.client_bytes_in),
                (Traffic::CLIENT_OUT, s.client_bytes_out),
                (Traffic::PEER_IN, s.peer_bytes_in),
                (Traffic::PEER_OUT, s.peer_bytes_out),
            ],
        )?;
        gauge(
            &mut out,
            "tincan_turn_tcp_connections",
            "Open TURN-over-TCP and TURN-over-TLS connections.",
            s.tcp_connections,
        )?;
        for (name, help, n) in [
            (
                "tincan_turn_tcp_dropped_frames_total",
                "Frames to TCP clients dropped because the connection was backed up.",
                s.tcp_dropped_frames,
            ),
            (
                "tincan_turn_tls_handshake_failures_total",
                "TURN-over-TLS connections whose TLS handshake failed or timed out.",
                s.tls_handshake_failures,
            ),
            (
                "tincan_turn_peer_denials_total",
                "Requests (403) and Send indications (dropped) naming a denied peer.",
                s.peer_denials,
            ),
            (
                "tincan_turn_ip_quota_rejections_total",
                "Allocate requests refused with 486 (per-client-address quota).",
                s.ip_quota_rejections,
            ),
            (
                "tincan_turn_nonce_challenges_total",
                "401 and 438 answers carrying a fresh stateless nonce.",
                s.nonce_challenges,
            ),
            (
                "tincan_turn_tcp_refused_total",
                "TCP and TLS connections refused at accept (node or per-address cap).",
                s.tcp_refused,
            ),
            (
                "tincan_turn_tcp_timeouts_total",
                "TCP and TLS connections closed: no first message in time, or idle.",
                s.tcp_timeouts,
            ),
        ] {
            counter(&mut out, name, help, [(NoLabels, n)])?;
        }
        for (name, help, n) in [
            (
                "tincan_sfu_participants",
                "SFU participants (peer connections to the node).",
                s.sfu_participants,
            ),
            (
                "tincan_sfu_rooms",
                "Rooms with at least one SFU participant.",
                s.sfu_rooms,
            ),
            (
                "tincan_sfu_forwarded_streams",
                "Receive slots with a speaker in them, over all SFU participants.",
                s.sfu_streams,
            ),
        ] {
            gauge(&mut out, name, help, n)?;
        }
        for (name, help, n) in [
            (
                "tincan_sfu_packets_forwarded_total",
                "RTP packets the SFU forwarded (one per receiving slot).",
                s.sfu_packets_forwarded,
            ),
            (
                "tincan_sfu_packets_dropped_total",
                "Packets the SFU failed to send (full buffers, denied destinations, refused writes).",
                s.sfu_packets_dropped,
            ),
            (
                "tincan_sfu_packets_muted_total",
                "Packets of muted publishers the SFU discarded.",
                s.sfu_packets_muted,
            ),
        ] {
            counter(&mut out, name, help, [(NoLabels, n)])?;
        }
        gauge(
            &mut out,
            "tincan_node_draining",
            "1 while the node refuses new allocations.",
            u64::from(s.draining),
        )
    }
}

/// One unlabelled gauge.
fn gauge(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One counter family, `name` as exported (ending in `_total`), one sample
/// per label set.
fn counter<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let stem = name.strip_suffix("_total").unwrap_or(name);
    debug_assert_ne!(stem, name, "a counter's name ends in _total");
    let mut family = out.encode_descriptor(stem, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The empty label set (an unlabelled sample of a counter).
struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(&self, _: &mut LabelSetEncoder) -> fmt::Result {
        Ok(())
    }
}

impl EncodeLabelValue for AuthFailure {
    fn encode(&self, out: &mut LabelValueEncoder) -> fmt::Result {
        out.write_str(self.label())
    }
}

/// The `side` and `direction` labels of the TURN traffic counters.
struct Traffic {
    side: &'static str,
    direction: &'static str,
}

impl Traffic {
    const CLIENT_IN: Self = Self::new("client", "in");
    const CLIENT_OUT: Self = Self::new("client", "out");
    const PEER_IN: Self = Self::new("peer", "in");
    const PEER_OUT: Self = Self::new("peer", "out");

    const fn new(side: &'static str, direction: &'static str) -> Self {
        Self { side, direction }
    }
}

impl EncodeLabelSet for Traffic {
    fn encode(&self, out: &mut LabelSetEncoder) -> fmt::Result {
        [("side", self.side), ("direction", self.direction)].encode(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once_with_labels() {
        let m = Metrics::default();
        m.auth_failure(AuthFailure::Expired);
        m.client_in(100);
        let text = m.snapshot().to_prometheus();
        assert!(text.contains("tincan_turn_auth_failures_total{reason=\"expired\"} 1\n"));
        assert!(text.contains("tincan_turn_bytes_total{side=\"client\",direction=\"in\"} 100\n"));
        assert_eq!(
            text.matches("# TYPE tincan_turn_allocations gauge").count(),
            1
        );
        assert!(text.contains("tincan_node_draining 0\n"));
        assert!(text.contains("tincan_node_load 0\n"));
    }

    #[test]
    fn sfu_participants_alone_are_load() {
        let m = Metrics::default();
        m.sfu_participants.store(3, Ordering::Relaxed);
        let snapshot = m.snapshot();
        assert_eq!(snapshot.allocations, 0);
        assert_eq!(snapshot.load(), 3);
        let text = snapshot.to_prometheus();
        assert!(text.contains("tincan_node_load 3\n"), "{text}");
        m.allocations.store(2, Ordering::Relaxed);
        assert_eq!(m.snapshot().load(), 5);
        assert!(m
            .snapshot()
            .to_prometheus()
            .contains("tincan_node_load 5\n"));
    }
}
