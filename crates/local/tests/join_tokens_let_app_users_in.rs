//! An app that embeds calls lets its own users in with join tokens signed
//! by its API key (`TINCAN_API_KEYS`), with no Tincan account: a valid one
//! opens the socket as a namespaced participant of its one room; a forged,
//! unknown-key, expired or too-long-lived one is refused at the upgrade
//! with 401; a join of another room is answered `join-token-room`; a
//! listen-only participant joins muted and its unmute is answered
//! `listen-only`.

mod common;

use common::{join, now_secs, recv, send, start, Client, Stack};
use serde_json::json;
use tincan_token::join::{mint, JoinClaims, JoinGrants};
use tokio_tungstenite::tungstenite::Error as WsError;

const KEY_ID: &str = "shop";
const KEY_SECRET: &str = "shop-api-key-secret-shop-api-key-secret";

async fn stack() -> Stack {
    start(|c| {
        c.api_keys = tincan_token::join::ApiKeys::parse(&format!("{KEY_ID}:{KEY_SECRET}")).unwrap();
        c.limits.max_sockets_per_user = 2;
    })
    .await
}

fn token(room: &str, sub: &str, speak: bool) -> String {
    let claims = JoinClaims::new(room, sub, "Ada", JoinGrants { speak }, now_secs(), 300);
    mint(KEY_ID, KEY_SECRET.as_bytes(), &claims).unwrap()
}

fn url(s: &Stack, token: &str) -> String {
    format!("ws://{}/ws?token={token}", s.stack.addr)
}

async fn open(s: &Stack, token: &str) -> Client {
    tokio_tungstenite::connect_async(url(s, token))
        .await
        .expect("the upgrade is accepted")
        .0
}

async fn refused_status(s: &Stack, token: &str) -> u16 {
    match tokio_tungstenite::connect_async(url(s, token)).await {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
}

/// The next `error` frame's code.
async fn error_code(ws: &mut Client) -> String {
    loop {
        let msg = recv(ws).await;
        if msg["type"] == "error" {
            return msg["code"].as_str().unwrap().to_owned();
        }
    }
}

#[tokio::test]
async fn a_join_token_opens_its_room_beside_account_users() {
    let s = stack().await;
    let mut member = s.client("acct-1").await;
    join(&mut member, "standup").await;
    let mut app = open(&s, &token("standup", "user-42", true)).await;
    let joined = join(&mut app, "standup").await;
    assert_eq!(joined["self"]["userId"], "app:shop:user-42");
    assert_eq!(joined["self"]["displayName"], "Ada");
    assert_eq!(joined["self"]["muted"], false);
    assert!(joined["self"].get("listenOnly").is_none(), "{joined}");
    assert_eq!(joined["peers"][0]["userId"], "acct-1");
    let seen = recv(&mut member).await;
    assert_eq!(seen["type"], "peer-joined");
    assert_eq!(seen["peer"]["userId"], "app:shop:user-42");
    // A speaker may mute and unmute.
    send(&mut app, json!({"action": "mute", "muted": true})).await;
    send(&mut app, json!({"action": "mute", "muted": false})).await;
    for muted in [true, false] {
        let msg = recv(&mut member).await;
        assert_eq!(msg["type"], "peer-muted");
        assert_eq!(msg["muted"], muted);
    }
    s.stack.stop().await;
}

#[tokio::test]
async fn forged_unknown_expired_and_too_long_tokens_get_401() {
    let s = stack().await;
    let now = now_secs();
    let claims =
        |iat, ttl| JoinClaims::new("standup", "u", "Ada", JoinGrants { speak: true }, iat, ttl);
    let forged = mint(
        KEY_ID,
        b"not-the-shop-secret-not-the-shop-secret",
        &claims(now, 300),
    )
    .unwrap();
    let unknown = mint("other-app", KEY_SECRET.as_bytes(), &claims(now, 300)).unwrap();
    let expired = mint(KEY_ID, KEY_SECRET.as_bytes(), &claims(now - 400, 300)).unwrap();
    // Signed by hand: the helper itself refuses to mint this.
    let too_long = {
        tincan_token::install_hs256_crypto();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(KEY_ID.into());
        jsonwebtoken::encode(
            &header,
            &claims(now, 3600),
            &jsonwebtoken::EncodingKey::from_secret(KEY_SECRET.as_bytes()),
        )
        .unwrap()
    };
    // The access token's secret is no API key.
    let with_jwt_secret = mint(KEY_ID, common::SECRET.as_bytes(), &claims(now, 300)).unwrap();
    for (what, token) in [
        ("forged", forged),
        ("unknown key", unknown),
        ("expired", expired),
        ("too long", too_long),
        ("signed with the access-token secret", with_jwt_secret),
    ] {
        assert_eq!(refused_status(&s, &token).await, 401, "{what}");
    }
    s.stack.stop().await;
}

#[tokio::test]
async fn a_join_of_another_room_is_refused_and_the_socket_stays_up() {
    let s = stack().await;
    let mut app = open(&s, &token("standup", "user-42", true)).await;
    send(&mut app, json!({"action": "join", "room": "boardroom"})).await;
    assert_eq!(error_code(&mut app).await, "join-token-room");
    // Nobody is in the other room.
    let mut member = s.client("acct-1").await;
    let joined = join(&mut member, "boardroom").await;
    assert_eq!(joined["peers"], json!([]));
    // Its own room still works on the same socket.
    let joined = join(&mut app, "standup").await;
    assert_eq!(joined["room"], "standup");
    s.stack.stop().await;
}

#[tokio::test]
async fn a_listener_joins_muted_and_cannot_unmute() {
    let s = stack().await;
    let mut member = s.client("acct-1").await;
    join(&mut member, "town-hall").await;
    let mut listener = open(&s, &token("town-hall", "viewer-7", false)).await;
    let joined = join(&mut listener, "town-hall").await;
    assert_eq!(joined["self"]["muted"], true);
    assert_eq!(joined["self"]["listenOnly"], true);
    let seen = recv(&mut member).await;
    assert_eq!(seen["type"], "peer-joined");
    assert_eq!(seen["peer"]["listenOnly"], true);
    assert_eq!(seen["peer"]["muted"], true);
    send(&mut listener, json!({"action": "mute", "muted": false})).await;
    assert_eq!(error_code(&mut listener).await, "listen-only");
    // Nobody was told it unmuted: the next thing the member hears is its
    // own pong.
    send(&mut member, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut member).await["type"], "pong");
    s.stack.stop().await;
}

#[tokio::test]
async fn an_app_user_s_sockets_are_capped_like_anyone_s() {
    let s = stack().await;
    let t = token("standup", "user-42", true);
    let _a = open(&s, &t).await;
    let _b = open(&s, &t).await;
    assert_eq!(refused_status(&s, &t).await, 429);
    // Another of the app's users is someone else.
    let _c = open(&s, &token("standup", "user-43", true)).await;
    s.stack.stop().await;
}
