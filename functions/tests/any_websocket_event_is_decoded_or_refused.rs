//! The ws-* Lambdas get an API Gateway WebSocket event as JSON. The runtime
//! decodes it into `ApiGatewayWebsocketProxyRequest` (a typed serde error if
//! it cannot); our handlers then answer every event they get with a proxy
//! response, never an `Err` and never a panic, whatever its body, route key,
//! query string or request context. Frames they push back are protocol
//! messages; refusals carry a stable code.
//!
//! The handlers run against the in-memory connection store and push to a
//! loopback stand-in for the Management API that records what it is sent.

#[path = "../../crates/signaling/tests/strategy/mod.rs"]
mod strategy;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use strategy::{any_json, any_text, apply_edit, budget, edit, mutate, mutation, valid_message};
use tincan_functions::{handle_connect, handle_default, handle_disconnect, Deps, FunctionConfig};
use tincan_signaling::{ErrorCode, ServerMessage};
use tincan_store::testing::sdk_config;
use tincan_store::MemoryConnectionStore;
use tincan_token::TokenKeys;

const SECRET: &str = "proptest-lambda-secret-proptest-lambda";
const CONNECT: &str = include_str!("fixtures/connect.json");
const MESSAGE: &str = include_str!("fixtures/message.json");
const DISCONNECT: &str = include_str!("fixtures/disconnect.json");
const CONN: &str = "conn-prop";

/// What the stand-in Management API was sent: (path, body).
type Pushed = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Harness {
    rt: tokio::runtime::Runtime,
    deps: Deps,
    pushed: Pushed,
    tokens: TokenKeys,
}

fn harness() -> Harness {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let pushed: Pushed = Arc::default();
    let addr: SocketAddr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let app = axum::Router::new()
            .fallback(
                |State(pushed): State<Pushed>, uri: Uri, body: Bytes| async move {
                    if let Ok(mut log) = pushed.lock() {
                        log.push((uri.path().to_owned(), body.to_vec()));
                    }
                    StatusCode::OK
                },
            )
            .with_state(pushed.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let jwt = format!("--jwt-secret={SECRET}");
    let settings = <tincan_functions::HistorySettings as clap::Parser>::try_parse_from([
        "ws-default",
        jwt.as_str(),
    ])
    .expect("settings");
    let mut config = FunctionConfig::from_settings(settings.ws).expect("a long enough secret");
    config.ws_endpoint = Some(format!("http://{addr}/local"));
    let endpoint = format!("http://{addr}");
    let deps = Deps::new(
        config,
        sdk_config(&endpoint),
        Arc::new(MemoryConnectionStore::new()),
    );
    let tokens = TokenKeys::new(SECRET.as_bytes(), 900).expect("a long enough secret");
    Harness {
        rt,
        deps,
        pushed,
        tokens,
    }
}

/// A fixture with its placeholders filled in (`token` and `body` as JSON
/// strings, whatever they hold).
fn fixture(text: &str, token: &str, body: &str) -> Value {
    let mut value: Value = serde_json::from_str(
        &text
            .replace("CONNECTION", CONN)
            .replace("DOMAIN", "unused.example")
            .replace("STAGE", "local"),
    )
    .expect("fixtures are JSON");
    if value.get("queryStringParameters").is_some() {
        value["queryStringParameters"]["token"] = Value::from(token);
        value["multiValueQueryStringParameters"]["token"] = Value::from(vec![token]);
    }
    if value.get("body").is_some() {
        value["body"] = Value::String(body.to_owned());
    }
    value
}

/// A fixture with its request context, query string or body bent.
fn bent_event() -> impl Strategy<Value = (usize, Value)> {
    let body = prop_oneof![
        valid_message().prop_map(|m| serde_json::to_string(&m).unwrap_or_default()),
        any_text(64),
    ];
    let ours = TokenKeys::new(SECRET.as_bytes(), 900)
        .map(|keys| keys.issue("ada", "Ada", now_secs()))
        .unwrap_or_default();
    let token = prop_oneof![any_text(48), Just(ours)];
    (
        0usize..3,
        token,
        body,
        proptest::collection::vec((0usize..3, mutation()), 0..4),
    )
        .prop_map(|(kind, token, body, mutations)| {
            let text = [CONNECT, MESSAGE, DISCONNECT][kind];
            let mut value = fixture(text, &token, &body);
            for (target, m) in mutations {
                let field = ["requestContext", "queryStringParameters"].get(target.wrapping_sub(1));
                match field.and_then(|f| value.get_mut(*f)) {
                    Some(inner) => mutate(inner, m),
                    None => mutate(&mut value, m),
                }
            }
            (kind, value)
        })
}

fn decode(value: Value) -> Option<ApiGatewayWebsocketProxyRequest> {
    serde_json::from_value(value).ok()
}

/// Decoding any text is a value or a serde error, never a panic; text that
/// is a fixture with a few characters changed included.
#[test]
fn any_event_text_decodes_or_is_a_typed_error() {
    let texts = prop_oneof![
        any_text(256),
        (
            proptest::sample::select(vec![CONNECT, MESSAGE, DISCONNECT]),
            proptest::collection::vec(edit(), 1..8),
        )
            .prop_map(|(text, edits)| edits
                .into_iter()
                .fold(text.to_owned(), |t, e| apply_edit(&t, e))),
        any_json().prop_map(|v| v.to_string()),
    ];
    TestRunner::new(budget(1024))
        .run(&texts, |text| {
            let _: Result<ApiGatewayWebsocketProxyRequest, serde_json::Error> =
                serde_json::from_str(&text);
            Ok(())
        })
        .unwrap();
}

/// Every decoded event gets a response with a status API Gateway
/// understands; `$connect` is accepted only with a valid token.
#[test]
fn any_decoded_event_gets_a_response() {
    let h = harness();
    let events = bent_event().prop_filter_map("decodes", |(kind, value)| {
        decode(value).map(|request| (kind, request))
    });
    TestRunner::new(budget(128))
        .run(&events, |(kind, request)| {
            let has_id = request.request_context.connection_id.is_some();
            let token_ok = request
                .query_string_parameters
                .first("token")
                .is_some_and(|t| h.tokens.verify(t, 0).is_ok());
            let event = LambdaEvent::new(request, Context::default());
            let resp = h.rt.block_on(async {
                match kind {
                    0 => handle_connect(&h.deps, event).await,
                    1 => handle_default(&h.deps, event).await,
                    _ => handle_disconnect(&h.deps, event).await,
                }
            });
            let resp = resp.map_err(|e| TestCaseError::fail(format!("handler error: {e}")))?;
            match (kind, has_id) {
                (0, false) | (1, false) => prop_assert_eq!(resp.status_code, 400),
                (0, true) => {
                    prop_assert!(
                        matches!(resp.status_code, 200 | 401),
                        "{}",
                        resp.status_code
                    );
                    if resp.status_code == 200 {
                        prop_assert!(token_ok, "accepted a $connect without a valid token");
                    }
                }
                _ => prop_assert_eq!(resp.status_code, 200),
            }
            Ok(())
        })
        .unwrap();
}

/// A connected socket's frames, whatever they hold, get protocol messages
/// back; every refusal names a stable code.
#[test]
fn any_body_on_a_connection_gets_protocol_messages_back() {
    let h = harness();
    let token = h.tokens.issue("ada", "Ada", now_secs());
    let connect = decode(fixture(CONNECT, &token, "")).expect("the fixture decodes");
    let resp =
        h.rt.block_on(handle_connect(
            &h.deps,
            LambdaEvent::new(connect, Context::default()),
        ))
        .expect("a response");
    assert_eq!(resp.status_code, 200);

    let bodies = prop_oneof![
        any_text(128),
        any_json().prop_map(|v| v.to_string()),
        (valid_message(), proptest::collection::vec(mutation(), 0..3)).prop_map(|(m, ms)| {
            let mut value = serde_json::to_value(m).unwrap_or_default();
            for m in ms {
                mutate(&mut value, m);
            }
            value.to_string()
        }),
    ];
    TestRunner::new(budget(128))
        .run(&bodies, |body| {
            if let Ok(mut log) = h.pushed.lock() {
                log.clear();
            }
            let mut value = fixture(MESSAGE, "", &body);
            // Now, so the connection record has not expired.
            value["requestContext"]["requestTimeEpoch"] = Value::from(now_secs() * 1000);
            let request = decode(value).ok_or_else(|| TestCaseError::fail("fixture decodes"))?;
            let resp =
                h.rt.block_on(handle_default(
                    &h.deps,
                    LambdaEvent::new(request, Context::default()),
                ))
                .map_err(|e| TestCaseError::fail(format!("handler error: {e}")))?;
            prop_assert_eq!(resp.status_code, 200);
            let pushed = h.pushed.lock().map(|l| l.clone()).unwrap_or_default();
            for (path, frame) in pushed {
                if frame.is_empty() {
                    continue; // a DeleteConnection
                }
                let msg: ServerMessage = serde_json::from_slice(&frame).map_err(|e| {
                    TestCaseError::fail(format!("{path}: not a server message: {e}"))
                })?;
                // Decoding into `ServerMessage` already proves the code is
                // one of `ErrorCode`'s; none is an internal failure.
                if let ServerMessage::Error { code, .. } = msg {
                    prop_assert_ne!(code, ErrorCode::Internal);
                }
            }
            Ok(())
        })
        .unwrap();
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
