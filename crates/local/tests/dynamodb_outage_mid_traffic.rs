//! DynamoDB goes away in the middle of live traffic and comes back: the
//! local stack keeps its connection state in DynamoDB (moto), reached
//! through a proxy the test can cut. While it is cut, clients get
//! `store-unavailable` (and a new socket is refused) but stay connected;
//! once it returns, signals flow again without anyone reconnecting, and no
//! connection is left half-registered: a join that failed during the outage
//! left no member behind.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{join, send, Client};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tincan_store::testing::{unique_table_name, MotoServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long a store call may take to fail: the SDK's connect timeout and
/// retries are short by design (crates/store/src/sdk_config.rs).
const FAIL_WITHIN: Duration = Duration::from_secs(15);

/// A TCP proxy to `target` that can be cut (every open connection reset,
/// new ones closed at once) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The next frame of `type` (others are skipped), within `within`.
async fn next_of(ws: &mut Client, kind: &str, within: Duration) -> Value {
    tokio::time::timeout(within, async {
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
    .unwrap_or_else(|_| panic!("no {kind} within {within:?}"))
}

fn peer_id(joined: &Value) -> String {
    joined["self"]["peerId"].as_str().unwrap().to_owned()
}

fn peer_ids(joined: &Value) -> Vec<String> {
    let mut ids: Vec<String> = joined["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peerId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_store_unavailable_then_carry_on_and_nothing_is_half_registered() {
    let (_moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let moto_addr: SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(moto_addr).await;
    let table = unique_table_name("outage");
    // The stack's DynamoDB client takes its region from the environment, as
    // the AWS SDK does (with an endpoint it signs with dummy credentials).
    // This is the only test in this binary, so nothing else sees the
    // environment.
    std::env::set_var("AWS_REGION", "us-east-1");
    let stack = common::start(|c| {
        c.dynamodb_endpoint = Some(format!("http://{}", proxy.addr));
        c.connections_table = table;
    })
    .await;

    // Two rooms of two, signalling.
    let mut a = stack.client("alice").await;
    let mut b = stack.client("bob").await;
    let mut c = stack.client("carol").await;
    let mut d = stack.client("dave").await;
    let mut f = stack.client("frank").await;
    let ja = join(&mut a, "r1").await;
    let jb = join(&mut b, "r1").await;
    join(&mut c, "r2").await;
    let jd = join(&mut d, "r2").await;
    let (pa, pb) = (peer_id(&ja), peer_id(&jb));
    send(
        &mut a,
        json!({"action": "signal", "to": pb, "data": {"n": 1}}),
    )
    .await;
    assert_eq!(next_of(&mut b, "signal", FAIL_WITHIN).await["data"]["n"], 1);

    // DynamoDB goes away.
    proxy.cut();
    let cut_at = tokio::time::Instant::now();
    send(
        &mut a,
        json!({"action": "signal", "to": pb, "data": {"n": 2}}),
    )
    .await;
    let err = next_of(&mut a, "error", FAIL_WITHIN).await;
    assert_eq!(err["code"], "store-unavailable", "{err}");
    let noticed = cut_at.elapsed();
    // A join fails the same way and must leave nothing behind.
    send(&mut f, json!({"action": "join", "room": "r1"})).await;
    let err = next_of(&mut f, "error", FAIL_WITHIN).await;
    assert_eq!(err["code"], "store-unavailable", "{err}");
    // A new socket cannot be registered, so it is refused.
    let refused = tokio::time::timeout(
        FAIL_WITHIN,
        tokio_tungstenite::connect_async(stack.ws_url("erin")),
    )
    .await
    .expect("the upgrade is answered in time");
    assert!(refused.is_err(), "a socket was accepted without a store");

    // It comes back: the same sockets carry on, nobody reconnects.
    proxy.restore();
    let restored_at = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::now() + FAIL_WITHIN;
    let mut n = 3;
    loop {
        send(
            &mut a,
            json!({"action": "signal", "to": pb, "data": {"n": n}}),
        )
        .await;
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match b.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["type"] == "signal" {
                            return v;
                        }
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("bob's socket ended: {other:?}"),
                }
            }
        })
        .await;
        if let Ok(v) = got {
            assert_eq!(v["from"], pa.as_str());
            // Figures for the record, not assertions.
            eprintln!(
                "dynamodb outage: store-unavailable after {noticed:?}; signals again {:?} after the store returned",
                restored_at.elapsed()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "signals did not flow again within {FAIL_WITHIN:?} of the store's return"
        );
        n += 1;
    }

    // Nothing half-registered: a newcomer to r1 finds exactly alice and bob,
    // not frank, whose join failed during the outage.
    let mut e = stack.client("gina").await;
    let je = join(&mut e, "r1").await;
    let mut want = vec![pa.clone(), pb.clone()];
    want.sort();
    assert_eq!(peer_ids(&je), want, "{je}");
    // Frank can join now, and finds all three.
    let jf = join(&mut f, "r1").await;
    assert_eq!(peer_ids(&jf).len(), 3, "{jf}");
    // r2 still holds carol and dave, who never noticed anything.
    let pd = peer_id(&jd);
    send(
        &mut c,
        json!({"action": "signal", "to": pd, "data": {"n": 0}}),
    )
    .await;
    next_of(&mut d, "signal", FAIL_WITHIN).await;
}
