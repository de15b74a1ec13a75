//! A session revoked by a password change or by reuse of a rotated refresh
//! token stops at once: its still-unexpired access token gets 401 on `/me`
//! and on the WebSocket upgrade, while the session that changed the
//! password keeps working.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tokio_tungstenite::tungstenite::Error as WsError;

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new password";

async fn login(stack: &LocalStack, user: &str, password: &str) -> Value {
    reqwest::Client::new()
        .post(format!("http://{}/auth/login", stack.addr))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn register(stack: &LocalStack, user: &str) {
    let created = reqwest::Client::new()
        .post(format!("http://{}/auth/register", stack.addr))
        .json(&json!({"username": user, "password": PASSWORD, "displayName": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

fn access(pair: &Value) -> String {
    pair["accessToken"].as_str().unwrap().to_owned()
}

async fn me(stack: &LocalStack, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{}/me", stack.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The status of a WebSocket upgrade with `token`: 101 if it opened.
async fn upgrade(stack: &LocalStack, token: &str) -> u16 {
    let url = format!("ws://{}/ws?token={token}", stack.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((mut ws, resp)) => {
            let _ = ws.close(None).await;
            resp.status().as_u16()
        }
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("upgrade failed: {other:?}"),
    }
}

async fn stack() -> (LocalStack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    (LocalStack::start(config).await.unwrap(), dir)
}

#[tokio::test]
async fn a_password_change_stops_the_other_sessions_tokens_at_once() {
    let (stack, _dir) = stack().await;
    register(&stack, "pat").await;
    let here = access(&login(&stack, "pat", PASSWORD).await);
    let other = access(&login(&stack, "pat", PASSWORD).await);
    assert_eq!(
        (me(&stack, &other).await, upgrade(&stack, &other).await),
        (200, 101)
    );

    let changed = reqwest::Client::new()
        .post(format!("http://{}/me/password", stack.addr))
        .bearer_auth(&here)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);

    // The other session's token is unexpired but revoked: refused at once.
    assert_eq!(me(&stack, &other).await, 401);
    assert_eq!(upgrade(&stack, &other).await, 401);
    // The session that changed the password keeps its token.
    assert_eq!(me(&stack, &here).await, 200);
    assert_eq!(upgrade(&stack, &here).await, 101);
    // A session logged in after the change, in the same second or not, works.
    let later = access(&login(&stack, "pat", NEW_PASSWORD).await);
    assert_eq!(
        (me(&stack, &later).await, upgrade(&stack, &later).await),
        (200, 101)
    );
    stack.stop().await;
}

#[tokio::test]
async fn refresh_token_reuse_stops_the_sessions_tokens_at_once() {
    let (stack, _dir) = stack().await;
    register(&stack, "robin").await;
    let first = login(&stack, "robin", PASSWORD).await;
    let http = reqwest::Client::new();
    let refresh = |token: Value| {
        http.post(format!("http://{}/auth/refresh", stack.addr))
            .json(&json!({"refreshToken": token}))
            .send()
    };
    let rotated: Value = refresh(first["refreshToken"].clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated_access = access(&rotated);
    assert_eq!(upgrade(&stack, &rotated_access).await, 101);

    // The first refresh token, already rotated, is replayed.
    let reuse = refresh(first["refreshToken"].clone()).await.unwrap();
    assert_eq!(reuse.status(), 401);
    for token in [access(&first), rotated_access] {
        assert_eq!(me(&stack, &token).await, 401);
        assert_eq!(upgrade(&stack, &token).await, 401);
    }
    stack.stop().await;
}
