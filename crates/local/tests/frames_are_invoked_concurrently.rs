//! API Gateway invokes the route of each frame on its own, concurrently and
//! in no order, and runs `$disconnect` without waiting for them; the local
//! gateway does the same, so nothing built on it can rely on frame order.
//! Proven here with a backend that records what it is given.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tincan_local::{
    router, Backend, ConnectOutcome, GatewayLimits, GatewayState, SocketTable, WsEvent,
};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Records arrivals; `seq` 0 waits for `seq` 1; every message then waits
/// for a `release` permit.
struct Recorder {
    arrivals: Mutex<Vec<u64>>,
    running: Mutex<HashMap<String, usize>>,
    max_running_per_socket: AtomicUsize,
    running_total: AtomicUsize,
    max_running_total: AtomicUsize,
    first_waits_for_second: bool,
    second_arrived: Notify,
    first_saw_second: Mutex<Option<bool>>,
    hold: bool,
    release: Semaphore,
    /// (status, invocations still running) at each `$disconnect`.
    disconnects: Mutex<Vec<(u16, usize)>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            arrivals: Mutex::default(),
            running: Mutex::default(),
            max_running_per_socket: AtomicUsize::default(),
            running_total: AtomicUsize::default(),
            max_running_total: AtomicUsize::default(),
            first_waits_for_second: false,
            second_arrived: Notify::new(),
            first_saw_second: Mutex::default(),
            hold: false,
            release: Semaphore::new(0),
            disconnects: Mutex::default(),
        }
    }
}

#[async_trait]
impl Backend for Recorder {
    async fn connect(&self, _event: &WsEvent) -> ConnectOutcome {
        ConnectOutcome::Accept
    }

    async fn message(&self, event: &WsEvent, _route_key: &str, body: &str) {
        let seq = serde_json::from_str::<Value>(body).unwrap()["seq"]
            .as_u64()
            .unwrap();
        self.arrivals.lock().unwrap().push(seq);
        let total = self.running_total.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running_total.fetch_max(total, Ordering::SeqCst);
        {
            let mut running = self.running.lock().unwrap();
            let mine = running.entry(event.connection_id.clone()).or_default();
            *mine += 1;
            self.max_running_per_socket
                .fetch_max(*mine, Ordering::SeqCst);
        }
        if self.first_waits_for_second {
            match seq {
                0 => {
                    let saw = tokio::time::timeout(
                        Duration::from_secs(5),
                        self.second_arrived.notified(),
                    )
                    .await
                    .is_ok();
                    *self.first_saw_second.lock().unwrap() = Some(saw);
                }
                1 => self.second_arrived.notify_one(),
                _ => {}
            }
        }
        if self.hold {
            self.release.acquire().await.unwrap().forget();
        }
        *self
            .running
            .lock()
            .unwrap()
            .get_mut(&event.connection_id)
            .unwrap() -= 1;
        self.running_total.fetch_sub(1, Ordering::SeqCst);
    }

    async fn disconnect(&self, _event: &WsEvent, status_code: u16, _reason: &str) {
        let running = self.running_total.load(Ordering::SeqCst);
        self.disconnects
            .lock()
            .unwrap()
            .push((status_code, running));
    }
}

async fn serve(backend: Arc<Recorder>, limits: GatewayLimits) -> SocketAddr {
    let state = GatewayState::new(backend, SocketTable::default(), limits, "local");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn client(addr: SocketAddr) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap()
        .0
}

async fn send_seq(ws: &mut Client, seq: u64) {
    ws.send(Message::text(
        json!({"action": "ping", "seq": seq}).to_string(),
    ))
    .await
    .unwrap();
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn no_rate_limit() -> GatewayLimits {
    GatewayLimits {
        msg_rate: 0,
        ..GatewayLimits::default()
    }
}

#[tokio::test]
async fn two_frames_of_one_socket_are_handled_at_the_same_time() {
    let backend = Arc::new(Recorder {
        first_waits_for_second: true,
        ..Recorder::default()
    });
    let addr = serve(backend.clone(), no_rate_limit()).await;
    let mut ws = client(addr).await;
    send_seq(&mut ws, 0).await;
    send_seq(&mut ws, 1).await;
    until("the first frame's invocation to end", || {
        backend.first_saw_second.lock().unwrap().is_some()
    })
    .await;
    // Frame 0's invocation was still running when frame 1's began.
    assert_eq!(*backend.first_saw_second.lock().unwrap(), Some(true));
}

#[tokio::test]
async fn with_jitter_frames_of_one_socket_arrive_out_of_order() {
    let backend = Arc::new(Recorder::default());
    let limits = GatewayLimits {
        invoke_jitter: Duration::from_millis(30),
        ..no_rate_limit()
    };
    let addr = serve(backend.clone(), limits).await;
    let mut ws = client(addr).await;
    const FRAMES: u64 = 200;
    for seq in 0..FRAMES {
        send_seq(&mut ws, seq).await;
    }
    until("every frame", || {
        backend.arrivals.lock().unwrap().len() == FRAMES as usize
    })
    .await;
    let arrivals = backend.arrivals.lock().unwrap().clone();
    let inversions = arrivals.windows(2).filter(|w| w[0] > w[1]).count();
    let mut sorted = arrivals.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..FRAMES).collect::<Vec<_>>(), "each frame once");
    assert!(inversions > 0, "frames arrived in order: {arrivals:?}");
}

#[tokio::test]
async fn disconnect_runs_once_without_waiting_for_running_invocations() {
    let backend = Arc::new(Recorder {
        hold: true,
        ..Recorder::default()
    });
    let addr = serve(backend.clone(), no_rate_limit()).await;
    let mut ws = client(addr).await;
    for seq in 0..3 {
        send_seq(&mut ws, seq).await;
    }
    until("three invocations running", || {
        backend.running_total.load(Ordering::SeqCst) == 3
    })
    .await;
    ws.close(None).await.unwrap();
    until("$disconnect", || {
        !backend.disconnects.lock().unwrap().is_empty()
    })
    .await;
    // A close frame with no code: reported as 1005, as API Gateway does.
    assert_eq!(*backend.disconnects.lock().unwrap(), vec![(1005, 3)]);
    backend.release.add_permits(3);
    until("the invocations to end", || {
        backend.running_total.load(Ordering::SeqCst) == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(backend.disconnects.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn invocations_in_flight_are_bounded_per_socket_and_in_all() {
    let backend = Arc::new(Recorder {
        hold: true,
        ..Recorder::default()
    });
    let limits = GatewayLimits {
        max_inflight_per_socket: 4,
        max_inflight: 6,
        ..no_rate_limit()
    };
    let addr = serve(backend.clone(), limits).await;
    let mut a = client(addr).await;
    let mut b = client(addr).await;
    for seq in 0..10 {
        send_seq(&mut a, seq).await;
        send_seq(&mut b, 100 + seq).await;
    }
    until("six invocations running", || {
        backend.running_total.load(Ordering::SeqCst) == 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.arrivals.lock().unwrap().len(), 6);
    backend.release.add_permits(20);
    until("all twenty frames", || {
        backend.arrivals.lock().unwrap().len() == 20
    })
    .await;
    assert_eq!(backend.max_running_total.load(Ordering::SeqCst), 6);
    assert!(backend.max_running_per_socket.load(Ordering::SeqCst) <= 4);
}

/// The same when forwarding to Lambdas: a stand-in for `cargo lambda
/// watch`'s Invoke API, where frame 0's invocation waits for frame 1's.
#[tokio::test]
async fn forwarded_to_lambdas_two_frames_of_one_socket_are_invoked_at_the_same_time() {
    use axum::extract::{Path, State};
    use axum::routing::post;
    use axum::Json;

    #[derive(Default)]
    struct Invokes {
        second_arrived: Notify,
        first_saw_second: Mutex<Option<bool>>,
    }
    async fn invoke(
        State(invokes): State<Arc<Invokes>>,
        Path(function): Path<String>,
        Json(event): Json<Value>,
    ) -> Json<Value> {
        if function == "ws-default" {
            let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
            match body["seq"].as_u64() {
                Some(0) => {
                    let saw = tokio::time::timeout(
                        Duration::from_secs(5),
                        invokes.second_arrived.notified(),
                    )
                    .await
                    .is_ok();
                    *invokes.first_saw_second.lock().unwrap() = Some(saw);
                }
                Some(1) => invokes.second_arrived.notify_one(),
                _ => {}
            }
        }
        Json(json!({"statusCode": 200}))
    }
    let invokes = Arc::new(Invokes::default());
    let lambdas = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(invokes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, lambdas).await });

    let state = GatewayState::new(
        Arc::new(tincan_local::LambdaForward::new(lambda_url)),
        SocketTable::default(),
        no_rate_limit(),
        "local",
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let mut ws = client(addr).await;
    send_seq(&mut ws, 0).await;
    send_seq(&mut ws, 1).await;
    until("the first frame's invocation to end", || {
        invokes.first_saw_second.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(*invokes.first_saw_second.lock().unwrap(), Some(true));
}
