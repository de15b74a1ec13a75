//! 200 concurrent logins over real HTTP with the real argon2id cost: the
//! process stays under 300 MB and a cheap route keeps answering. (Before the
//! hashing pool, this flood took the local stack from 90 MB to 3.7 GB.)
//! Alone in its file, so the RSS measured is this flood's.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tincan_accounts::{AccountOptions, AuthLimits, PasswordParams};
use tincan_http_api::router;

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_logins_keep_memory_flat_and_cheap_routes_answering() {
    let (stores, _dir) = embedded_stores();
    // Limits off: the worst case, an attacker spread over many addresses
    // and usernames, so every request reaches the hasher.
    let state = state_with(
        stores,
        AccountOptions {
            password: PasswordParams::default(),
            limits: AuthLimits::off(),
            ..AccountOptions::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let before = rss_mib();

    let flood: Vec<_> = (0..200)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{base}/auth/login"));
            let body = if i % 2 == 0 {
                serde_json::json!({"username": format!("ghost{i}"), "password": "wrong horse battery"})
            } else {
                serde_json::json!({"username": "ghost", "password": "x".repeat(200)})
            };
            tokio::spawn(async move {
                let r = client.post(url).json(&body).send().await.unwrap();
                r.status().as_u16()
            })
        })
        .collect();

    // During the flood a route that hashes nothing answers promptly.
    let mut probe_worst = Duration::ZERO;
    let mut peak = before;
    for _ in 0..10 {
        let t = Instant::now();
        let r = client.get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        probe_worst = probe_worst.max(t.elapsed());
        peak = peak.max(rss_mib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for t in flood {
        *statuses.entry(t.await.unwrap()).or_default() += 1;
        peak = peak.max(rss_mib());
    }
    let after = rss_mib();
    eprintln!(
        "rss before {before} MiB, peak {peak} MiB, after {after} MiB; answers {statuses:?}; \
         cheap route worst {probe_worst:?}"
    );
    assert!(
        statuses.keys().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&401).copied().unwrap_or(0) >= 2,
        "{statuses:?}"
    );
    assert!(peak < 300, "peak RSS {peak} MiB");
    assert!(after < 300, "RSS after {after} MiB");
    assert!(probe_worst < Duration::from_secs(5), "{probe_worst:?}");
    server.abort();
}
