//! `tincan-load`: a signaling benchmark, not a test.
//!
//! Starts a local stack in this process on a loopback port (connection state
//! in memory, or in DynamoDB when `DYNAMODB_ENDPOINT` is set), opens N
//! WebSocket clients in rooms of 2, 3 and 4, has every client send `ROUNDS`
//! signals to the next peer in its room, and prints the one-hop latency
//! (sender's `send` to receiver's frame, on one monotonic clock) at p50/p99
//! and how many signals were lost. Bounded: every phase has a deadline.
//!
//! With `TINCAN_LOAD_TARGET=ws://HOST:PORT` (and that stack's
//! `TINCAN_JWT_SECRET`) it drives an already running stack instead. It exits
//! non-zero if any signal was lost or any client failed.
//!
//! Usage: `tincan-load [CLIENTS] [ROUNDS] [GAP_MS]` (defaults 1000, 5 and
//! 250: each client sends one signal every GAP_MS). The sending phase may
//! last ROUNDS x GAP_MS plus two minutes, so it doubles as a soak
//! (`tests/bench/soak.sh`: 1000 clients, 600 rounds, 1000 ms). It prints the
//! process's resident memory (stack and clients together) at the start,
//! once everyone has joined, and at the end, with its peak.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tincan_token::TokenKeys;
use tokio::sync::{mpsc, Barrier};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "load-tool-secret-load-tool-secret-xx";
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let gap = Duration::from_millis(args.next().map(|a| a.parse()).transpose()?.unwrap_or(250));
    if clients < 2 {
        bail!("need at least 2 clients");
    }

    let dir = tempfile::tempdir()?;
    let (stack, ws_base, secret, backend) = match std::env::var("TINCAN_LOAD_TARGET") {
        // An already running stack (e.g. forwarding to real Lambdas), whose
        // token secret is in TINCAN_JWT_SECRET.
        Ok(target) if !target.is_empty() => {
            let secret = std::env::var("TINCAN_JWT_SECRET")
                .context("TINCAN_LOAD_TARGET needs the target's TINCAN_JWT_SECRET")?;
            (None, target, secret, "external")
        }
        _ => {
            let mut config = LocalConfig::from_env()?;
            config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
            config.management_addr = SocketAddr::from(([127, 0, 0, 1], 0));
            // Every load client comes from 127.0.0.1.
            config.listener.max_conns_per_ip = config.listener.max_conns_per_ip.max(clients + 16);
            config.data_dir = dir.path().into();
            config.jwt_secret = Some(SECRET.into());
            // The load clients' tokens are minted here, for users never registered.
            config.users_must_exist = false;
            config.turn_addr = None;
            config.room_max = 8;
            let backend = if config.dynamodb_endpoint.is_some() {
                "dynamodb"
            } else {
                "memory"
            };
            let stack = LocalStack::start(config).await?;
            let base = format!("ws://{}", stack.addr);
            (Some(stack), base, SECRET.to_owned(), backend)
        }
    };
    let tokens = TokenKeys::new(secret.as_bytes(), 3600)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();

    // Rooms of 2, 3, 4, 2, 3, 4, ... (the last one takes what is left).
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
    if rooms.last().is_some_and(|r| r.len() < 2) {
        let lone = rooms.pop().unwrap_or_default();
        if let Some(last) = rooms.last_mut() {
            last.extend(lone);
        }
    }

    let rss = Arc::new(std::sync::Mutex::new(vec![resident_kb()]));
    let sampler = {
        let rss = rss.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                rss.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(resident_kb());
            }
        })
    };

    let epoch = Instant::now();
    let barrier = Arc::new(Barrier::new(clients + 1));
    // Nobody closes before everyone has heard all it should: a socket's
    // $disconnect does not wait for its last frames' invocations (as on API
    // Gateway), so closing right after sending can lose them.
    let heard = Arc::new(Barrier::new(clients));
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<u64>();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (r, members) in rooms.iter().enumerate() {
        for &i in members {
            let token = tokens.issue(&format!("user-{i}"), &format!("Load {i}"), now);
            let url = format!("{ws_base}/ws?token={token}");
            let room = format!("load-{r}");
            let expected_peers = members.len() - 1;
            let barrier = barrier.clone();
            let heard = heard.clone();
            let lat_tx = lat_tx.clone();
            tasks.push(tokio::spawn(async move {
                client(
                    url,
                    room,
                    expected_peers,
                    rounds,
                    gap,
                    barrier,
                    heard,
                    lat_tx,
                    epoch,
                    i,
                )
                .await
            }));
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    drop(lat_tx);
    tokio::time::timeout(PHASE_DEADLINE, barrier.wait())
        .await
        .context("clients did not all join in time")?;
    let joined_in = started.elapsed();
    let sending = Instant::now();
    let rss_joined = resident_kb();

    let mut latencies = Vec::new();
    let deadline = tokio::time::sleep(PHASE_DEADLINE + gap.saturating_mul(rounds as u32));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            l = lat_rx.recv() => match l { Some(l) => latencies.push(l), None => break },
            _ = &mut deadline => break,
        }
    }
    let elapsed = sending.elapsed();
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let expected = clients * rounds;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|ns| *ns as f64 / 1e6)
            .unwrap_or(f64::NAN)
    };
    println!(
        "tincan-load: backend={backend} clients={clients} rooms={} rounds={rounds} gap={}ms",
        rooms.len(),
        gap.as_millis()
    );
    println!("  all joined in          {:.2} s", joined_in.as_secs_f64());
    println!("  signals sent           {expected}");
    println!("  signals received       {}", latencies.len());
    println!(
        "  signals lost           {}",
        expected.saturating_sub(latencies.len())
    );
    println!("  one-hop latency p50    {:.3} ms", pct(0.50));
    println!("  one-hop latency p99    {:.3} ms", pct(0.99));
    println!("  one-hop latency max    {:.3} ms", pct(1.0));
    println!(
        "  signal throughput      {:.0} msg/s",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!("  clients with errors    {failed}");
    sampler.abort();
    let samples = rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let start_kb = samples.first().copied().unwrap_or(0);
    let peak_kb = samples.iter().copied().max().unwrap_or(0);
    println!(
        "  resident memory        start {} MB, all joined {} MB, end {} MB, peak {} MB",
        start_kb / 1024,
        rss_joined / 1024,
        resident_kb() / 1024,
        peak_kb / 1024
    );
    if let Some(stack) = stack {
        stack.stop().await;
    }
    if failed > 0 || latencies.len() < expected {
        bail!(
            "{failed} clients failed, {} signals lost",
            expected - latencies.len()
        );
    }
    Ok(())
}

/// This process's resident set, kB (Linux; 0 elsewhere).
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn client(
    url: String,
    room: String,
    expected_peers: usize,
    rounds: usize,
    gap: Duration,
    barrier: Arc<Barrier>,
    heard: Arc<Barrier>,
    lat_tx: mpsc::UnboundedSender<u64>,
    epoch: Instant,
    index: usize,
) -> anyhow::Result<()> {
    let result = async {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true).await?;
        let (mut sink, mut stream) = ws.split();
        sink.send(Message::text(
            json!({"action": "join", "room": room}).to_string(),
        ))
        .await?;
        // Wait until everyone in the room is known, so ids are in hand. Each
        // peer must be announced exactly once, however the joins interleave.
        let mut peers: Vec<String> = Vec::new();
        fn learn(peers: &mut Vec<String>, id: &str) -> anyhow::Result<()> {
            anyhow::ensure!(!peers.iter().any(|p| p == id), "peer {id} announced twice");
            peers.push(id.to_owned());
            Ok(())
        }
        let mut me = String::new();
        while me.is_empty() || peers.len() < expected_peers {
            let v = next(&mut stream).await?;
            match v["type"].as_str() {
                Some("joined") => {
                    me = v["self"]["peerId"].as_str().unwrap_or_default().to_owned();
                    for p in v["peers"].as_array().into_iter().flatten() {
                        learn(&mut peers, p["peerId"].as_str().unwrap_or_default())?;
                    }
                }
                Some("peer-joined") => {
                    learn(&mut peers, v["peer"]["peerId"].as_str().unwrap_or_default())?
                }
                _ => {}
            }
        }
        Ok::<_, anyhow::Error>((sink, stream, me, peers))
    }
    .await;
    // Everyone reaches the barrier, even on error, so the run never hangs.
    barrier.wait().await;
    let (mut sink, mut stream, me, peers) = result?;
    let mut ring: Vec<String> = peers.into_iter().collect();
    // A ring over the room's ids in sorted order: each peer sends to the
    // next and hears from exactly one, `rounds` times.
    ring.push(me.clone());
    ring.sort();
    ring.dedup();
    let at = ring.iter().position(|id| *id == me).unwrap_or(0);
    let target = ring[(at + 1) % ring.len()].clone();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < rounds {
            let Ok(v) = next(&mut stream).await else {
                break;
            };
            if v["type"] == "signal" {
                if let Some(t) = v["data"]["t"].as_u64() {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let _ = lat_tx.send(now.saturating_sub(t));
                    got += 1;
                }
            }
        }
    });
    // Spread the clients' sends over the gap, as real traffic would be.
    let offset = gap.as_micros() as u64 * ((index as u64 * 7919) % 97) / 97;
    tokio::time::sleep(Duration::from_micros(offset)).await;
    for seq in 0..rounds {
        let t = epoch.elapsed().as_nanos() as u64;
        let frame = json!({"action": "signal", "to": &target, "data": {"seq": seq, "t": t}});
        sink.send(Message::text(frame.to_string())).await?;
        tokio::time::sleep(gap).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    let _ = tokio::time::timeout(Duration::from_secs(15), heard.wait()).await;
    let _ = sink.close().await;
    Ok(())
}

async fn next<S>(stream: &mut S) -> anyhow::Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .context("no frame in 30 s")?
            .context("socket closed")??;
        if let Message::Text(t) = msg {
            return Ok(serde_json::from_str(&t)?);
        }
    }
}
