//! Accounts through the local stack: register and log in over HTTP, call
//! with the access token, and find the call in the history; the embedded
//! store keeps accounts across a restart.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

async fn start(dir: &std::path::Path) -> LocalStack {
    let config = LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.into());
    LocalStack::start(config).await.unwrap()
}

async fn post(stack: &LocalStack, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", stack.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login(stack: &LocalStack, user: &str) -> Value {
    let (status, body) = post(
        stack,
        "/auth/login",
        json!({"username": user, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn a_registered_user_calls_and_the_call_is_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path()).await;
    for (user, name) in [("ada", "Ada Lovelace"), ("bob", "Bob")] {
        let (status, body) = post(
            &stack,
            "/auth/register",
            json!({"username": user, "password": "correct horse battery", "displayName": name}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let ada = login(&stack, "ada").await;
    let bob = login(&stack, "bob").await;

    // A refresh token is not an access token.
    let url = format!(
        "ws://{}/ws?token={}",
        stack.addr,
        ada["refreshToken"].as_str().unwrap()
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }

    let connect =
        |token: &Value| format!("ws://{}/ws?token={}", stack.addr, token.as_str().unwrap());
    let (mut a, _) = tokio_tungstenite::connect_async(connect(&ada["accessToken"]))
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(connect(&bob["accessToken"]))
        .await
        .unwrap();
    a.send(Message::text(
        json!({"action": "join", "room": "history"}).to_string(),
    ))
    .await
    .unwrap();
    let joined = next(&mut a).await;
    // Names come from the account, not from anything the client sent.
    assert_eq!(joined["self"]["displayName"], "Ada Lovelace");
    assert_eq!(joined["self"]["userId"], ada["user"]["id"]);
    b.send(Message::text(
        json!({"action": "join", "room": "history"}).to_string(),
    ))
    .await
    .unwrap();
    next(&mut b).await;
    assert_eq!(next(&mut a).await["peer"]["displayName"], "Bob");
    a.send(Message::text(json!({"action": "leave"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut b).await["type"], "peer-left");
    b.close(None).await.unwrap();

    let calls: Value = reqwest::Client::new()
        .get(format!("http://{}/me/calls", stack.addr))
        .bearer_auth(ada["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["room"], "history");
    assert!(calls[0]["endedAt"].as_u64().unwrap() >= calls[0]["startedAt"].as_u64().unwrap());
    stack.stop().await;
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path()).await;
    let (status, _) = post(
        &stack,
        "/auth/register",
        json!({"username": "kept", "password": "correct horse battery", "displayName": "Kept"}),
    )
    .await;
    assert_eq!(status, 201);
    stack.stop().await;
    // redb holds its file until the old stack's tasks let go of it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stack = start(dir.path()).await;
    let body = login(&stack, "kept").await;
    assert_eq!(body["user"]["displayName"], "Kept");
    stack.stop().await;
}
