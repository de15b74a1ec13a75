//! MongoDB goes away in the middle of a call and comes back: the local stack
//! keeps accounts and call history in MongoDB (a SecantusDB process on disk
//! that the test kills and restarts on the same port). While it is down,
//! the call goes on (a join, signals and a leave need no MongoDB, and none
//! waits for it), and the HTTP API answers 503 `store-unavailable`. Once it
//! returns, the call history catches up: every visit is there exactly once,
//! with the ends that happened during the outage.
//!
//! Not covered, by design: a socket that drops during the outage cannot
//! reconnect until MongoDB returns, since the local stack checks the account
//! at connect and refuses (503) when it cannot tell; the Lambdas' `$connect`
//! does not look the account up.

mod common;

use std::time::{Duration, Instant};

use common::{join, send, Client};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tincan_accounts::secantus::Secantus;
use tincan_accounts::MongoConfig;
use tokio_tungstenite::tungstenite::Message;

const PW: &str = "correct horse battery";
/// The most anything may take here; a step that waits on MongoDB's
/// timeouts is well inside it.
const WITHIN: Duration = Duration::from_secs(10);

/// The next frame of `type` (others are skipped).
async fn next_of(ws: &mut Client, kind: &str) -> Value {
    tokio::time::timeout(WITHIN, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == kind {
                        return v;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended while waiting for {kind}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} within {WITHIN:?}"))
}

async fn signal(from: &mut Client, to: &mut Client, to_peer: &str, n: u64) {
    send(
        from,
        json!({"action": "signal", "to": to_peer, "data": {"n": n}}),
    )
    .await;
    assert_eq!(next_of(to, "signal").await["data"]["n"], n);
}

/// `GET path` with `token`: status and body.
async fn get(stack: &common::Stack, path: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(stack.http(path))
        .bearer_auth(token)
        .timeout(WITHIN)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Registers `name` and returns its user id.
async fn register(stack: &common::Stack, name: &str) -> String {
    let resp = reqwest::Client::new()
        .post(stack.http("/auth/register"))
        .json(&json!({"username": name, "password": PW, "displayName": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    body["user"]["id"].as_str().unwrap().to_owned()
}

fn peer_id(joined: &Value) -> String {
    joined["self"]["peerId"].as_str().unwrap().to_owned()
}

/// `(room, ended)` of each of the user's calls, once MongoDB answers and
/// `done` holds for them; panics if that takes longer than `WITHIN`.
async fn history_once(
    stack: &common::Stack,
    token: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let (status, body) = get(stack, "/me/calls", token).await;
        if status == 200 {
            let calls = body["calls"].as_array().unwrap().clone();
            if done(&calls) {
                return calls;
            }
        } else {
            assert_eq!(body["error"]["code"], "store-unavailable", "{body}");
        }
        assert!(t.elapsed() < WITHIN * 3, "history never caught up: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_on_while_mongodb_is_down_and_its_history_catches_up_once() {
    let data = tempfile::tempdir().unwrap();
    let mut mongo = Secantus::start_on_disk(data.path()).expect("start secantusd-py");
    let mut config = MongoConfig::new(mongo.uri());
    config.database = "tincan_outage_mid_call".to_owned();
    config.timeout = Duration::from_millis(800);
    config.op_timeout = Duration::from_secs(3);
    let stack = common::start(|c| {
        c.accounts = tincan_accounts::config::Backend::Mongo(config);
        // As in production: a socket needs an account that exists.
        c.users_must_exist = true;
    })
    .await;

    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for name in ["ada", "bob", "carol"] {
            ids.push(register(&stack, name).await);
        }
        ids
    };
    let token = |i: usize| stack.tokens.issue(&ids[i], "x", common::now_secs());
    let connect = |i: usize| {
        let url = format!("ws://{}/ws?token={}", stack.stack.addr, token(i));
        async move { tokio_tungstenite::connect_async(url).await.unwrap().0 }
    };
    let (mut ada, mut bob, mut cy) = (connect(0).await, connect(1).await, connect(2).await);
    let pa = peer_id(&join(&mut ada, "standup").await);
    let pb = peer_id(&join(&mut bob, "standup").await);
    signal(&mut ada, &mut bob, &pb, 1).await;

    // MongoDB goes away mid-call.
    mongo.stop();
    let t = Instant::now();
    let joined = join(&mut cy, "standup").await;
    let join_took = t.elapsed();
    let pc = peer_id(&joined);
    assert_eq!(joined["peers"].as_array().unwrap().len(), 2, "{joined}");
    next_of(&mut ada, "peer-joined").await;
    signal(&mut ada, &mut bob, &pb, 2).await;
    signal(&mut bob, &mut cy, &pc, 3).await;
    signal(&mut cy, &mut ada, &pa, 4).await;
    let t = Instant::now();
    send(&mut bob, json!({"action": "leave"})).await;
    assert_eq!(next_of(&mut ada, "peer-left").await["peerId"], pb.as_str());
    assert_eq!(next_of(&mut cy, "peer-left").await["peerId"], pb.as_str());
    let leave_took = t.elapsed();
    signal(&mut ada, &mut cy, &pc, 5).await;

    // The HTTP API says so, cleanly; TURN credentials need no MongoDB.
    for i in 0..3 {
        let (status, body) = get(&stack, "/me/calls", &token(i)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("store-unavailable")),
            "{body}"
        );
    }
    assert_eq!(get(&stack, "/turn-credentials", &token(0)).await.0, 200);

    // It returns; the history catches up without anyone doing anything.
    mongo.restart().expect("restart secantusd-py");
    let restarted = Instant::now();
    let ended = |c: &Value| c["endedAt"].as_u64().is_some();
    let bobs = history_once(&stack, &token(1), |c| c.len() == 1 && ended(&c[0])).await;
    let caught_up = restarted.elapsed();
    assert_eq!(bobs[0]["room"], "standup");
    assert!(bobs[0]["endedAt"].as_u64() >= bobs[0]["startedAt"].as_u64());
    let cys = history_once(&stack, &token(2), |c| !c.is_empty()).await;
    assert_eq!(cys.len(), 1, "one record for cy's visit: {cys:?}");
    assert!(cys[0]["endedAt"].is_null(), "cy is still in the call");
    let adas = history_once(&stack, &token(0), |c| !c.is_empty()).await;
    assert_eq!(adas.len(), 1, "{adas:?}");
    assert!(adas[0]["endedAt"].is_null());

    // The call carries on, and its end is written as usual.
    signal(&mut cy, &mut ada, &pa, 6).await;
    send(&mut ada, json!({"action": "leave"})).await;
    next_of(&mut cy, "peer-left").await;
    let adas = history_once(&stack, &token(0), |c| c.len() == 1 && ended(&c[0])).await;
    assert_eq!(adas[0]["room"], "standup");
    // Figures for the record, not assertions.
    eprintln!(
        "mongodb outage: join took {join_took:?}, leave announced in {leave_took:?} while down; \
         history caught up {caught_up:?} after the restart"
    );
}
