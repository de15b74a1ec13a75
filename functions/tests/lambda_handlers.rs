//! The real Lambda handlers, called with `LambdaEvent`s shaped like API
//! Gateway's, against a real DynamoDB-compatible server (moto) and pushing
//! through the local stack's Management API, which answers like API Gateway
//! (stage path included, 410 for gone connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures_util::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tincan_functions::{handle_connect, handle_default, handle_disconnect, Deps, FunctionConfig};
use tincan_local::{LocalConfig, LocalStack};
use tincan_store::testing::{dynamo_client, sdk_config, unique_table_name, MotoServer};
use tincan_store::{create_table, ConnectionStore, DynamoConnectionStore};
use tincan_token::join::{mint, ApiKeys, JoinClaims, JoinGrants};
use tincan_token::TokenKeys;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "lambda-test-secret-lambda-test-secret";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct World {
    _moto: MotoServer,
    _dir: tempfile::TempDir,
    stack: LocalStack,
    deps: Deps,
    store: Arc<DynamoConnectionStore>,
    tokens: TokenKeys,
}

async fn world() -> World {
    let (moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let client = dynamo_client(&endpoint);
    let table = unique_table_name("conns");
    create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoConnectionStore::new(client, table.clone()));

    let dir = tempfile::tempdir().unwrap();
    let mut local =
        LocalConfig::for_tests(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
    local.jwt_secret = Some(SECRET.into());
    // Tokens are minted here for users never registered.
    local.users_must_exist = false;
    let stack = LocalStack::start(local).await.unwrap();

    let jwt = format!("--jwt-secret={SECRET}");
    let settings = <tincan_functions::HistorySettings as clap::Parser>::try_parse_from([
        "ws-default",
        jwt.as_str(),
    ])
    .expect("settings");
    let mut config = FunctionConfig::from_settings(settings.ws).expect("a long enough secret");
    config.connections_table = table;
    config.api_keys = ApiKeys::parse(&format!("{}:{}", APP_KEY.0, APP_KEY.1)).unwrap();
    // The Management API has its own loopback listener, never the public one.
    config.ws_endpoint = Some(format!("http://{}/local", stack.management_addr));
    let deps = Deps::new(config, sdk_config(&endpoint), store.clone());
    World {
        _moto: moto,
        _dir: dir,
        stack,
        deps,
        store,
        tokens: TokenKeys::new(SECRET.as_bytes(), 900).unwrap(),
    }
}

fn event(
    fixture: &str,
    connection_id: &str,
    token: &str,
    body: &str,
) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
    let text = fixture
        .replace("CONNECTION", connection_id)
        .replace("TOKEN", token)
        .replace("DOMAIN", "unused.example")
        .replace("STAGE", "local");
    let mut value: Value = serde_json::from_str(&text).unwrap();
    if value.get("body").is_some() {
        value["body"] = Value::String(body.to_owned());
    }
    LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default())
}

const CONNECT: &str = include_str!("fixtures/connect.json");
const MESSAGE: &str = include_str!("fixtures/message.json");
const DISCONNECT: &str = include_str!("fixtures/disconnect.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_answer_like_api_gateway_and_detach_gone_peers() {
    let w = world().await;
    let token = w.tokens.issue("ada", "Ada", now_secs());

    // Bad tokens: 401, nothing stored.
    for bad in [
        "",
        "junk",
        &TokenKeys::new(b"another-secret-another-secret-xx", 900)
            .unwrap()
            .issue("ada", "Ada", now_secs()),
    ] {
        let resp = handle_connect(&w.deps, event(CONNECT, "bad-conn", bad, ""))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 401, "{bad}");
    }
    assert!(w.store.get("bad-conn", now_secs()).await.unwrap().is_none());

    // A real socket on the local stack, so pushes to its id land somewhere.
    let url = format!("ws://{}/ws?token={token}", w.stack.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Learn its connection id from the local stack itself.
    let real_id = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(id) = w.stack.sockets.ids().pop() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("socket registered");

    // The Lambdas know the real connection and a ghost with no socket.
    let resp = handle_connect(&w.deps, event(CONNECT, &real_id, &token, ""))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let ghost_token = w.tokens.issue("bob", "Bob", now_secs());
    let resp = handle_connect(&w.deps, event(CONNECT, "ghost-conn", &ghost_token, ""))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);

    let join = json!({"action": "join", "room": "lambda-room"}).to_string();
    handle_default(&w.deps, event(MESSAGE, &real_id, "", &join))
        .await
        .unwrap();
    let joined = next_json(&mut socket).await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"], "lambda-room");
    assert_eq!(joined["self"]["displayName"], "Ada");

    // Bad input through the Lambda: an error frame, the connection kept.
    handle_default(&w.deps, event(MESSAGE, &real_id, "", "{oops"))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "bad-request");

    // The ghost joins: its own `joined` push answers 410, so its connection
    // is forgotten and its participant detached for the resume grace: the
    // room heard it join, and hears nothing more until the grace is over.
    handle_default(&w.deps, event(MESSAGE, "ghost-conn", "", &join))
        .await
        .unwrap();
    let joined = next_json(&mut socket).await;
    assert_eq!(joined["type"], "peer-joined");
    assert!(w
        .store
        .get("ghost-conn", now_secs())
        .await
        .unwrap()
        .is_none());
    let room = w.store.room("lambda-room").await.unwrap();
    assert_eq!(room.members.len(), 2);
    let ghost = room
        .member(joined["peer"]["peerId"].as_str().unwrap())
        .unwrap();
    assert!(ghost.connection_id.is_none() && ghost.resume_until_ms.is_some());
    // A ping through the Lambda answers on the real socket.
    let ping = json!({"action": "ping"}).to_string();
    handle_default(&w.deps, event(MESSAGE, &real_id, "", &ping))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");

    // $disconnect forgets the connection.
    let resp = handle_disconnect(&w.deps, event(DISCONNECT, &real_id, "", ""))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    assert!(w.store.get(&real_id, now_secs()).await.unwrap().is_none());
    // Every event came from one API and stage: one push client, built once
    // and reused by every invocation.
    assert_eq!(w.deps.endpoints_built(), 1);

    // An account deleted (the HTTP API marks it in the connections table):
    // its still-valid token opens no socket, and nobody asked MongoDB.
    w.store
        .mark_user_deleted("ada", now_secs() + 900)
        .await
        .unwrap();
    let resp = handle_connect(&w.deps, event(CONNECT, "after-delete", &token, ""))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 401);
    assert!(w
        .store
        .get("after-delete", now_secs())
        .await
        .unwrap()
        .is_none());
    w.stack.stop().await;
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("frame in time")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

const APP_KEY: (&str, &str) = ("shop", "shop-api-key-secret-shop-api-key-secret");

fn join_token(room: &str, sub: &str, speak: bool, secret: &str, iat: u64) -> String {
    let claims = JoinClaims::new(room, sub, "Ada", JoinGrants { speak }, iat, 300);
    mint(APP_KEY.0, secret.as_bytes(), &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_connect_takes_join_tokens_and_keeps_their_grants_in_dynamodb() {
    let w = world().await;
    let now = now_secs();
    for (what, bad) in [
        (
            "forged",
            join_token("hall", "u", true, "forged-secret-forged-secret-forged", now),
        ),
        (
            "expired",
            join_token("hall", "u", true, APP_KEY.1, now - 301),
        ),
    ] {
        let resp = handle_connect(&w.deps, event(CONNECT, "bad-conn", &bad, ""))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 401, "{what}");
    }
    let token = join_token("hall", "viewer-7", false, APP_KEY.1, now);
    let resp = handle_connect(&w.deps, event(CONNECT, "app-conn", &token, ""))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let record = w.store.get("app-conn", now).await.unwrap().unwrap();
    assert_eq!(record.user_id, "app:shop:viewer-7");
    assert_eq!(record.grants.room.as_deref(), Some("hall"));
    assert!(record.grants.listen_only);
}
