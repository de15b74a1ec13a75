//! Each socket has a message budget (a token bucket: `TINCAN_MSG_RATE` per
//! second, bursts of `TINCAN_MSG_BURST`). Over it, the gateway itself
//! answers `rate-limited` with a retry-after and does not invoke the
//! backend; a socket that keeps sending far more (over twice its budget) is
//! closed with 1008. Others are unaffected.

mod common;

use std::time::{Duration, Instant};

use common::{join, recv, send, start};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_burst_over_the_budget_is_refused_with_a_retry_after() {
    // The defaults: 20 messages a second, bursts of 40.
    let s = start(|_| {}).await;
    let mut ws = s.client("ada").await;
    for _ in 0..60 {
        send(&mut ws, json!({"action": "ping"})).await;
    }
    let (mut pongs, mut limited, mut retry_after) = (0, 0, 0);
    for _ in 0..60 {
        let msg = recv(&mut ws).await;
        match msg["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(msg["code"], "rate-limited", "{msg}");
                assert!(msg["message"].as_str().is_some_and(|m| !m.is_empty()));
                let ms = msg["retryAfterMs"].as_u64().expect("retryAfterMs");
                assert!(ms > 0 && ms <= 1000, "{msg}");
                retry_after = retry_after.max(ms);
                limited += 1;
            }
            _ => panic!("unexpected {msg}"),
        }
    }
    println!("{pongs} pongs, {limited} refused, retry after up to {retry_after} ms");
    assert!((40..=45).contains(&pongs), "{pongs} pongs");
    assert_eq!(pongs + limited, 60);
    // After the wait it named, the socket is served again.
    tokio::time::sleep(Duration::from_millis(retry_after)).await;
    send(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    s.stack.stop().await;
}

#[tokio::test]
async fn a_socket_sending_three_times_its_budget_is_closed_with_1008() {
    let s = start(|_| {}).await;
    let mut bob = s.client("bob").await;
    join(&mut bob, "flood").await;
    let flooder = s.client("ada").await;
    let (mut sink, mut stream) = flooder.split();
    let started = Instant::now();
    // 60 a second against a budget of 20, for at most 10 s.
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / 60));
        for _ in 0..600 {
            tick.tick().await;
            let ping = Message::text(json!({"action": "ping"}).to_string());
            if sink.send(ping).await.is_err() {
                break;
            }
        }
    });
    let close = tokio::time::timeout(Duration::from_secs(12), async {
        let mut refused = 0;
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["code"] == "rate-limited" {
                        refused += 1;
                    }
                }
                Some(Ok(Message::Close(frame))) => return (frame, refused),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    let after = started.elapsed();
    sender.abort();
    println!("flooder closed after {after:?}, {} refusals", close.1);
    assert_eq!(u16::from(close.0.expect("a close frame").code), 1008);
    assert!(close.1 > 0);
    assert!(after < Duration::from_secs(10), "{after:?}");
    // Bob never noticed.
    send(&mut bob, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut bob).await["type"], "pong");
    s.stack.stop().await;
}

#[tokio::test]
async fn a_socket_within_its_budget_is_never_refused() {
    let s = start(|c| {
        c.limits.msg_rate = 50;
        c.limits.msg_burst = 10;
    })
    .await;
    let mut ws = s.client("ada").await;
    // 25 a second, half the budget, for two seconds.
    for _ in 0..50 {
        send(&mut ws, json!({"action": "ping"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    s.stack.stop().await;
}
