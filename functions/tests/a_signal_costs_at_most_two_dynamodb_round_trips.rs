//! DynamoDB round trips per message, counted on the wire: a counting
//! interceptor on the SDK client sees every HTTP request (retries included)
//! that the DynamoDB store sends to moto. Behaviour, not timing.
//!
//! A `signal` to an attached participant costs two (the sender's
//! connection, read by the conditional update that takes the message from
//! its socket's budget, and the room); to a detached one three (and a
//! conditional keep, which also catches a resume that raced it).

use std::sync::{Arc, Mutex};

use tincan_signaling::{
    resume_hash, Member, MessageRate, RateVerdict, ResumeProof, RoomView, Seat,
};
use tincan_store::{
    ConnectionRecord, ConnectionStore, Departure, JoinOutcome, KeepOutcome, ResumeOutcome,
    StoreError,
};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde_json::Value;
use tincan_signaling::Limits;
use tincan_store::testing::{sdk_config, unique_table_name, MotoServer};
use tincan_store::{create_table, DynamoConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, SocketEnd, WsApi, WsApiConfig};

const SECRET: &[u8] = b"round-trip-secret-round-trip-secret!";
const T0: u64 = 1_900_000_000_000;

/// The DynamoDB operations sent, in order (`X-Amz-Target` without its
/// version prefix), and an estimate of the capacity each consumed.
#[derive(Debug, Clone, Default)]
struct Counter {
    ops: Arc<Mutex<Vec<String>>>,
    /// The request in flight: its operation and body.
    sending: Arc<Mutex<Option<(String, Value)>>>,
    /// Read and write units of the operations not taken yet.
    units: Arc<Mutex<(f64, f64)>>,
    /// Those of the last [`Counter::take`].
    last: Arc<Mutex<(f64, f64)>>,
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RoundTripCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        *self.sending.lock().unwrap() = Some((op.clone(), body));
        self.ops.lock().unwrap().push(op);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some((op, request)) = self.sending.lock().unwrap().take() else {
            return Ok(());
        };
        let response: Value = context
            .response()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let (read, write) = capacity(&op, &request, &response);
        let mut units = self.units.lock().unwrap();
        units.0 += read;
        units.1 += write;
        Ok(())
    }
}

/// The capacity an operation consumes on DynamoDB (on-demand or
/// provisioned alike), estimated from the items on the wire by the
/// documented rules: a strongly consistent read costs a read unit per 4 KB
/// of the item, a write a write unit per 1 KB, each item of a
/// `TransactWriteItems` (a condition check too) twice that. (moto answers
/// `ReturnConsumedCapacity` with fixed figures, so the test counts itself.)
/// Items a request names but does not carry (an update's target, a
/// condition check's) count as under 1 KB unless the reply returns them.
fn capacity(op: &str, request: &Value, response: &Value) -> (f64, f64) {
    let units = |item: Option<&Value>, per: usize| {
        let size = item.map_or(0, item_size);
        size.div_ceil(per).max(1) as f64
    };
    match op {
        "GetItem" => (units(response.get("Item"), 4096), 0.0),
        "PutItem" => (0.0, units(request.get("Item"), 1024)),
        "UpdateItem" | "DeleteItem" => (0.0, units(response.get("Attributes"), 1024)),
        "TransactWriteItems" => {
            let items = request["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let write: f64 = items
                .iter()
                .map(|i| 2.0 * units(i.get("Put").and_then(|p| p.get("Item")), 1024))
                .sum();
            (0.0, write)
        }
        _ => (0.0, 0.0),
    }
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
fn item_size(item: &Value) -> usize {
    item.as_object()
        .map_or(0, |m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum())
}

fn value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => v.as_str().map_or(0, str::len),
        "N" => v.as_str().map_or(0, |n| n.len().div_ceil(2) + 1),
        "SS" => v.as_array().map_or(0, |a| {
            a.iter().filter_map(Value::as_str).map(str::len).sum()
        }),
        "L" => {
            3 + v
                .as_array()
                .map_or(0, |a| a.iter().map(|x| 1 + value_size(x)).sum())
        }
        "M" => 3 + item_size(v) + v.as_object().map_or(0, serde_json::Map::len),
        _ => 1,
    }
}

impl Counter {
    fn take(&self) -> Vec<String> {
        *self.last.lock().unwrap() = std::mem::take(&mut *self.units.lock().unwrap());
        std::mem::take(&mut *self.ops.lock().unwrap())
    }

    /// The estimated read and write units of the last [`Counter::take`].
    fn last_units(&self) -> String {
        let (read, write) = *self.last.lock().unwrap();
        format!("~{read} RCU + {write} WCU")
    }

    /// Puts back `ops` taken earlier, ahead of any counted since.
    fn restore(&self, mut ops: Vec<String>) {
        let mut counted = self.ops.lock().unwrap();
        ops.append(&mut counted);
        *counted = ops;
    }
}

/// Frames pushed to each connection.
#[derive(Default)]
struct RecordingPush(Mutex<Vec<(String, Value)>>);

#[async_trait]
impl Push for RecordingPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        let value = serde_json::from_str(text).expect("server sends JSON");
        self.0
            .lock()
            .unwrap()
            .push((connection_id.to_owned(), value));
        Ok(())
    }

    async fn close(&self, _connection_id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

impl RecordingPush {
    fn take_for(&self, id: &str) -> Vec<Value> {
        let mut frames = self.0.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = frames.drain(..).partition(|(to, _)| to == id);
        *frames = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }
}

/// A participant's way back: its peer id and its resume token.
struct Participant {
    peer_id: String,
    token: String,
}

/// Two connected users, `conn-a` and `conn-b`, in room `counted`, on a
/// DynamoDB store behind `wrap`, with every round trip counted.
struct Call {
    _moto: MotoServer,
    counter: Counter,
    api: WsApi,
    push: Arc<RecordingPush>,
    tokens: TokenKeys,
    bob: Participant,
}

async fn call(
    wrap: impl FnOnce(Arc<DynamoConnectionStore>, Counter) -> Arc<dyn ConnectionStore>,
) -> Call {
    let (moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let counter = Counter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config(&endpoint))
        .endpoint_url(&endpoint)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = unique_table_name("round-trips");
    create_table(&client, &table).await.unwrap();
    counter.take();
    let store = wrap(
        Arc::new(DynamoConnectionStore::new(client, table)),
        counter.clone(),
    );
    let push = Arc::new(RecordingPush::default());
    let tokens = TokenKeys::new(SECRET, 900).unwrap();
    let api = WsApi::new(WsApiConfig {
        limits: Limits::default(),
        tokens: tokens.clone(),
        api_keys: tincan_token::join::ApiKeys::none(),
        store,
        push: push.clone(),
        ice: Arc::new(NoIceServers),
        sfu: Arc::new(tincan_ws_api::NoSfu),
        calls: None,
        users: None,
    });

    for (id, user) in [("conn-a", "ada"), ("conn-b", "bob")] {
        let token = tokens.issue(user, user, T0 / 1000);
        api.connect(id, Some(&token), T0).await.unwrap();
        // $connect: the deleted-user check and the write, one transaction.
        assert_eq!(counter.take(), ["TransactWriteItems"], "{id} connects");
        api.message(id, r#"{"action":"join","room":"counted"}"#, T0)
            .await;
        let ops = counter.take();
        eprintln!("{id} joins: {ops:?} {}", counter.last_units());
    }
    let joined = push.take_for("conn-b");
    let joined = joined
        .iter()
        .find(|f| f["type"] == "joined")
        .expect("bob joined");
    let bob = Participant {
        peer_id: joined["self"]["peerId"].as_str().unwrap().to_owned(),
        token: joined["resume"]["token"].as_str().unwrap().to_owned(),
    };
    push.take_for("conn-a");
    counter.take();
    Call {
        _moto: moto,
        counter,
        api,
        push,
        tokens,
        bob,
    }
}

fn signal(to: &str, n: u64) -> String {
    format!(r#"{{"action":"signal","to":"{to}","data":{{"n":{n}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_costs_at_most_two_dynamodb_round_trips() {
    // `_moto` bound, not left to `..`: the server lives until the test ends.
    let Call {
        _moto,
        counter,
        api,
        push,
        bob,
        ..
    } = call(|store, _| store).await;

    // Warm-up and measured signals alike: the count is per message.
    for i in 0..3 {
        api.message("conn-a", &signal(&bob.peer_id, i), T0 + 10 + i)
            .await;
        let ops = counter.take();
        eprintln!("signal {i}: {ops:?} {}", counter.last_units());
        // The sender's connection (its budget taken in the same call), then
        // the room: bob is attached there.
        assert_eq!(ops, ["UpdateItem", "GetItem"], "signal {i}");
        let got = push.take_for("conn-b");
        assert!(
            got.iter()
                .any(|f| f["type"] == "signal" && f["data"]["n"] == i),
            "bob got signal {i}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_a_detached_participant_costs_three_and_waits_for_its_resume() {
    // `_moto` bound, not left to `..`: the server lives until the test ends.
    let Call {
        _moto,
        counter,
        api,
        push,
        tokens,
        bob,
        ..
    } = call(|store, _| store).await;
    api.disconnect("conn-b", SocketEnd::Dropped, T0 + 5).await;
    eprintln!("bob's socket drops: {:?}", counter.take());

    for i in 0..3 {
        api.message("conn-a", &signal(&bob.peer_id, i), T0 + 10 + i)
            .await;
        let ops = counter.take();
        eprintln!(
            "signal {i} to detached bob: {ops:?} {}",
            counter.last_units()
        );
        // The sender's connection, the room (bob detached), and the keep
        // conditioned on bob still being detached: one transaction.
        assert_eq!(
            ops,
            ["UpdateItem", "GetItem", "TransactWriteItems"],
            "signal {i}"
        );
    }
    assert!(push.take_for("conn-a").is_empty(), "ada is told nothing");

    let token = tokens.issue("bob", "bob", T0 / 1000);
    api.connect("conn-b2", Some(&token), T0 + 20).await.unwrap();
    let resume = format!(
        r#"{{"action":"resume","peerId":"{}","token":"{}"}}"#,
        bob.peer_id, bob.token
    );
    api.message("conn-b2", &resume, T0 + 30).await;
    eprintln!("bob resumes: {:?}", counter.take());
    let frames = push.take_for("conn-b2");
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(frames[0]["type"], "resumed");
    for (i, frame) in frames[1..].iter().enumerate() {
        assert_eq!(frame["type"], "signal", "{frame}");
        assert_eq!(frame["data"]["n"], i, "{frame}");
    }
}

/// Bob resumes (and flushes his kept signals, finding none) after ada's
/// handler read the room showing him detached and before its keep: the keep
/// finds him attached, and DynamoDB's cancellation returns the room item, so
/// the signal goes to his new connection at no extra round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_racing_its_targets_resume_costs_three_and_follows_it() {
    let raced = Arc::new(Mutex::new(None::<(Seat, String)>));
    let hook = raced.clone();
    // `_moto` bound, not left to `..`: the server lives until the test ends.
    let Call {
        _moto,
        counter,
        api,
        push,
        tokens,
        bob,
        ..
    } = call(move |store, counter| {
        Arc::new(ResumeBeforeKeep {
            inner: store,
            counter,
            raced: hook,
        })
    })
    .await;
    api.disconnect("conn-b", SocketEnd::Dropped, T0 + 5).await;
    let token = tokens.issue("bob", "bob", T0 / 1000);
    api.connect("conn-b2", Some(&token), T0 + 20).await.unwrap();
    counter.take();

    let secret = bob.token.split_once('.').expect("room.secret").1;
    *raced.lock().unwrap() = Some((
        Seat {
            peer_id: bob.peer_id.clone(),
            room: "counted".into(),
        },
        resume_hash(secret),
    ));
    api.message("conn-a", &signal(&bob.peer_id, 7), T0 + 30)
        .await;
    let ops = counter.take();
    eprintln!("signal racing bob's resume: {ops:?}");
    assert!(raced.lock().unwrap().is_none(), "the resume ran");
    assert_eq!(ops, ["UpdateItem", "GetItem", "TransactWriteItems"]);
    let got = push.take_for("conn-b2");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "signal");
    assert_eq!(got[0]["data"]["n"], 7);
}

/// The DynamoDB store, but the first `keep_if_detached` is preceded by a
/// resume of the seat in `raced` on `conn-b2` and its flush, as if bob's
/// resume ran between the sender's read and its keep. The resume's own
/// round trips are not counted against the signal.
struct ResumeBeforeKeep {
    inner: Arc<DynamoConnectionStore>,
    counter: Counter,
    raced: Arc<Mutex<Option<(Seat, String)>>>,
}

#[async_trait]
impl ConnectionStore for ResumeBeforeKeep {
    async fn put(&self, record: &ConnectionRecord, max: usize) -> Result<(), StoreError> {
        self.inner.put(record, max).await
    }
    async fn take_message(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError> {
        self.inner.take_message(id, rate, now_ms).await
    }
    async fn get(&self, id: &str, now: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.get(id, now).await
    }
    async fn remove(
        &self,
        id: &str,
        until: u64,
        now: u64,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.inner.remove(id, until, now).await
    }
    async fn connections_of(
        &self,
        user: &str,
        now: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.inner.connections_of(user, now).await
    }
    async fn room(&self, room: &str) -> Result<RoomView, StoreError> {
        self.inner.room(room).await
    }
    async fn join(
        &self,
        id: &str,
        room: &str,
        member: &Member,
        max: usize,
        now: u64,
    ) -> Result<JoinOutcome, StoreError> {
        self.inner.join(id, room, member, max, now).await
    }
    async fn leave(
        &self,
        id: &str,
        seat: &Seat,
        now: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.inner.leave(id, seat, now).await
    }
    async fn resume(
        &self,
        id: &str,
        user: &str,
        seat: &Seat,
        proof: &ResumeProof,
        hash: &str,
        now: u64,
    ) -> Result<ResumeOutcome, StoreError> {
        self.inner.resume(id, user, seat, proof, hash, now).await
    }
    async fn set_muted(
        &self,
        id: &str,
        seat: &Seat,
        muted: bool,
        now: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.inner.set_muted(id, seat, muted, now).await
    }
    async fn set_on_sfu(
        &self,
        id: &str,
        seat: &Seat,
        now: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.inner.set_on_sfu(id, seat, now).await
    }
    async fn expire(
        &self,
        seat: &Seat,
        until: u64,
        now: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.inner.expire(seat, until, now).await
    }
    async fn keep_if_detached(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        expires_at: u64,
    ) -> Result<KeepOutcome, StoreError> {
        let raced = self.raced.lock().unwrap().take();
        if let Some((raced, hash)) = raced {
            let signal_so_far = self.counter.take();
            let proof = ResumeProof::Token(hash);
            let resumed = self
                .inner
                .resume("conn-b2", "bob", &raced, &proof, "next", T0 + 30)
                .await?;
            assert!(matches!(resumed, ResumeOutcome::Resumed { .. }));
            assert!(self.inner.take_kept(&raced.peer_id).await?.is_empty());
            self.counter.take();
            self.counter.restore(signal_so_far);
        }
        self.inner
            .keep_if_detached(seat, gone, msg, max, expires_at)
            .await
    }
    async fn take_kept(&self, peer: &str) -> Result<Vec<String>, StoreError> {
        self.inner.take_kept(peer).await
    }
    async fn expired_members(&self, now: u64) -> Result<Vec<(Seat, u64)>, StoreError> {
        self.inner.expired_members(now).await
    }
    async fn stranded_members(&self, now: u64) -> Result<Vec<tincan_store::Stranded>, StoreError> {
        self.inner.stranded_members(now).await
    }
}
