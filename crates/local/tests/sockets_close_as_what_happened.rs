//! A socket's end is reported as what it was: a stopping stack (SIGTERM)
//! closes every socket with 1001 and waits for its `$disconnect`; a client
//! that drops without a close frame is a 1006 "Going away" in the
//! `$disconnect` event, not 1009 "Message too big", which stays for frames
//! over the size limit; a client's own close frame is reported with its
//! code.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Events = Arc<Mutex<Vec<Value>>>;

/// A stand-in for the Lambdas: accepts every `$connect` and keeps each
/// `$disconnect` event.
async fn fake_lambdas() -> (String, Events) {
    let events: Events = Arc::default();
    let app = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(
                |Path(name): Path<String>,
                 State(events): State<Events>,
                 Json(event): Json<Value>| async move {
                    if name == "ws-disconnect" {
                        events.lock().unwrap().push(event);
                    }
                    Json(json!({"statusCode": 200}))
                },
            ),
        )
        .with_state(events.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, events)
}

/// The `$disconnect` events' (status code, reason), once `n` have come.
async fn disconnects(events: &Events, n: usize) -> Vec<(u64, String)> {
    for _ in 0..100 {
        let got: Vec<(u64, String)> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                let ctx = &e["requestContext"];
                (
                    ctx["disconnectStatusCode"].as_u64().unwrap_or(0),
                    ctx["disconnectReason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{n} $disconnect events expected: {:?}",
        events.lock().unwrap()
    );
}

/// The close code the server sends `ws`, if it sends one.
async fn close_code(ws: &mut common::Client) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the socket ends in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn a_dropped_client_is_1006_an_oversize_frame_1009_a_goodbye_its_code_and_a_stop_1001() {
    let (url, events) = fake_lambdas().await;
    let s = common::start(|c| c.lambda_url = Some(url)).await;

    // Dropped without a close frame: the TCP connection just ends.
    let dropped = s.client("ada").await;
    drop(dropped);
    assert_eq!(
        disconnects(&events, 1).await[0],
        (1006, "Going away".to_owned())
    );

    // A frame over API Gateway's 32 KB frame limit.
    let mut big = s.client("bob").await;
    let _ = big.send(Message::text("x".repeat(40 * 1024))).await;
    assert_eq!(close_code(&mut big).await, Some(1009));
    assert_eq!(disconnects(&events, 2).await[1].0, 1009);

    // The client closes on purpose: the $disconnect carries its code (1000,
    // or 1005 for a close frame with none), which is what tells a goodbye
    // from a drop.
    let mut bye = s.client("eve").await;
    bye.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .await
    .unwrap();
    assert_eq!(disconnects(&events, 3).await[2].0, 1000);
    let mut bare = s.client("fay").await;
    bare.close(None).await.unwrap();
    assert_eq!(disconnects(&events, 4).await[3].0, 1005);

    // The stack stops: each socket hears 1001, and its $disconnect is sent
    // before the stop returns.
    let mut a = s.client("cy").await;
    let mut b = s.client("di").await;
    let common::Stack { stack, .. } = s;
    stack.stop().await;
    let got = disconnects(&events, 6).await;
    assert_eq!(got[4].0, 1001, "{got:?}");
    assert_eq!(got[5].0, 1001, "{got:?}");
    assert_eq!(close_code(&mut a).await, Some(1001));
    assert_eq!(close_code(&mut b).await, Some(1001));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_closes_every_socket_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_local(dir.path()).await;
    let ada = common::login(addr, "ada").await;
    let bob = common::login(addr, "bob").await;
    let mut a = common::join_as(addr, &ada, "term").await;
    let mut b = common::join_as(addr, &bob, "term").await;

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(close_code(&mut a).await, Some(u16::from(CloseCode::Away)));
    assert_eq!(close_code(&mut b).await, Some(1001));
    let exited = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("tincan-local exits after SIGTERM")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
}
