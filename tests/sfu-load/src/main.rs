//! `tincan-sfu-load`: N synthetic WebRTC participants (webrtc-rs) in one
//! audio room, on Tincan's SFU or on Janus (VideoRoom or AudioBridge), so
//! one tool measures both.
//!
//! Every participant publishes a tagged Opus packet every 20 ms (sender and
//! send time in the Opus padding, see `payload.rs`) with an RFC 6464 audio
//! level from a schedule: `--speakers K` speak, the last `--muted M` are
//! muted, the rest are silent (level 127). Every participant counts what it
//! receives per slot (packets, loss from the slot's sequence numbers,
//! latency from the tag) inside a measurement window that opens
//! `--warmup` seconds after the last participant is in and lasts
//! `--duration` seconds, and, on Tincan, checks the node's
//! `active-speakers` events against the senders of the packets in each
//! slot. The tool prints one line, `result {...}` (JSON).
//!
//! - `--system tincan`: sign-up/login over the HTTP API at `--url`, join
//!   over the signaling WebSocket; once the room is in SFU mode (docs/sfu.md),
//!   one complete offer (a send-only audio m-line with the audio-level
//!   extension, `slots` receive-only ones, data channel `tincan`) as
//!   `sfu-offer`, `sfu-answer` applied.
//! - `--system janus-videoroom`: Janus REST API at `--url` (`.../janus`); each
//!   participant publishes one audio stream and subscribes, on a second
//!   connection Janus offers, to the initial speakers other than itself (a
//!   client-side choice of the K speakers: VideoRoom does not pick them).
//! - `--system janus-audiobridge`: each participant sends into and receives
//!   the room's mix (no tags survive mixing: no latency or attribution).
//! - `--system direct`: no server, each participant sends straight to the
//!   next one: the latency the tool's own stacks add, to subtract.
//!
//! With `--server-pid`, the server's CPU time in the window (from
//! `/proc/PID/stat`) and its resident memory (before the first participant,
//! on Tincan once all have signed in and joined, as login hashing keeps its
//! argon2 memory; and at the end of the window) go into the result.

mod flows;
mod janus;
mod payload;
mod peer;
mod stats;
mod tincan;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use flows::{Live, Schedule, Shared};
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Tincan,
    JanusVideoroom,
    JanusAudiobridge,
    /// No server: each participant sends straight to the next one, the
    /// latency floor of the tool itself.
    Direct,
}

#[derive(Debug, Parser)]
#[command(about = "SFU load: N synthetic WebRTC participants in one room on Tincan or Janus")]
struct Cli {
    /// Which server and API.
    #[arg(
        long,
        value_enum,
        env = "TINCAN_SFU_LOAD_SYSTEM",
        default_value = "tincan"
    )]
    system: System,
    /// Tincan: the local stack's base URL; Janus: the REST API root.
    #[arg(
        long,
        env = "TINCAN_SFU_LOAD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    #[arg(long, env = "TINCAN_SFU_LOAD_PARTICIPANTS", default_value_t = 10)]
    participants: usize,
    /// Participants speaking (distinct audio levels, loudest first).
    #[arg(long, env = "TINCAN_SFU_LOAD_SPEAKERS", default_value_t = 3)]
    speakers: usize,
    /// The last M participants are muted (Tincan: `mute`; AudioBridge: joined muted).
    #[arg(long, env = "TINCAN_SFU_LOAD_MUTED", default_value_t = 0)]
    muted: usize,
    /// Move the speaking role to the next K participants every so many
    /// seconds (Tincan only: Janus subscriptions are fixed); 0: never.
    #[arg(long, env = "TINCAN_SFU_LOAD_ROTATE_SECS", default_value_t = 0)]
    rotate_secs: u64,
    /// Room name (Tincan) or the seed of the numeric room id (Janus).
    #[arg(long, env = "TINCAN_SFU_LOAD_ROOM", default_value = "sfuload")]
    room: String,
    /// Length of the measurement window, seconds.
    #[arg(long, env = "TINCAN_SFU_LOAD_DURATION", default_value_t = 10)]
    duration: u64,
    /// Seconds between the last join and the window.
    #[arg(long, env = "TINCAN_SFU_LOAD_WARMUP", default_value_t = 2)]
    warmup: u64,
    /// Participants joining at once.
    #[arg(long, env = "TINCAN_SFU_LOAD_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Where the participants' UDP sockets bind (their host candidate).
    #[arg(long, env = "TINCAN_SFU_LOAD_BIND_IP", default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Bytes of Opus payload per packet (80: speech at 32 kbit/s).
    #[arg(long, env = "TINCAN_SFU_LOAD_PACKET_SIZE", default_value_t = 80)]
    packet_size: usize,
    /// The server process to measure (CPU, RSS).
    #[arg(long, env = "TINCAN_SFU_LOAD_SERVER_PID")]
    server_pid: Option<u32>,
}

/// utime + stime of a process in seconds, and its resident set in KiB.
fn process_usage(pid: &str) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // 3rd field, utime the 14th, stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    // USER_HZ is 100 on every Linux we run on.
    Some((ticks / 100.0, rss))
}

/// A stable numeric Janus room id from the room name.
fn room_number(room: &str) -> u64 {
    room.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000_000
        + 1
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error,tincan_sfu_load=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    if cli.participants == 0 {
        bail!("--participants must be at least 1");
    }
    let server = cli.server_pid.map(|p| p.to_string());
    let usage = |what: &str| -> Option<(f64, u64)> {
        let u = server.as_deref().and_then(process_usage);
        if server.is_some() && u.is_none() {
            tracing::warn!("cannot read the server's /proc entry {what}");
        }
        u
    };
    let mut before = usage("before");

    let (stop_tx, stop) = watch::channel(false);
    let shared = Arc::new(Shared {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        url: cli.url.trim_end_matches('/').to_owned(),
        room: cli.room.clone(),
        bind_ip: cli.bind_ip,
        packet_size: cli.packet_size,
        schedule: Schedule {
            participants: cli.participants,
            speakers: cli.speakers,
            muted: cli.muted,
            rotate: (cli.rotate_secs > 0).then(|| Duration::from_secs(cli.rotate_secs)),
            start: Instant::now(),
        },
        window: Arc::default(),
        stop,
        sent: Arc::new(AtomicU64::new(0)),
        peer_ids: Default::default(),
    });

    let setup_started = Instant::now();
    let janus_room = room_number(&cli.room);
    let (live, failures) = match cli.system {
        System::Tincan => {
            // The baseline once everyone has signed in and joined: login
            // hashing keeps its argon2 memory (19 MiB a worker) for reuse,
            // which says nothing about what a call costs.
            let (joined, after_sign_in) = tincan(&shared, &cli).await;
            if after_sign_in.is_some() {
                before = after_sign_in;
            }
            joined
        }
        System::Direct => {
            let s = Arc::clone(&shared);
            join_all(cli.participants, cli.concurrency, move |i| {
                flows::direct(Arc::clone(&s), i)
            })
            .await
        }
        System::JanusVideoroom => videoroom(&shared, &cli, janus_room).await?,
        System::JanusAudiobridge => {
            create_janus_room(
                &shared,
                "janus.plugin.audiobridge",
                json!({"request": "create", "room": janus_room, "sampling_rate": 48000,
                       "audiolevel_ext": true}),
            )
            .await?;
            let s = Arc::clone(&shared);
            join_all(cli.participants, cli.concurrency, move |i| {
                flows::audiobridge(Arc::clone(&s), i, janus_room)
            })
            .await
        }
    };
    let setup_s = setup_started.elapsed().as_secs_f64();
    for (i, e) in failures.iter().take(5) {
        tracing::error!(participant = i, "failed: {e:#}");
    }
    if live.is_empty() {
        bail!("no participant got in");
    }

    // The window.
    let start = payload::now_us() + cli.warmup * 1_000_000;
    let end = start + cli.duration * 1_000_000;
    shared.window.set(start, end);
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;
    let at_start = usage("at the window's start");
    let tool_at_start = process_usage("self");
    tokio::time::sleep(Duration::from_secs(cli.duration)).await;
    let at_end = usage("at the window's end");
    let tool_at_end = process_usage("self");
    stop_tx.send_replace(true);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Totals.
    let n = live.len();
    let (mut received, mut expected, mut bytes) = (0u64, 0u64, 0u64);
    let (mut mismatches, mut self_packets, mut untagged, mut events) = (0u64, 0u64, 0u64, 0u64);
    let mut muted_packets = 0u64;
    let mut latencies = Vec::new();
    let mut silent_receivers = 0usize;
    for p in &live {
        let Ok(r) = p.receiver.lock() else { continue };
        let (got, want) = r.received_and_expected();
        if got == 0 {
            silent_receivers += 1;
        }
        received += got;
        expected += want;
        bytes += r.bytes;
        mismatches += r.mismatches;
        self_packets += r.self_packets;
        muted_packets += r.muted_packets;
        untagged += r.untagged;
        events += r.speaker_events;
        latencies.extend_from_slice(&r.latencies_us);
    }
    latencies.sort_unstable();
    let ms = |p: f64| stats::percentile(&latencies, p).map(|us| f64::from(us) / 1000.0);
    let window_s = cli.duration as f64;
    let sent = shared.sent.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    let mut result = json!({
        "system": cli.system.to_possible_value().map(|v| v.get_name().to_owned()),
        "participants": cli.participants,
        "joined": n,
        "failed": failures.len(),
        "speakers": cli.speakers,
        "muted": cli.muted,
        "window_s": window_s,
        "setup_s": (setup_s * 100.0).round() / 100.0,
        "sent_packets": sent,
        "received_packets": received,
        "expected_packets": expected,
        "lost_packets": lost,
        "loss_pct": if expected > 0 { 100.0 * lost as f64 / expected as f64 } else { 0.0 },
        "latency_ms_p50": ms(50.0),
        "latency_ms_p99": ms(99.0),
        "latency_ms_max": latencies.last().map(|&us| f64::from(us) / 1000.0),
        "downlink_bytes_per_participant": bytes / n as u64,
        "downlink_kbps_per_participant": (bytes as f64 * 8.0 / 1000.0 / window_s / n as f64 * 10.0).round() / 10.0,
        "receivers_with_nothing": silent_receivers,
        "speaker_events": events,
        "mismatches": mismatches,
        "own_packets_received": self_packets,
        "muted_packets_received": muted_packets,
        "untagged_packets": untagged,
    });
    if let (Some((c0, _)), Some((c1, rss))) = (at_start, at_end) {
        let cpu = c1 - c0;
        result["server_cpu_s"] = json!((cpu * 1000.0).round() / 1000.0);
        result["server_cpu_pct"] = json!((100.0 * cpu / window_s * 10.0).round() / 10.0);
        // Per packet forwarded (received by a participant), and per packet
        // published (what a mixer handles too).
        if received > 0 {
            result["server_cpu_us_per_packet"] =
                json!((cpu * 1e6 / received as f64 * 100.0).round() / 100.0);
        }
        if sent > 0 {
            result["server_cpu_us_per_sent_packet"] =
                json!((cpu * 1e6 / sent as f64 * 100.0).round() / 100.0);
        }
        result["server_rss_kib"] = json!(rss);
        if let Some((_, rss0)) = before {
            result["server_rss_kib_before"] = json!(rss0);
            result["server_rss_kib_per_participant"] =
                json!(rss.saturating_sub(rss0) as f64 / n as f64);
        }
    }
    if let (Some((c0, _)), Some((c1, rss))) = (tool_at_start, tool_at_end) {
        result["tool_cpu_pct"] = json!((100.0 * (c1 - c0) / window_s * 10.0).round() / 10.0);
        result["tool_rss_kib"] = json!(rss);
    }
    println!("result {result}");

    let leaving: Vec<_> = live.into_iter().map(|p| tokio::spawn(p.leave())).collect();
    for l in leaving {
        let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
    }
    if n < cli.participants {
        bail!(
            "{} of {} participants failed to join",
            failures.len(),
            cli.participants
        );
    }
    Ok(())
}

type Joined = (Vec<Live>, Vec<(usize, anyhow::Error)>);

/// Runs `join(i)` for every participant, `concurrency` at a time.
async fn join_all<T, F, Fut>(
    n: usize,
    concurrency: usize,
    join: F,
) -> (Vec<T>, Vec<(usize, anyhow::Error)>)
where
    T: Indexed + Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let gate = Arc::clone(&gate);
        let fut = join(i);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            (i, fut.await)
        });
    }
    let (mut live, mut failed) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((_, Ok(p))) => live.push(p),
            Ok((i, Err(e))) => failed.push((i, e)),
            Err(e) => failed.push((usize::MAX, e.into())),
        }
    }
    live.sort_by_key(|p| p.index());
    (live, failed)
}

/// Something that belongs to one participant.
trait Indexed {
    fn index(&self) -> usize;
}

impl Indexed for Live {
    fn index(&self) -> usize {
        self.index
    }
}

impl Indexed for flows::InRoom {
    fn index(&self) -> usize {
        self.index()
    }
}

/// Tincan: everyone joins first (the room moves to the SFU as it passes
/// the mesh size), then everyone connects to the node. Also returns the
/// server's usage between the two.
async fn tincan(shared: &Arc<Shared>, cli: &Cli) -> (Joined, Option<(f64, u64)>) {
    let s = Arc::clone(shared);
    let (joined, mut failed) = join_all(cli.participants, cli.concurrency, move |i| {
        flows::tincan_join(Arc::clone(&s), i)
    })
    .await;
    let after_sign_in = cli
        .server_pid
        .and_then(|pid| process_usage(&pid.to_string()));
    let gate = Arc::new(Semaphore::new(cli.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for p in joined {
        let (s, gate) = (Arc::clone(shared), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let i = p.index();
            (i, flows::tincan_connect(s, p).await)
        });
    }
    let mut live = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((_, Ok(p))) => live.push(p),
            Ok((i, Err(e))) => failed.push((i, e)),
            Err(e) => failed.push((usize::MAX, e.into())),
        }
    }
    live.sort_by_key(|p| p.index);
    ((live, failed), after_sign_in)
}

async fn create_janus_room(shared: &Shared, plugin: &str, body: serde_json::Value) -> Result<()> {
    let admin = janus::Session::create(shared.http.clone(), &shared.url)
        .await
        .context("Janus session")?;
    let handle = admin.attach(plugin).await?;
    if let Err(e) = admin.request(handle, body).await {
        // A room left by an earlier run is fine.
        tracing::warn!("room create: {e:#}");
    }
    admin.destroy().await;
    Ok(())
}

/// VideoRoom: every participant publishes, then subscribes to the initial
/// speakers other than itself.
async fn videoroom(shared: &Arc<Shared>, cli: &Cli, room: u64) -> Result<Joined> {
    create_janus_room(
        shared,
        "janus.plugin.videoroom",
        json!({"request": "create", "room": room, "publishers": cli.participants + 1,
               "audiocodec": "opus", "audiolevel_ext": true, "bitrate": 0}),
    )
    .await?;
    let speakers = shared.schedule.initial_speakers();
    let slots = speakers.len();
    let feeds: Arc<std::sync::Mutex<Vec<(u64, usize)>>> = Arc::default();
    let (s, f) = (Arc::clone(shared), Arc::clone(&feeds));
    let (published, mut failed) = join_all(cli.participants, cli.concurrency, move |i| {
        let (s, f) = (Arc::clone(&s), Arc::clone(&f));
        async move {
            let (live, feed) = flows::videoroom_publish(s, i, room, slots).await?;
            if let Ok(mut f) = f.lock() {
                f.push((feed, i));
            }
            Ok(live)
        }
    })
    .await;
    let speaker_feeds: Vec<(u64, usize)> = feeds
        .lock()
        .map(|f| {
            f.iter()
                .copied()
                .filter(|(_, i)| speakers.contains(i))
                .collect()
        })
        .unwrap_or_default();
    // Subscribe, `concurrency` at a time; a participant whose subscription
    // fails is out.
    let gate = Arc::new(Semaphore::new(cli.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for mut live in published {
        let (s, gate) = (Arc::clone(shared), Arc::clone(&gate));
        let mine: Vec<(u64, usize)> = speaker_feeds
            .iter()
            .copied()
            .filter(|(_, i)| *i != live.index)
            .collect();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let r = flows::videoroom_subscribe(s, &mut live, room, &mine).await;
            (live, r)
        });
    }
    let mut live = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((p, Ok(()))) => live.push(p),
            Ok((p, Err(e))) => {
                failed.push((p.index, e));
                p.leave().await;
            }
            Err(e) => failed.push((usize::MAX, e.into())),
        }
    }
    live.sort_by_key(|p| p.index);
    Ok((live, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_gives_speakers_distinct_levels_and_mutes_the_tail() {
        let s = Schedule {
            participants: 6,
            speakers: 2,
            muted: 1,
            rotate: None,
            start: Instant::now(),
        };
        let now = Instant::now();
        let levels: Vec<u8> = (0..6).map(|i| s.level(i, now)).collect();
        assert_eq!(levels, vec![20, 24, 127, 127, 127, 127]);
        assert!(s.is_muted(5) && !s.is_muted(4));
    }

    #[test]
    fn schedule_rotates_the_speaking_role() {
        let start = Instant::now();
        let s = Schedule {
            participants: 5,
            speakers: 2,
            muted: 0,
            rotate: Some(Duration::from_secs(1)),
            start,
        };
        let later = start + Duration::from_millis(1500);
        let speaking: Vec<usize> = (0..5).filter(|&i| s.level(i, later) < 127).collect();
        assert_eq!(speaking, vec![2, 3]);
    }

    #[test]
    fn own_process_usage_is_readable() {
        let (cpu, rss) = process_usage("self").expect("/proc/self");
        assert!(cpu >= 0.0 && rss > 0);
        assert!(process_usage("0").is_none());
    }

    #[test]
    fn janus_room_ids_are_stable_and_positive() {
        assert_eq!(room_number("a"), room_number("a"));
        assert_ne!(room_number("a"), room_number("b"));
        assert!(room_number("") > 0);
    }
}
