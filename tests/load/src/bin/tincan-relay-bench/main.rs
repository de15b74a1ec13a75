//! `tincan-relay-bench`: one load client for several signaling servers, so
//! their figures compare (used by `tests/bench/report`; a benchmark, not a
//! test).
//!
//! Opens `--clients` WebSockets to an already running server, in rooms of
//! 2, 3 and 4 (each client sends to the next in its room, so each hears from
//! exactly one), then runs the phases of `--phases` one after the other:
//! `name:RATE:SECS` sends RATE signals per second in all (spread evenly over
//! the clients and over time) for SECS seconds. A signal's `data` carries its
//! phase and send time and is padded so the whole frame is `--size` bytes.
//! One-hop latency is send to receive, on one monotonic clock.
//!
//! With `--server-pid`, it reads that process's CPU time (`/proc/PID/stat`)
//! over each phase and its RSS (`/proc/PID/status`) before connecting and
//! with everyone connected. Prints one JSON object per line on stdout
//! (`connected`, then one `phase` each) and progress on stderr. Exits
//! non-zero if no client could connect; lost signals are reported, not fatal.

mod protocol;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use protocol::{Incoming, Protocol};
use serde_json::json;
use tincan_token::TokenKeys;
use tokio::sync::{mpsc, watch, Mutex, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// Which server's protocol to speak.
    #[arg(long, env = "RELAY_PROTOCOL", value_enum)]
    protocol: Protocol,
    /// The server, as `ws://HOST:PORT`.
    #[arg(long, env = "RELAY_URL")]
    url: String,
    /// How many WebSocket clients.
    #[arg(long, env = "RELAY_CLIENTS", default_value_t = 1000)]
    clients: usize,
    /// Phases, comma-separated `name:RATE:SECS` (RATE signals per second in all).
    #[arg(
        long,
        env = "RELAY_PHASES",
        default_value = "steady:2000:10,burst:20000:3"
    )]
    phases: String,
    /// Bytes of each signal frame as sent.
    #[arg(long, env = "RELAY_SIZE", default_value_t = 150)]
    size: usize,
    /// The server process to read CPU and RSS of.
    #[arg(long, env = "RELAY_SERVER_PID")]
    server_pid: Option<u32>,
    /// Tincan only: the secret the server checks tokens with.
    #[arg(long, env = "TINCAN_JWT_SECRET", default_value = "")]
    secret: String,
    /// Most handshakes in flight at once.
    #[arg(long, env = "RELAY_CONNECT_CONCURRENCY", default_value_t = 64)]
    connect_concurrency: usize,
    /// How long to wait for a phase's last signals after its last send.
    #[arg(long, env = "RELAY_DRAIN_SECS", default_value_t = 5)]
    drain_secs: u64,
}

#[derive(Debug, Clone)]
struct Phase {
    name: String,
    rate: f64,
    secs: f64,
}

fn parse_phases(s: &str) -> anyhow::Result<Vec<Phase>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            let [name, rate, secs] = parts[..] else {
                bail!("phase {p:?} is not name:RATE:SECS");
            };
            Ok(Phase {
                name: name.to_owned(),
                rate: rate.parse().with_context(|| format!("rate in {p:?}"))?,
                secs: secs.parse().with_context(|| format!("seconds in {p:?}"))?,
            })
        })
        .collect()
}

/// Signals each client sends in `phase`, and the gap between two of them.
fn schedule(phase: &Phase, clients: usize) -> (usize, Duration) {
    let per_client = phase.rate / clients as f64;
    let count = ((phase.secs * per_client).round() as usize).max(1);
    (count, Duration::from_secs_f64(1.0 / per_client.max(1e-6)))
}

/// Rooms of 2, 3, 4, 2, ... (a last lone client joins the room before it).
fn rooms(clients: usize) -> Vec<Vec<usize>> {
    let mut rooms: Vec<Vec<usize>> = Vec::new();
    let mut next = 0;
    for size in [2, 3, 4].into_iter().cycle() {
        if next >= clients {
            break;
        }
        let end = (next + size).min(clients);
        rooms.push((next..end).collect());
        next = end;
    }
    if rooms.len() > 1 && rooms.last().is_some_and(|r| r.len() < 2) {
        let lone = rooms.pop().unwrap_or_default();
        if let Some(last) = rooms.last_mut() {
            last.extend(lone);
        }
    }
    rooms
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// Resident set size of a process, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the run tells each client: the phase to play and when it starts.
type Cue = Option<(usize, Instant)>;

struct Shared {
    protocol: Protocol,
    phases: Vec<Phase>,
    clients: usize,
    size: usize,
    epoch: Instant,
    latencies: mpsc::UnboundedSender<(usize, u64)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phases = parse_phases(&args.phases)?;
    if args.clients < 2 {
        bail!("need at least 2 clients");
    }
    let tokens = match args.protocol {
        Protocol::Tincan => Some(TokenKeys::new(args.secret.as_bytes(), 3600)?),
        _ => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pid = args.server_pid;
    let rss_before = pid.and_then(rss_bytes);

    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        protocol: args.protocol,
        phases: phases.clone(),
        clients: args.clients,
        size: args.size,
        epoch: Instant::now(),
        latencies: lat_tx,
    });
    let (cue_tx, cue_rx) = watch::channel::<Cue>(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (r, members) in rooms(args.clients).iter().enumerate() {
        for (k, &i) in members.iter().enumerate() {
            let id = format!("p{i}");
            let token = tokens
                .as_ref()
                .map(|t| t.issue(&format!("user-{i}"), &format!("Load {i}"), now))
                .unwrap_or_else(|| format!("t{i}"));
            let client = Client {
                shared: shared.clone(),
                url: args.protocol.url(&args.url, &id, &token),
                room: format!("room-{r}"),
                index: i,
                ring: members.iter().map(|m| format!("p{m}")).collect(),
                at: k,
            };
            let (cue_rx, ready_tx, permits) = (cue_rx.clone(), ready_tx.clone(), permits.clone());
            tasks.push(tokio::spawn(client.run(cue_rx, ready_tx, permits)));
        }
    }
    drop(ready_tx);
    let (mut ready, mut failed, mut first_error) = (0usize, 0usize, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while ready + failed < args.clients {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => ready += 1,
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Ok(None) | Err(_) => break,
        }
        if (ready + failed) % 1000 == 0 {
            eprintln!("  {} of {} clients connected", ready, args.clients);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the server settle (buffers freed, handshake tasks gone) before its RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = pid.and_then(rss_bytes);
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ready > 0 => Some(a.saturating_sub(b) as f64 / ready as f64),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "event": "connected", "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "clients": args.clients, "ready": ready, "failed": failed, "first_error": first_error,
            "connect_secs": connect_secs, "rss_before": rss_before, "rss_after": rss_after,
            "rss_per_conn": per_conn,
        })
    );
    eprintln!(
        "  {ready} connected, {failed} failed in {connect_secs:.1} s{}",
        first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    if ready == 0 {
        bail!("no client connected");
    }

    for (p, phase) in phases.iter().enumerate() {
        let (count, gap) = schedule(phase, args.clients);
        let expected = count * ready;
        let start = Instant::now() + Duration::from_millis(200);
        let cpu0 = pid.and_then(cpu_secs);
        let _ = cue_tx.send(Some((p, start)));
        let mut lat = Vec::with_capacity(expected);
        let deadline = tokio::time::Instant::from_std(start)
            + Duration::from_secs_f64(count as f64 * gap.as_secs_f64())
            + Duration::from_secs(args.drain_secs);
        while lat.len() < expected {
            match tokio::time::timeout_at(deadline, lat_rx.recv()).await {
                Ok(Some((ph, ns))) if ph == p => lat.push(ns),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu1 = pid.and_then(cpu_secs);
        let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
        let line = summary(phase, &mut lat, expected, wall, cpu, ready);
        eprintln!(
            "  {}: {} of {} signals, p50 {:.3} ms, p99 {:.3} ms, server cpu {}",
            phase.name,
            lat.len(),
            expected,
            line["p50_ms"].as_f64().unwrap_or(f64::NAN),
            line["p99_ms"].as_f64().unwrap_or(f64::NAN),
            cpu.map(|c| format!("{c:.2} s"))
                .unwrap_or_else(|| "n/a".into()),
        );
        println!("{line}");
        // Late signals of this phase must not count in the next.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while lat_rx.try_recv().is_ok() {}
    }
    drop(cue_tx);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}

/// A phase's figures as one JSON object; `lat` (ns) gets sorted.
fn summary(
    phase: &Phase,
    lat: &mut [u64],
    expected: usize,
    wall: f64,
    cpu: Option<f64>,
    clients: usize,
) -> serde_json::Value {
    lat.sort_unstable();
    let q = |q: f64| -> Option<f64> {
        if lat.is_empty() {
            return None;
        }
        let i = ((lat.len() as f64 * q) as usize).min(lat.len() - 1);
        Some(lat[i] as f64 / 1e6)
    };
    let mut points: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
    points.extend((990..1000).map(|i| i as f64 / 1000.0));
    points.extend([0.9995, 1.0]);
    let cdf: Vec<[f64; 2]> = points
        .iter()
        .filter_map(|&p| q(p).map(|ms| [ms, p]))
        .collect();
    let received = lat.len();
    json!({
        "event": "phase", "phase": phase.name, "rate": phase.rate, "secs": phase.secs,
        "clients": clients, "sent": expected, "received": received,
        "lost": expected.saturating_sub(received),
        "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": q(1.0),
        "throughput": received as f64 / wall.max(1e-9),
        "server_cpu_secs": cpu,
        "cpu_us_per_signal": cpu.filter(|_| received > 0).map(|c| c / received as f64 * 1e6),
        "cdf": cdf,
    })
}

struct Client {
    shared: Arc<Shared>,
    url: String,
    room: String,
    index: usize,
    /// The room's client ids in order (`p<index>`), and this client's place.
    ring: Vec<String>,
    at: usize,
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

impl Client {
    async fn run(
        self,
        mut cue: watch::Receiver<Cue>,
        ready: mpsc::UnboundedSender<anyhow::Result<()>>,
        permits: Arc<Semaphore>,
    ) {
        let (sink, stream, target) = match self.connect(&permits).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let sink = Arc::new(Mutex::new(sink));
        let reader = tokio::spawn(read(self.shared.clone(), stream, sink.clone()));
        let shared = &self.shared;
        // Spread the clients' sends over the gap, as real traffic would be.
        let spread = ((self.index as u64 * 7919) % 1000) as f64 / 1000.0;
        while cue.changed().await.is_ok() {
            let Some((p, start)) = *cue.borrow_and_update() else {
                break;
            };
            let (count, gap) = schedule(&shared.phases[p], shared.clients);
            let first = start + gap.mul_f64(spread);
            for seq in 0..count {
                tokio::time::sleep_until((first + gap * seq as u32).into()).await;
                let t = shared.epoch.elapsed().as_nanos() as u64;
                let frame = padded(shared.protocol, &target, p, seq, t, shared.size);
                if sink.lock().await.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
        }
        reader.abort();
        let _ = sink.lock().await.close().await;
    }

    /// Connects and joins; returns the socket and the id to send to.
    async fn connect(
        &self,
        permits: &Semaphore,
    ) -> anyhow::Result<(Sink, futures_util::stream::SplitStream<WsStream>, String)> {
        let protocol = self.shared.protocol;
        // Small buffers: thousands of client sockets share this process.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let ws = {
            let _permit = permits.acquire().await?;
            tokio::time::timeout(
                Duration::from_secs(30),
                tokio_tungstenite::connect_async_with_config(&self.url, Some(config), true),
            )
            .await
            .context("no handshake in 30 s")??
            .0
        };
        let (mut sink, mut stream) = ws.split();
        let mut joins = protocol.join_frames(&self.room).into_iter().peekable();
        let (mut readies, mut me, mut peers) = (0, String::new(), Vec::<String>::new());
        let expected_peers = self.ring.len() - 1;
        loop {
            while let Some((_, frame)) = joins.next_if(|(after, _)| *after <= readies) {
                sink.send(Message::text(frame)).await?;
            }
            let done = match protocol {
                Protocol::Tincan => !me.is_empty() && peers.len() >= expected_peers,
                _ => readies >= protocol.readies(),
            };
            if done {
                break;
            }
            let text = next_text(&mut stream).await?;
            match protocol.parse(&text) {
                Incoming::Ready => readies += 1,
                Incoming::Reply(r) => sink.send(Message::text(r)).await?,
                Incoming::Joined { me: m, peers: p } => {
                    me = m;
                    peers.extend(p);
                }
                Incoming::PeerJoined(p) => peers.push(p),
                Incoming::Signal { .. } | Incoming::Other => {}
            }
        }
        let target = match protocol {
            // Tincan names peers itself: a ring over the sorted ids.
            Protocol::Tincan => {
                let mut ring = peers;
                ring.push(me.clone());
                ring.sort();
                ring.dedup();
                let at = ring.iter().position(|id| *id == me).unwrap_or(0);
                ring[(at + 1) % ring.len()].clone()
            }
            _ => self.ring[(self.at + 1) % self.ring.len()].clone(),
        };
        Ok((sink, stream, target))
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads a client's socket until it closes: records signals, answers pings,
/// and sends the protocol's heartbeat now and then.
async fn read(
    shared: Arc<Shared>,
    mut stream: futures_util::stream::SplitStream<WsStream>,
    sink: Arc<Mutex<Sink>>,
) {
    let mut beat = tokio::time::interval(Duration::from_secs(10));
    beat.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { return };
                let Message::Text(text) = msg else { continue };
                match shared.protocol.parse(&text) {
                    Incoming::Signal { phase, sent_ns } => {
                        let now = shared.epoch.elapsed().as_nanos() as u64;
                        let _ = shared.latencies.send((phase, now.saturating_sub(sent_ns)));
                    }
                    Incoming::Reply(r) => {
                        let _ = sink.lock().await.send(Message::text(r)).await;
                    }
                    _ => {}
                }
            }
            _ = beat.tick() => {
                if let Some(h) = shared.protocol.heartbeat() {
                    let _ = sink.lock().await.send(Message::text(h)).await;
                }
            }
        }
    }
}

async fn next_text(
    stream: &mut futures_util::stream::SplitStream<WsStream>,
) -> anyhow::Result<String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .context("no frame in 30 s")?
            .context("socket closed")??;
        if let Message::Text(t) = msg {
            return Ok(t.to_string());
        }
    }
}

/// A signal frame of about `size` bytes: the data object padded with `x`s.
fn padded(protocol: Protocol, to: &str, phase: usize, seq: usize, t: u64, size: usize) -> String {
    let bare = format!(r#"{{"ph":{phase},"seq":{seq},"t":{t},"pad":""}}"#);
    let len = protocol.signal(to, &bare).len();
    let pad = "x".repeat(size.saturating_sub(len));
    let data = format!(r#"{{"ph":{phase},"seq":{seq},"t":{t},"pad":"{pad}"}}"#);
    protocol.signal(to, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_hold_two_to_four_and_everyone() {
        for n in [2, 3, 5, 9, 10, 1000] {
            let r = rooms(n);
            assert_eq!(r.iter().map(Vec::len).sum::<usize>(), n);
            assert!(r.iter().all(|m| (2..=5).contains(&m.len())), "{n}: {r:?}");
        }
    }

    #[test]
    fn frames_are_padded_to_size() {
        for p in [
            Protocol::Tincan,
            Protocol::Socketio,
            Protocol::Peerjs,
            Protocol::Ws,
        ] {
            assert_eq!(padded(p, "p12", 0, 3, 123_456_789, 150).len(), 150, "{p:?}");
        }
    }

    #[test]
    fn a_phase_spreads_its_rate_over_the_clients() {
        let phase = Phase {
            name: "s".into(),
            rate: 2000.0,
            secs: 10.0,
        };
        let (count, gap) = schedule(&phase, 1000);
        assert_eq!(count, 20);
        assert_eq!(gap, Duration::from_millis(500));
        assert_eq!(parse_phases("a:1:2,b:3:4").unwrap().len(), 2);
        assert!(parse_phases("a:1").is_err());
    }
}
