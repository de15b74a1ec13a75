//! Deleting an account through the HTTP API closes its live sockets: its
//! participant leaves at once (no resume grace) and the room is told; its
//! still-unexpired access token then opens no socket.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PASSWORD: &str = "correct horse battery";

async fn account(stack: &LocalStack, user: &str) -> String {
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.addr);
    let created = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"username": user, "password": PASSWORD, "displayName": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let login: Value = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["accessToken"].as_str().unwrap().to_owned()
}

async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")?
        {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn join(stack: &LocalStack, token: &str) -> (Ws, Value) {
    let url = format!("ws://{}/ws?token={token}", stack.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"action": "join", "room": "bye"}).to_string(),
    ))
    .await
    .unwrap();
    let joined = next(&mut ws).await.unwrap();
    assert_eq!(joined["type"], "joined");
    (ws, joined)
}

#[tokio::test]
async fn deleting_an_account_closes_its_sockets_and_refuses_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    let stack = LocalStack::start(config).await.unwrap();
    let ada = account(&stack, "ada").await;
    let bob = account(&stack, "bob").await;
    let (mut a, _) = join(&stack, &ada).await;
    let (mut b, joined_b) = join(&stack, &bob).await;
    assert_eq!(next(&mut a).await.unwrap()["type"], "peer-joined");

    let deleted = reqwest::Client::new()
        .delete(format!("http://{}/me", stack.addr))
        .bearer_auth(&bob)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // At once, not after the resume grace.
    assert_eq!(
        next(&mut a).await.unwrap(),
        json!({"type": "peer-left", "peerId": joined_b["self"]["peerId"]})
    );
    assert!(next(&mut b).await.is_none(), "bob's socket is closed");
    // The token is still unexpired, but names nobody.
    let url = format!("ws://{}/ws?token={bob}", stack.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    stack.stop().await;
}
