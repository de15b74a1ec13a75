//! The local stack over real sockets: real WebSocket clients on loopback
//! against the emulated API Gateway and the in-process handlers.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_local::{LocalConfig, LocalStack};
use tincan_token::TokenKeys;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "end-to-end-secret-end-to-end-secret";
const STEP: Duration = Duration::from_secs(5);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Stack {
    stack: LocalStack,
    _dir: tempfile::TempDir,
    tokens: TokenKeys,
}

async fn start(room_max: usize) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    // Tokens are minted here for users never registered.
    config.users_must_exist = false;
    config.jwt_secret = Some(SECRET.into());
    config.room_max = Some(room_max);
    // A dropped participant is ended (and its room told) after a second.
    config.resume_grace_secs = 1;
    // The embedded TURN server, on a free port.
    config.turn_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let stack = LocalStack::start(config).await.unwrap();
    Stack {
        stack,
        _dir: dir,
        tokens: TokenKeys::new(SECRET.as_bytes(), 900).unwrap(),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Stack {
    fn token(&self, user: &str) -> String {
        self.tokens.issue(user, &format!("Name {user}"), now_secs())
    }

    async fn client(&self, user: &str) -> Client {
        let url = format!("ws://{}/ws?token={}", self.stack.addr, self.token(user));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws
    }

    /// A client of `user` and its connection id, read from the gateway's
    /// socket table (a peer id is not a connection id).
    async fn client_with_id(&self, user: &str) -> (Client, String) {
        let before = self.stack.sockets.ids();
        let ws = self.client(user).await;
        for _ in 0..250 {
            if let Some(id) = self
                .stack
                .sockets
                .ids()
                .into_iter()
                .find(|id| !before.contains(id))
            {
                return (ws, id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("socket of {user} never registered");
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.stack.addr, path)
    }

    /// A URL on the Management API's own listener.
    fn management(&self, path: &str) -> String {
        format!("http://{}{}", self.stack.management_addr, path)
    }
}

async fn send(ws: &mut Client, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn recv(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn join(ws: &mut Client, room: &str) -> Value {
    send(ws, json!({"action": "join", "room": room})).await;
    let joined = recv(ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

#[tokio::test]
async fn two_clients_meet_signal_and_a_close_counts_as_leaving() {
    let s = start(8).await;
    let mut a = s.client("ada").await;
    let mut b = s.client("bob").await;
    let ja = join(&mut a, "room-1").await;
    assert_eq!(ja["self"]["userId"], "ada");
    assert_eq!(ja["self"]["displayName"], "Name ada");
    let ice = ja["iceServers"].as_array().unwrap();
    assert!(ice
        .iter()
        .any(|s| s["username"].as_str().is_some_and(|u| u.ends_with(":ada"))));
    let jb = join(&mut b, "room-1").await;
    let a_id = ja["self"]["peerId"].as_str().unwrap().to_owned();
    let b_id = jb["self"]["peerId"].as_str().unwrap().to_owned();
    assert_eq!(jb["peers"][0]["peerId"], a_id.as_str());
    let pj = recv(&mut a).await;
    assert_eq!(pj["type"], "peer-joined");
    assert_eq!(pj["peer"]["peerId"], b_id.as_str());

    let data = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    send(
        &mut a,
        json!({"action": "signal", "to": b_id, "data": data}),
    )
    .await;
    assert_eq!(
        recv(&mut b).await,
        json!({"type": "signal", "from": a_id, "to": b_id, "data": data})
    );

    // b closes its socket on purpose (a close frame): it has left, and the
    // room is told at once.
    b.close(None).await.unwrap();
    assert_eq!(
        recv(&mut a).await,
        json!({"type": "peer-left", "peerId": b_id})
    );
    s.stack.stop().await;
}

#[tokio::test]
async fn upgrade_without_a_valid_token_is_refused_with_401() {
    let s = start(8).await;
    let expired = s.tokens.issue("ada", "Ada", now_secs() - 3600);
    let foreign = TokenKeys::new(b"not-our-secret-not-our-secret-xx", 900)
        .unwrap()
        .issue("ada", "Ada", now_secs());
    for query in [
        "".to_owned(),
        "?token=".into(),
        "?token=junk".into(),
        format!("?token={expired}"),
        format!("?token={foreign}"),
    ] {
        let url = format!("ws://{}/ws{query}", s.stack.addr);
        match tokio_tungstenite::connect_async(url.into_client_request().unwrap()).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401, "{query}"),
            other => panic!("{query}: expected 401, got {other:?}"),
        }
    }
    assert!(s.stack.sockets.is_empty());
    s.stack.stop().await;
}

#[tokio::test]
async fn oversize_frames_close_with_1009_and_large_messages_get_too_large() {
    let s = start(8).await;
    let mut a = s.client("ada").await;
    let mut b = s.client("bob").await;
    join(&mut b, "size").await;
    // Over our 16 KB limit but under API Gateway's 32 KB frame: an error, and
    // the socket stays up.
    let pad = "x".repeat(20 * 1024);
    send(&mut a, json!({"action": "ping", "pad": pad})).await;
    let err = recv(&mut a).await;
    assert_eq!(err["code"], "too-large");
    send(&mut a, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut a).await["type"], "pong");
    // Over API Gateway's 32 KB frame limit: closed with 1009.
    let pad = "x".repeat(40 * 1024);
    let _ = a
        .send(Message::text(
            json!({"action": "ping", "pad": pad}).to_string(),
        ))
        .await;
    let close = loop {
        match tokio::time::timeout(STEP, a.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Size);
    // Others are unaffected.
    send(&mut b, json!({"action": "ping"})).await;
    assert_eq!(recv(&mut b).await["type"], "pong");
    s.stack.stop().await;
}

#[tokio::test]
async fn management_api_pushes_closes_and_answers_410_for_gone_ids() {
    let s = start(8).await;
    let http = reqwest::Client::new();
    let (mut a, a_id) = s.client_with_id("ada").await;
    let (mut b, b_conn) = s.client_with_id("bob").await;
    join(&mut a, "mgmt").await;
    let jb = join(&mut b, "mgmt").await;
    recv(&mut a).await; // peer-joined
    let b_id = jb["self"]["peerId"].as_str().unwrap().to_owned();

    for prefix in ["", "/local"] {
        let url = s.management(&format!("{prefix}/@connections/{a_id}"));
        let resp = http
            .post(&url)
            .body(r#"{"type":"pong"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(recv(&mut a).await, json!({"type": "pong"}));
        let info: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    }
    let wrong_stage = s.management(&format!("/prod/@connections/{a_id}"));
    assert_eq!(
        http.post(&wrong_stage)
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // DELETE closes b from the server side; after the resume grace the room
    // hears it left.
    let url = s.management(&format!("/local/@connections/{b_conn}"));
    assert_eq!(http.delete(&url).send().await.unwrap().status(), 204);
    assert_eq!(
        recv(&mut a).await,
        json!({"type": "peer-left", "peerId": b_id})
    );
    assert_eq!(
        http.post(&url).body("x").send().await.unwrap().status(),
        410
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 410);
    assert_eq!(http.delete(&url).send().await.unwrap().status(), 410);
    s.stack.stop().await;
}

#[tokio::test]
async fn full_room_is_refused_and_the_web_app_and_health_are_served() {
    let s = start(1).await;
    let mut a = s.client("ada").await;
    let mut b = s.client("bob").await;
    join(&mut a, "tiny").await;
    send(&mut b, json!({"action": "join", "room": "tiny"})).await;
    assert_eq!(recv(&mut b).await["code"], "room-full");
    let health = reqwest::get(s.http("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    s.stack.stop().await;
}

#[tokio::test]
async fn an_idle_socket_is_closed_like_api_gateway_and_its_room_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    // Tokens are minted here for users never registered.
    config.users_must_exist = false;
    config.jwt_secret = Some(SECRET.into());
    config.limits.idle_timeout = Duration::from_millis(1500);
    config.resume_grace_secs = 1;
    let stack = LocalStack::start(config).await.unwrap();
    let s = Stack {
        stack,
        _dir: dir,
        tokens: TokenKeys::new(SECRET.as_bytes(), 900).unwrap(),
    };
    let mut chatty = s.client("ada").await;
    let mut quiet = s.client("bob").await;
    join(&mut chatty, "idle").await;
    let jq = join(&mut quiet, "idle").await;
    recv(&mut chatty).await; // peer-joined
                             // The chatty one keeps pinging; the quiet one says nothing more.
    let quiet_id = jq["self"]["peerId"].as_str().unwrap().to_owned();
    // Cut at 1.5 s, ended when its one-second resume grace is over.
    let mut left = None;
    for _ in 0..16 {
        send(&mut chatty, json!({"action": "ping"})).await;
        let msg = recv(&mut chatty).await;
        if msg["type"] == "peer-left" {
            left = Some(msg);
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(left, Some(json!({"type": "peer-left", "peerId": quiet_id})));
    let close = loop {
        match tokio::time::timeout(STEP, quiet.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
    s.stack.stop().await;
}
