//! A cold start never waits on MongoDB: with MongoDB unreachable (a closed
//! loopback port, a 10 s server-selection timeout), the `ws-default` and
//! `ws-disconnect` binaries reach their first Runtime API poll before that
//! timeout could have run out, and a join and a disconnect through them
//! work (call history queues meanwhile). The Runtime API and the Management
//! API are emulated here; DynamoDB is moto.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tincan_signaling::Limits;
use tincan_store::testing::{sdk_config, unique_table_name, MotoServer};
use tincan_store::{create_table, DynamoConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, WsApi, WsApiConfig};

const SECRET: &str = "cold-start-secret-cold-start-secret!";
/// MongoDB's server-selection timeout in the functions under test.
const MONGO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Emulator {
    /// When each function first asked for an invocation.
    first_poll: HashMap<String, Instant>,
    /// Events waiting for each function.
    queued: HashMap<String, VecDeque<Value>>,
    /// Responses (or errors) by request id.
    answered: HashMap<String, String>,
    /// Frames pushed through the Management API, by connection id.
    pushed: HashMap<String, Vec<Value>>,
}

type Shared = Arc<Mutex<Emulator>>;

async fn next(Path(function): Path<String>, State(emu): State<Shared>) -> impl IntoResponse {
    loop {
        {
            let mut emu = emu.lock().unwrap();
            emu.first_poll
                .entry(function.clone())
                .or_insert_with(Instant::now);
            if let Some(event) = emu.queued.get_mut(&function).and_then(VecDeque::pop_front) {
                let id = format!("{function}-{}", rand_id());
                let mut headers = HeaderMap::new();
                headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                headers.insert(
                    "lambda-runtime-deadline-ms",
                    deadline.to_string().parse().unwrap(),
                );
                headers.insert(
                    "lambda-runtime-invoked-function-arn",
                    HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:f"),
                );
                headers.insert(
                    "lambda-runtime-trace-id",
                    HeaderValue::from_static("Root=1"),
                );
                return (headers, event.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn answer(
    Path((_function, id, _kind)): Path<(String, String, String)>,
    State(emu): State<Shared>,
    body: Bytes,
) -> &'static str {
    emu.lock()
        .unwrap()
        .answered
        .insert(id, String::from_utf8_lossy(&body).into_owned());
    "{}"
}

async fn push(
    Path(connection): Path<String>,
    State(emu): State<Shared>,
    body: Bytes,
) -> &'static str {
    if let Ok(frame) = serde_json::from_slice(&body) {
        emu.lock()
            .unwrap()
            .pushed
            .entry(connection)
            .or_default()
            .push(frame);
    }
    ""
}

async fn emulator() -> (Shared, String) {
    let emu = Shared::default();
    let app = Router::new()
        .route("/{function}/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/{function}/2018-06-01/runtime/invocation/{id}/{kind}",
            post(answer),
        )
        .route("/local/@connections/{id}", post(push))
        .with_state(emu.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (emu, base)
}

/// Only `$connect` is done in-process: the functions under test do the rest.
struct NoPush;

#[async_trait::async_trait]
impl Push for NoPush {
    async fn send(&self, _: &str, _: &str) -> Result<(), PushError> {
        Ok(())
    }
    async fn close(&self, _: &str) -> Result<(), PushError> {
        Ok(())
    }
}

fn event(fixture: &str, connection: &str, body: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(fixture).unwrap();
    let ctx = &mut event["requestContext"];
    ctx["connectionId"] = json!(connection);
    ctx["stage"] = json!("local");
    ctx["domainName"] = json!("127.0.0.1");
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

async fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(it) = found() {
            return it;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_functions_start_and_serve_with_mongodb_unreachable() {
    let (_moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint));
    let table = unique_table_name("cold-start");
    create_table(&client, &table).await.unwrap();
    let tokens = TokenKeys::new(SECRET.as_bytes(), 900).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let connect = WsApi::new(WsApiConfig {
        limits: Limits::default(),
        tokens: tokens.clone(),
        api_keys: tincan_token::join::ApiKeys::none(),
        store: Arc::new(DynamoConnectionStore::new(client, table.clone())),
        push: Arc::new(NoPush),
        ice: Arc::new(NoIceServers),
        sfu: Arc::new(tincan_ws_api::NoSfu),
        calls: None,
        users: None,
    });
    let token = tokens.issue("ada", "Ada", now_ms / 1000);
    connect
        .connect("conn-a", Some(&token), now_ms)
        .await
        .unwrap();

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (emu, base) = emulator().await;
    let mut children = Vec::new();
    let started = Instant::now();
    for (function, exe) in [
        ("ws-default", env!("CARGO_BIN_EXE_ws-default")),
        ("ws-disconnect", env!("CARGO_BIN_EXE_ws-disconnect")),
    ] {
        let child = tokio::process::Command::new(exe)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", format!("{base}/{function}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_REGION", "us-east-1")
            .env("DYNAMODB_ENDPOINT", &endpoint)
            .env("TINCAN_CONNECTIONS_TABLE", &table)
            .env("TINCAN_JWT_SECRET", SECRET)
            .env("TINCAN_WS_ENDPOINT", format!("{base}/local"))
            .env(
                "MONGODB_URI",
                format!("mongodb://127.0.0.1:{closed}/?directConnection=true"),
            )
            .env(
                "TINCAN_MONGODB_TIMEOUT_MS",
                MONGO_TIMEOUT.as_millis().to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the function binary runs");
        children.push(child);
    }
    for function in ["ws-default", "ws-disconnect"] {
        let polled = wait_for(function, || {
            emu.lock().unwrap().first_poll.get(function).copied()
        })
        .await;
        let after = polled.duration_since(started);
        println!("{function}: first Runtime API poll {after:?} after spawn");
        assert!(
            after < MONGO_TIMEOUT,
            "{function} waited on MongoDB in its init: {after:?}"
        );
    }

    let message = include_str!("fixtures/message.json");
    emu.lock()
        .unwrap()
        .queued
        .entry("ws-default".into())
        .or_default()
        .push_back(event(
            message,
            "conn-a",
            Some(r#"{"action":"join","room":"cold"}"#),
        ));
    let joined = wait_for("joined", || {
        emu.lock()
            .unwrap()
            .pushed
            .get("conn-a")
            .and_then(|frames| frames.iter().find(|f| f["type"] == "joined").cloned())
    })
    .await;
    assert_eq!(joined["room"], "cold", "{joined}");

    emu.lock()
        .unwrap()
        .queued
        .entry("ws-disconnect".into())
        .or_default()
        .push_back(event(
            include_str!("fixtures/disconnect.json"),
            "conn-a",
            None,
        ));
    let answered = wait_for("the disconnect answered", || {
        emu.lock()
            .unwrap()
            .answered
            .iter()
            .find(|(id, _)| id.starts_with("ws-disconnect"))
            .map(|(_, body)| body.clone())
    })
    .await;
    println!("ws-disconnect answered {answered}");
}
