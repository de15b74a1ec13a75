//! A client that never reads its messages fills its bounded queue; it is
//! then closed (1008) instead of silently losing messages, the one pushing
//! to it is answered at once (410 from then on), the gateway logs it once,
//! and everyone else carries on.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{closed, join, recv, send, start};
use serde_json::json;

/// Bytes the gateway logged.
static LOGGED: AtomicUsize = AtomicUsize::new(0);

struct CountingWriter;

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_while_its_sender_keeps_working() {
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(|| CountingWriter)
        .init();
    // Closed, the slow participant is ended after a one-second resume grace.
    let s = start(|config| config.resume_grace_secs = 1).await;
    let http = reqwest::Client::new();
    let mut slow = s.client("slow").await;
    let slow_id = join(&mut slow, "slow-room").await["self"]["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its connection id, from the gateway (a peer id is not a connection id).
    let slow_conn = s.stack.sockets.ids().pop().expect("one socket open");
    let mut bob = s.client("bob").await;
    join(&mut bob, "slow-room").await;
    // From here on `slow` reads nothing.

    let url = s.management(&format!("/local/@connections/{slow_conn}"));
    let bulk = json!({"type": "bulk", "pad": "x".repeat(60 * 1024)}).to_string();
    let started = Instant::now();
    let mut slowest_post = Duration::ZERO;
    let mut posts = 0;
    let mut pongs = 0;
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not closed after {posts} posts"
        );
        let t = Instant::now();
        let status = http
            .post(&url)
            .body(bulk.clone())
            .send()
            .await
            .unwrap()
            .status();
        slowest_post = slowest_post.max(t.elapsed());
        posts += 1;
        if status == 410 {
            break started.elapsed();
        }
        assert_eq!(status, 200);
        if posts % 50 == 0 {
            // The others are served all along.
            send(&mut bob, json!({"action": "ping"})).await;
            while recv(&mut bob).await["type"] != "pong" {}
            pongs += 1;
        }
    };
    println!(
        "closed after {posts} posts of {} KB in {closed_after:?}; slowest post {slowest_post:?}; {pongs} pongs",
        bulk.len() / 1024
    );
    assert!(slowest_post < Duration::from_secs(2), "{slowest_post:?}");
    // Once closed, every push is answered 410 at once.
    for _ in 0..100 {
        let status = http.post(&url).body(bulk.clone()).send().await.unwrap();
        assert_eq!(status.status(), 410);
    }
    // The room hears it left, and bob still gets answers.
    let left = loop {
        let msg = recv(&mut bob).await;
        if msg["type"] == "peer-left" {
            break msg;
        }
    };
    assert_eq!(left["peerId"], slow_id.as_str());
    send(&mut bob, json!({"action": "ping"})).await;
    while recv(&mut bob).await["type"] != "pong" {}
    // The slow client finds its socket closed behind what it had been sent
    // (with 1008 if the close frame made it through).
    if let Some(frame) = closed(&mut slow, Duration::from_secs(10)).await {
        assert_eq!(u16::from(frame.code), 1008);
    }
    let logged = LOGGED.load(Ordering::Relaxed);
    println!("logged {logged} bytes");
    assert!(logged < 2 * 1024 * 1024, "logged {logged} bytes");
    s.stack.stop().await;
}
