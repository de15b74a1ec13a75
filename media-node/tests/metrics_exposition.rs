//! `/metrics` as its readers see it: the same families, types, labels and
//! help as before `prometheus-client` wrote them (dashboards, alarms and the
//! nodes' `publish-load` script read them by name), and text a Prometheus
//! parser reads back, from the snapshot and from the running binary.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use support::{free_udp_port, TurnClient, CONTROL_SECRET, LOCALHOST, SECRET};
use tincan_media_node::MetricsSnapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `/metrics` for [`distinct`], as the hand-written encoder wrote it before
/// the move to `prometheus-client` (and as it must stay).
const GOLDEN: &str = include_str!("fixtures/metrics.prom");

/// Every family: (name, type, its samples' label sets).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("tincan_node_load", "gauge", &[""]),
    ("tincan_turn_allocations", "gauge", &[""]),
    ("tincan_turn_allocations_total", "counter", &[""]),
    (
        "tincan_turn_auth_failures_total",
        "counter",
        &["reason=bad_integrity", "reason=expired", "reason=malformed"],
    ),
    ("tincan_turn_quota_rejections_total", "counter", &[""]),
    ("tincan_turn_drain_rejections_total", "counter", &[""]),
    ("tincan_turn_malformed_packets_total", "counter", &[""]),
    ("tincan_turn_packets_total", "counter", TRAFFIC),
    ("tincan_turn_bytes_total", "counter", TRAFFIC),
    ("tincan_turn_tcp_connections", "gauge", &[""]),
    ("tincan_turn_tcp_dropped_frames_total", "counter", &[""]),
    ("tincan_turn_tls_handshake_failures_total", "counter", &[""]),
    ("tincan_turn_peer_denials_total", "counter", &[""]),
    ("tincan_turn_ip_quota_rejections_total", "counter", &[""]),
    ("tincan_turn_nonce_challenges_total", "counter", &[""]),
    ("tincan_turn_tcp_refused_total", "counter", &[""]),
    ("tincan_turn_tcp_timeouts_total", "counter", &[""]),
    ("tincan_sfu_participants", "gauge", &[""]),
    ("tincan_sfu_rooms", "gauge", &[""]),
    ("tincan_sfu_forwarded_streams", "gauge", &[""]),
    ("tincan_sfu_packets_forwarded_total", "counter", &[""]),
    ("tincan_sfu_packets_dropped_total", "counter", &[""]),
    ("tincan_sfu_packets_muted_total", "counter", &[""]),
    ("tincan_node_draining", "gauge", &[""]),
];

const TRAFFIC: &[&str] = &[
    "direction=in,side=client",
    "direction=in,side=peer",
    "direction=out,side=client",
    "direction=out,side=peer",
];

/// A snapshot whose every field has its own value (1, 2, 3, ...), so a
/// value under the wrong name or label shows.
fn distinct() -> MetricsSnapshot {
    let mut s = MetricsSnapshot::default();
    let fields = [
        &mut s.allocations,
        &mut s.allocations_total,
        &mut s.auth_failures_malformed,
        &mut s.auth_failures_expired,
        &mut s.auth_failures_bad_integrity,
        &mut s.quota_rejections,
        &mut s.drain_rejections,
        &mut s.malformed_packets,
        &mut s.client_packets_in,
        &mut s.client_bytes_in,
        &mut s.client_packets_out,
        &mut s.client_bytes_out,
        &mut s.peer_packets_in,
        &mut s.peer_bytes_in,
        &mut s.peer_packets_out,
        &mut s.peer_bytes_out,
        &mut s.tcp_connections,
        &mut s.tcp_dropped_frames,
        &mut s.tls_handshake_failures,
        &mut s.peer_denials,
        &mut s.ip_quota_rejections,
        &mut s.nonce_challenges,
        &mut s.tcp_refused,
        &mut s.tcp_timeouts,
        &mut s.sfu_participants,
        &mut s.sfu_rooms,
        &mut s.sfu_streams,
        &mut s.sfu_packets_forwarded,
        &mut s.sfu_packets_dropped,
        &mut s.sfu_packets_muted,
    ];
    for (n, field) in (1..).zip(fields) {
        *field = n;
    }
    s.draining = true;
    s
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

/// name -> (type, help, {sorted labels -> value}) as a scraper reads them.
type Families = BTreeMap<String, (&'static str, String, BTreeMap<String, f64>)>;

fn families(scrape: &Scrape) -> Families {
    let mut out = Families::new();
    for sample in &scrape.samples {
        let (kind, value) = match sample.value {
            Value::Counter(v) => ("counter", v),
            Value::Gauge(v) => ("gauge", v),
            ref other => panic!("{}: neither counter nor gauge: {other:?}", sample.metric),
        };
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let help = scrape.docs.get(&sample.metric).cloned().unwrap_or_default();
        let entry = out
            .entry(sample.metric.clone())
            .or_insert_with(|| (kind, help, BTreeMap::new()));
        assert_eq!(entry.0, kind, "{}", sample.metric);
        let dup = entry.2.insert(labels.join(","), value);
        assert!(dup.is_none(), "{} {labels:?} twice", sample.metric);
    }
    out
}

/// Every family of [`FAMILIES`] with its type, help and label sets, and no
/// other.
fn assert_every_family(families: &Families) {
    let mut want: Vec<(&str, &str, Vec<&str>)> = FAMILIES
        .iter()
        .map(|(name, kind, labels)| {
            let mut labels = labels.to_vec();
            labels.sort_unstable();
            (*name, *kind, labels)
        })
        .collect();
    want.sort_unstable();
    let got: Vec<(&str, &str, Vec<&str>)> = families
        .iter()
        .map(|(name, (kind, help, samples))| {
            assert!(!help.is_empty(), "{name} has no HELP");
            (
                name.as_str(),
                *kind,
                samples.keys().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_exposition_is_the_one_dashboards_and_alarms_read_byte_for_byte() {
    assert_eq!(distinct().to_prometheus(), GOLDEN);
}

#[test]
fn a_prometheus_parser_reads_every_family_with_its_type_labels_and_value() {
    let snapshot = distinct();
    let families = families(&parse(&snapshot.to_prometheus()));
    assert_every_family(&families);
    let value = |name: &str, labels: &str| families[name].2[labels];
    assert_eq!(value("tincan_turn_allocations", ""), 1.0);
    assert_eq!(value("tincan_turn_allocations_total", ""), 2.0);
    assert_eq!(
        value("tincan_turn_auth_failures_total", "reason=bad_integrity"),
        5.0
    );
    assert_eq!(
        value("tincan_turn_packets_total", "direction=out,side=client"),
        11.0
    );
    assert_eq!(
        value("tincan_turn_bytes_total", "direction=in,side=peer"),
        14.0
    );
    assert_eq!(value("tincan_sfu_forwarded_streams", ""), 27.0);
    assert_eq!(value("tincan_sfu_packets_muted_total", ""), 30.0);
    assert_eq!(value("tincan_node_draining", ""), 1.0);
    assert_eq!(
        value("tincan_node_load", ""),
        snapshot.load() as f64,
        "allocations plus SFU participants"
    );
}

/// The binary's own `/metrics` over HTTP, with an allocation live (its
/// gauge is counted before the answer; `tincan_turn_allocations_total` only
/// once the relay starts reading, so it is not read here).
#[tokio::test]
async fn the_binary_serves_its_metrics_to_a_scraper() {
    let turn = SocketAddr::new(LOCALHOST, free_udp_port());
    let metrics = {
        let l = std::net::TcpListener::bind((LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr")
    };
    let _node = tokio::process::Command::new(env!("CARGO_BIN_EXE_tincan-media-node"))
        .env("TINCAN_TURN_ADDR", turn.to_string())
        .env("TINCAN_METRICS_ADDR", metrics.to_string())
        .env("TINCAN_SFU_CONTROL_ADDR", "127.0.0.1:0")
        .env("TINCAN_SFU_UDP_PORT", "0")
        .env("TINCAN_TURN_SECRET", SECRET)
        .env("TINCAN_SFU_CONTROL_SECRET", CONTROL_SECRET)
        .env_remove("TINCAN_MEDIA_NODES_TABLE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");

    let (head, _) = scrape(metrics).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );

    let mut client = TurnClient::for_user(turn, "ada").await;
    client.allocate().await.expect("reply").expect("allocated");
    let (_, body) = scrape(metrics).await;
    let families = families(&parse(&body));
    assert_every_family(&families);
    let value = |name: &str| families[name].2[""];
    assert_eq!(value("tincan_turn_allocations"), 1.0, "{body}");
    assert_eq!(value("tincan_node_load"), 1.0, "{body}");
    assert_eq!(value("tincan_node_draining"), 0.0, "{body}");
}

/// `GET /metrics` once the listener is up (within 30 s): the response's
/// head and body.
async fn scrape(addr: SocketAddr) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the metrics listener never came up: {err}"),
        }
    };
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answered in time")
    .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (head.to_owned(), body.to_owned())
}
