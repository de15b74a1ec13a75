//! Login latency and `GET /me` throughput over real HTTP on loopback.
//!
//! Serves the API router (as the local stack does) on 127.0.0.1:0 with the
//! default argon2id parameters, then measures:
//! 1. login latency, one request at a time (argon2 cost included);
//! 2. login throughput with `BENCH_CONCURRENCY` clients;
//! 3. `GET /me` throughput with `BENCH_CONCURRENCY` clients for `BENCH_SECS`.
//!
//! `cargo bench -p tincan-http-api --bench auth` (release). The store is the
//! embedded one; `BENCH_BACKEND=mongo` starts a SecantusDB server instead, or
//! uses `MONGODB_URI` if set.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tincan_accounts::secantus::Secantus;
use tincan_accounts::{
    AccountOptions, AccountService, AuthLimits, EmbeddedStore, MongoConfig, MongoStore, Stores,
};
use tincan_http_api::{router, ApiState, CorsOrigins, TurnSettings};
use tincan_token::TokenKeys;
use tincan_turn_credentials::TurnSecret;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name}: n={} mean={mean:.2?} p50={:.2?} p95={:.2?} max={:.2?}",
        times.len(),
        pct(&times, 0.5),
        pct(&times, 0.95),
        times[times.len() - 1]
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = env_num("BENCH_CONCURRENCY", 16) as usize;
    let secs = env_num("BENCH_SECS", 5);
    let dir = tempfile::tempdir()?;
    let mut _server = None;
    let (stores, backend) = if std::env::var("BENCH_BACKEND").as_deref() == Ok("mongo") {
        let uri = match std::env::var("MONGODB_URI") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                let s = Secantus::start().context("start secantusd-py")?;
                let uri = s.uri();
                _server = Some(s);
                uri
            }
        };
        let mut config = MongoConfig::new(uri);
        config.database = format!("tincan_bench_{}", std::process::id());
        let store = MongoStore::connect(&config).await?;
        (Stores::from_backend(Arc::new(store)), "mongodb")
    } else {
        let store = EmbeddedStore::open(dir.path())?;
        (Stores::from_backend(Arc::new(store)), "embedded")
    };
    // Limits off: the bench logs in with wrong passwords more often than a
    // user may.
    let accounts = AccountService::with_options(
        stores,
        TokenKeys::new(b"bench-secret-bench-secret-bench-secret", 900)?,
        AccountOptions {
            limits: AuthLimits::off(),
            refresh_ttl_secs: 3600,
            ..AccountOptions::default()
        },
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
        .pool_max_idle_per_host(256)
        .build()?;
    println!(
        "backend={backend} concurrency={concurrency} secs={secs} cores={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let body = serde_json::json!({"username": "bench", "password": "correct horse battery", "displayName": "Bench"});
    let r = client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "register: {}", r.status());

    let login_body = serde_json::json!({"username": "bench", "password": "correct horse battery"});
    let mut times = Vec::new();
    let mut token = String::new();
    for _ in 0..30 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/auth/login"))
            .json(&login_body)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "login: {}", r.status());
        let v: serde_json::Value = r.json().await?;
        times.push(t.elapsed());
        token = v["accessToken"].as_str().unwrap_or_default().to_owned();
    }
    summary("login latency (sequential)", times);

    let wrong = serde_json::json!({"username": "bench", "password": "wrong horse battery"});
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/auth/login"))
            .json(&wrong)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 401);
        times.push(t.elapsed());
    }
    summary("login wrong password (sequential)", times);
    let unknown = serde_json::json!({"username": "nobody", "password": "wrong horse battery"});
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/auth/login"))
            .json(&unknown)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 401);
        times.push(t.elapsed());
    }
    summary("login unknown user (sequential)", times);

    // Concurrent logins: argon2 is the bottleneck.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, body) = (client.clone(), base.clone(), login_body.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..4 {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/auth/login"))
                    .json(&body)
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 200) {
                    times.push(t.elapsed());
                }
            }
            times
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await?);
    }
    let n = times.len();
    summary("login latency (concurrent)", times);
    println!(
        "login throughput: {:.1} logins/s",
        n as f64 / started.elapsed().as_secs_f64()
    );

    // GET /me for a fixed time.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), format!("{base}/me"), token.clone());
        let (stop, count, errors) = (stop.clone(), count.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        count.fetch_add(1, Ordering::Relaxed);
                        if times.len() < 100_000 {
                            times.push(t.elapsed());
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            times
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    summary("GET /me latency", times);
    println!(
        "GET /me throughput: {:.0} req/s ({} ok, {} errors)",
        count.load(Ordering::Relaxed) as f64 / elapsed,
        count.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    server.abort();
    Ok(())
}
