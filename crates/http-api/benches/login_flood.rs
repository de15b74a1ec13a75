//! A login flood over real HTTP on loopback: memory, throughput and latency.
//!
//! Serves the API router (as the local stack does) on 127.0.0.1:0 with the
//! default argon2id parameters and hashing pool, then for each level in
//! `FLOOD` (default `200,1000`) fires that many logins at once, each for a
//! different unknown user (a full argon2 run each, as a wrong password or a
//! right one costs, and no per-username limit in the way) while a probe
//! keeps calling a route that hashes nothing. Prints the
//! process RSS before, at peak and after, the answers by status, hashed
//! logins per second, p50/p99 latencies, and the probe's latency.
//!
//! `cargo bench -p tincan-http-api --bench login_flood` (or with
//! `--profile dev`: argon2 is optimized in dev builds too).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tincan_accounts::{AccountService, EmbeddedStore, PasswordParams, Stores};
use tincan_http_api::{router, ApiState, CorsOrigins, TurnSettings};
use tincan_token::TokenKeys;
use tincan_turn_credentials::TurnSecret;

/// Resident set size of this process, MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let levels: Vec<usize> = std::env::var("FLOOD")
        .unwrap_or_else(|_| "200,1000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir()?;
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path())?));
    let accounts = AccountService::new(
        stores,
        TokenKeys::new(b"bench-secret-bench-secret-bench-secret", 900)?,
        PasswordParams::default(),
        3600,
    )?;
    let state = ApiState {
        accounts,
        turn: TurnSettings {
            secret: TurnSecret::new("bench"),
            url: "127.0.0.1:3478".into(),
            ttl_secs: 600,
        },
        cors: CorsOrigins::Any,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(300))
        .build()?;
    println!(
        "cores={} levels={levels:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let r = client
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "flood", "password": "correct horse battery", "displayName": "F"}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "register: {}", r.status());
    println!(
        "rss after start-up and one registration: {:.0} MiB",
        rss_mib()
    );

    for (round, &n) in levels.iter().enumerate() {
        let before = rss_mib();
        let peak = Arc::new(std::sync::Mutex::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let now = rss_mib();
                    {
                        let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                        *p = p.max(now);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let probe = {
            let (client, url, stop) = (client.clone(), format!("{base}/me"), stop.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if let Ok(r) = client.get(&url).send().await {
                        let _ = r.bytes().await;
                        times.push(t.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                times
            })
        };
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (client, url) = (client.clone(), format!("{base}/auth/login"));
            let body = serde_json::json!({"username": format!("ghost{round}x{i}"), "password": "wrong horse battery"});
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let status = match client.post(url).json(&body).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                (status, t.elapsed())
            }));
        }
        let (mut hashed, mut busy) = (Vec::new(), Vec::new());
        let mut other = std::collections::BTreeMap::<u16, usize>::new();
        for t in tasks {
            let (status, took) = t.await?;
            match status {
                200 | 401 => hashed.push(took),
                503 => busy.push(took),
                s => *other.entry(s).or_default() += 1,
            }
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut probe_times = probe.await?;
        sampler.await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_mib();
        hashed.sort();
        busy.sort();
        probe_times.sort();
        let peak = *peak.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "flood {n}: {} hashed (200/401), {} busy (503), other {other:?} (0: no answer), in {elapsed:.2?}: {:.1} hashed logins/s",
            hashed.len(),
            busy.len(),
            hashed.len() as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  hashed latency p50={:.2?} p99={:.2?} max={:.2?}; busy latency p99={:.2?}",
            pct(&hashed, 0.5),
            pct(&hashed, 0.99),
            hashed.last().copied().unwrap_or_default(),
            pct(&busy, 0.99)
        );
        println!(
            "  cheap route during the flood: n={} p50={:.2?} p99={:.2?} max={:.2?}",
            probe_times.len(),
            pct(&probe_times, 0.5),
            pct(&probe_times, 0.99),
            probe_times.last().copied().unwrap_or_default()
        );
        println!("  rss MiB: before {before:.0}, peak {peak:.0}, 1 s after {after:.0}");
    }
    server.abort();
    Ok(())
}
