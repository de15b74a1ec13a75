//! What a control request costs, token check included, without criterion:
//! `cargo bench -p tincan-media-node --bench sfu_control`.
//!
//! Prints medians: minting and verifying a token in-process, and a whole
//! `mute` request (a new loopback TCP connection, the token minted,
//! checked and the engine asked) through `SfuControlClient` to an
//! embedded node.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tincan_media_node::{ControlSecret, MediaNodeConfig, PeerFilter, SfuConfig, TurnSecret};
use tincan_sfu_control::{ReplayGuard, RequestTarget, SfuControlClient, REPLAY_GUARD_CAPACITY};

const SECRET: &str = "bench-control-secret-of-at-least-32-bytes";
const TURN_SECRET: &str = "bench-turn-secret-of-at-least-32-bytes!";
const LOCAL_ROUNDS: usize = 20_000;
const HTTP_ROUNDS: usize = 2_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(rounds: usize, mut op: impl FnMut(usize)) -> Duration {
    for i in 0..rounds / 10 {
        op(i);
    }
    median(
        (0..rounds)
            .map(|i| {
                let start = Instant::now();
                op(i);
                start.elapsed()
            })
            .collect(),
    )
}

fn print(label: &str, median: Duration) {
    println!(
        "{label:<52} median {:>9.1} us",
        median.as_nanos() as f64 / 1000.0
    );
}

fn main() -> anyhow::Result<()> {
    let secret = ControlSecret::new(SECRET)?;
    let t = now();
    let body = br#"{"muted":true}"#;
    let target = RequestTarget {
        method: "POST",
        path: "/sfu/v1/rooms/room1/peers/peer1/mute",
        body,
    };
    print(
        "mint a token",
        time(LOCAL_ROUNDS, |_| {
            black_box(tincan_sfu_control::mint(&secret, &target, t));
        }),
    );
    let token = tincan_sfu_control::mint(&secret, &target, t);
    print(
        "verify a token (signature, time, method, path, body)",
        time(LOCAL_ROUNDS, |_| {
            black_box(tincan_sfu_control::verify_request(
                &secret, &token, &target, t,
            ))
            .ok();
        }),
    );
    // Spending a token: a full guard of live ids, one more id each round.
    let tokens: Vec<_> = (0..LOCAL_ROUNDS + LOCAL_ROUNDS / 10)
        .map(|_| {
            let token = tincan_sfu_control::mint(&secret, &target, t);
            tincan_sfu_control::verify(&secret, &token, t)
        })
        .collect::<Result<_, _>>()?;
    let mut guard = ReplayGuard::new(REPLAY_GUARD_CAPACITY);
    print(
        "spend a token id (replay guard)",
        time(LOCAL_ROUNDS, |i| {
            black_box(guard.use_once(&tokens[i], t)).ok();
        }),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = MediaNodeConfig::new(TurnSecret::new(TURN_SECRET))
            .with_listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .with_peers(PeerFilter::default().allow_loopback());
        config.sfu = Some(SfuConfig::loopback(secret.clone()));
        let node = tincan_media_node::start(config).await?;
        let base = format!(
            "http://{}",
            node.sfu_control_addr()
                .ok_or_else(|| anyhow::anyhow!("no SFU"))?
        );
        let client = SfuControlClient::new(secret.clone())?;
        for _ in 0..HTTP_ROUNDS / 10 {
            client.mute(&base, "room1", "peer1", true, now()).await?;
        }
        let mut samples = Vec::with_capacity(HTTP_ROUNDS);
        for _ in 0..HTTP_ROUNDS {
            let start = Instant::now();
            client.mute(&base, "room1", "peer1", true, now()).await?;
            samples.push(start.elapsed());
        }
        print(
            "mute request over loopback (new connection each)",
            median(samples),
        );
        anyhow::Ok(())
    })
}
