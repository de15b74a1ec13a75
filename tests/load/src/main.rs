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
//! 250: each client sends one signal every GAP_MS).
//!
//! Options, from the environment:
//! - `TINCAN_LOAD_SPAWN=1`: run the stack in a child process (this binary as
//!   `tincan-load serve SOCKETS`, which prints its `ws://` base and serves
//!   until its stdin closes), so its CPU and RSS are the server's alone.
//! - `TINCAN_LOAD_SERVER_PID=PID`: with `TINCAN_LOAD_TARGET`, the process
//!   whose CPU and RSS to report.
//! - `TINCAN_LOAD_IDLE=K`: K more sockets, joined in rooms of 2 before the
//!   load starts, that send nothing (the cost of other connections).
//!
//! With a server process known, it also prints the server's RSS per open
//! socket (RSS with every socket joined, less RSS before the first one,
//! over CLIENTS + K) and its CPU time per delivered signal (CPU time from
//! the first signal sent to the last one heard, over signals heard). The
//! last line, `result {...}`, holds every figure as one JSON object.
//! The open-file limit is raised to the hard limit (`ulimit -Hn`).
//!
//! The sending phase may last ROUNDS x GAP_MS plus two minutes, so it
//! doubles as a soak (`tests/bench/soak.sh`: 1000 clients, 600 rounds,
//! 1000 ms). It prints this process's resident memory (stack and clients
//! together, unless the stack is spawned) at the start, once everyone has
//! joined, and at the end, with its peak.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::LocalStack;
use tincan_token::TokenKeys;
use tokio::sync::{mpsc, watch, Barrier};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

mod server;
use server::{Spawned, SECRET};

const PHASE_DEADLINE: Duration = Duration::from_secs(120);

/// Small client buffers, so thousands of sockets fit in this process.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

fn env_usize(name: &str) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().with_context(|| format!("{name}={v:?}")),
        _ => Ok(0),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("serve") {
        args.next();
        let sockets = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
        return server::serve(sockets).await;
    }
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let gap = Duration::from_millis(args.next().map(|a| a.parse()).transpose()?.unwrap_or(250));
    if clients < 2 {
        bail!("need at least 2 clients");
    }

    let idle = env_usize("TINCAN_LOAD_IDLE")?;
    let nofile = server::raise_nofile();
    let sockets = clients + idle;
    let dir = tempfile::tempdir()?;
    let backend = if std::env::var("DYNAMODB_ENDPOINT").is_ok_and(|v| !v.is_empty()) {
        "dynamodb"
    } else {
        "memory"
    };
    let mut spawned = None;
    let mut server_pid = None;
    let (stack, ws_base, secret, backend) = match std::env::var("TINCAN_LOAD_TARGET") {
        // An already running stack (e.g. forwarding to real Lambdas), whose
        // token secret is in TINCAN_JWT_SECRET.
        Ok(target) if !target.is_empty() => {
            let secret = std::env::var("TINCAN_JWT_SECRET")
                .context("TINCAN_LOAD_TARGET needs the target's TINCAN_JWT_SECRET")?;
            server_pid = Some(env_usize("TINCAN_LOAD_SERVER_PID")? as u32).filter(|p| *p > 0);
            (None, target, secret, "external")
        }
        _ if std::env::var("TINCAN_LOAD_SPAWN").is_ok_and(|v| v == "1") => {
            let child = Spawned::start(sockets).await?;
            server_pid = child.pid();
            let base = child.base.clone();
            spawned = Some(child);
            (None, base, SECRET.to_owned(), backend)
        }
        _ => {
            let config = server::load_config(sockets, dir.path())?;
            let stack = LocalStack::start(config).await?;
            let base = format!("ws://{}", stack.addr);
            (Some(stack), base, SECRET.to_owned(), backend)
        }
    };
    // Let the server settle before its baseline is read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_base = server_pid.and_then(server::usage);
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

    // The idle sockets first, all joined before the load starts.
    let (done_tx, done_rx) = watch::channel(false);
    let mut idle_tasks = Vec::with_capacity(idle);
    for k in 0..idle {
        let token = tokens.issue(&format!("idle-{k}"), &format!("Idle {k}"), now);
        let url = format!("{ws_base}/ws?token={token}");
        let room = format!("idle-{}", k / 2);
        idle_tasks.push(tokio::spawn(idle_client(url, room, done_rx.clone())));
        if k % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut idle_failed = 0;
    let mut idle_holders = Vec::new();
    for task in idle_tasks {
        // Each answers once joined (or failed), then idles until `done`.
        match tokio::time::timeout(PHASE_DEADLINE, task).await {
            Ok(Ok(Ok(holder))) => idle_holders.push(holder),
            _ => idle_failed += 1,
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
    let at_start = server_pid.and_then(server::usage);
    let rss_joined = resident_kb();

    let mut latencies = Vec::new();
    let deadline = tokio::time::sleep(PHASE_DEADLINE + gap.saturating_mul(rounds as u32));
    tokio::pin!(deadline);
    let expected = clients * rounds;
    // Until every signal is heard (or the clients give up): the closes that
    // follow are not part of the load.
    while latencies.len() < expected {
        tokio::select! {
            l = lat_rx.recv() => match l { Some(l) => latencies.push(l), None => break },
            _ = &mut deadline => break,
        }
    }
    let elapsed = sending.elapsed();
    let at_end = server_pid.and_then(server::usage);
    let _ = done_tx.send(true);
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
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
    let end_kb = resident_kb();
    // The sampler runs every 5 s; a short run has fewer samples than marks.
    let peak_kb = samples
        .iter()
        .copied()
        .chain([rss_joined, end_kb])
        .max()
        .unwrap_or(0);
    println!(
        "  resident memory        start {} MB, all joined {} MB, end {} MB, peak {} MB",
        start_kb / 1024,
        rss_joined / 1024,
        end_kb / 1024,
        peak_kb / 1024
    );
    let throughput = latencies.len() as f64 / elapsed.as_secs_f64();
    let mut result = json!({
        "backend": backend, "clients": clients, "idle": idle, "rooms": rooms.len(),
        "rounds": rounds, "gap_ms": gap.as_millis() as u64, "nofile": nofile,
        "joined_s": joined_in.as_secs_f64(), "sent": expected, "received": latencies.len(),
        "lost": expected.saturating_sub(latencies.len()),
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        "throughput": throughput, "failed": failed, "idle_failed": idle_failed,
    });
    if idle > 0 {
        println!("  idle sockets           {idle} ({idle_failed} failed)");
    }
    if let (Some(pid), Some(base), Some(start), Some(end)) =
        (server_pid, rss_base, at_start, at_end)
    {
        let rss_per_conn = (start.rss_kib.saturating_sub(base.rss_kib)) as f64 / sockets as f64;
        let cpu = end.cpu_secs - start.cpu_secs;
        let per_signal_us = cpu * 1e6 / latencies.len().max(1) as f64;
        println!("  server pid             {pid}");
        println!(
            "  server rss idle        {:.1} MiB",
            base.rss_kib as f64 / 1024.0
        );
        println!(
            "  server rss all joined  {:.1} MiB",
            start.rss_kib as f64 / 1024.0
        );
        println!(
            "  server rss end         {:.1} MiB",
            end.rss_kib as f64 / 1024.0
        );
        println!("  server rss per socket  {rss_per_conn:.1} KiB");
        println!("  server cpu (signals)   {cpu:.2} s");
        println!("  server cpu per signal  {per_signal_us:.1} us");
        result["server_pid"] = json!(pid);
        result["server_rss_base_kib"] = json!(base.rss_kib);
        result["server_rss_joined_kib"] = json!(start.rss_kib);
        result["server_rss_end_kib"] = json!(end.rss_kib);
        result["rss_per_socket_kib"] = json!(rss_per_conn);
        result["server_cpu_s"] = json!(cpu);
        result["cpu_us_per_signal"] = json!(per_signal_us);
    }
    println!("result {result}");
    for holder in idle_holders {
        let _ = tokio::time::timeout(Duration::from_secs(15), holder).await;
    }
    if let Some(stack) = stack {
        stack.stop().await;
    }
    if let Some(child) = spawned {
        child.stop().await;
    }
    if failed > 0 || idle_failed > 0 || latencies.len() < expected {
        bail!(
            "{failed} clients and {idle_failed} idle sockets failed, {} signals lost",
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
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(&url, Some(client_config()), true).await?;
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

/// An idle socket: joins `room`, answers once joined, then reads (and
/// ignores) whatever comes until `done`, and closes.
async fn idle_client(
    url: String,
    room: String,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(&url, Some(client_config()), true).await?;
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(
        json!({"action": "join", "room": room}).to_string(),
    ))
    .await?;
    loop {
        let v = next(&mut stream).await?;
        if v["type"] == "joined" {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = done.wait_for(|d| *d) => break,
                frame = stream.next() => if !matches!(frame, Some(Ok(_))) { break },
            }
        }
        let _ = sink.close().await;
    }))
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
