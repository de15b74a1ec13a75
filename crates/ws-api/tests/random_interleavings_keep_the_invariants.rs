//! Deterministic interleavings of many peers' joins, leaves, signals,
//! socket cuts, resumes and disconnects, from a seed (quinn-proto's
//! `Pair::drive` is the model: both sides advance in an order the test picks).
//!
//! Every handler runs as its own task on a single-threaded runtime; before
//! each store call a seeded coin decides how many times the task yields, so
//! the store calls of concurrent handlers interleave differently per seed,
//! and the same seed always gives the same run. After each step the store is
//! checked (no room over its max); after each batch settles, what the peers
//! heard is checked: every pair in a room learned of each other exactly once
//! (`joined.peers` or `peer-joined`, restated by `resumed`), no signal
//! crossed rooms, and once everyone is gone and the grace is over no roster
//! holds anyone. A failing seed prints itself; replay it with
//! `TINCAN_SEED=<seed> cargo test -p tincan-ws-api --test random_interleavings_keep_the_invariants`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tincan_signaling::{Limits, Member, MessageRate, RateVerdict, ResumeProof, RoomView, Seat};
use tincan_store::{
    ConnectionRecord, ConnectionStore, Departure, JoinOutcome, KeepOutcome, MemoryConnectionStore,
    Push, PushError, ResumeOutcome, StoreError,
};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, SocketEnd, WsApi, WsApiConfig};

const ROOM_MAX: usize = 3;
const ROOMS: [&str; 2] = ["blue", "green"];
const USERS: usize = 5;
const STEPS: usize = 14;
const SEEDS: u64 = 150;
const T0: u64 = 1_700_000_000_000;

/// The memory store, yielding a seeded number of times before each call
/// and checking the room cap after each.
struct Shuffled {
    inner: MemoryConnectionStore,
    rng: Mutex<StdRng>,
    violations: Mutex<Vec<String>>,
}

impl Shuffled {
    async fn shuffle(&self) {
        let yields = self.rng.lock().unwrap().random_range(0..4);
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    }

    async fn check(&self, room: &str) {
        let members = self.inner.room(room).await.unwrap().members.len();
        if members > ROOM_MAX {
            self.violations
                .lock()
                .unwrap()
                .push(format!("room {room} holds {members} > {ROOM_MAX}"));
        }
    }
}

#[async_trait]
impl ConnectionStore for Shuffled {
    async fn put(&self, record: &ConnectionRecord, max: usize) -> Result<(), StoreError> {
        self.shuffle().await;
        self.inner.put(record, max).await
    }
    async fn take_message(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError> {
        self.shuffle().await;
        self.inner.take_message(id, rate, now_ms).await
    }
    async fn get(&self, id: &str, now: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        self.shuffle().await;
        self.inner.get(id, now).await
    }
    async fn remove(
        &self,
        id: &str,
        until: u64,
        now: u64,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.shuffle().await;
        self.inner.remove(id, until, now).await
    }
    async fn connections_of(
        &self,
        user: &str,
        now: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.shuffle().await;
        self.inner.connections_of(user, now).await
    }
    async fn room(&self, room: &str) -> Result<RoomView, StoreError> {
        self.shuffle().await;
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
        self.shuffle().await;
        let outcome = self.inner.join(id, room, member, max, now).await;
        self.check(room).await;
        outcome
    }
    async fn leave(
        &self,
        id: &str,
        seat: &Seat,
        now: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.shuffle().await;
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
        self.shuffle().await;
        let outcome = self.inner.resume(id, user, seat, proof, hash, now).await;
        self.check(&seat.room).await;
        outcome
    }
    async fn set_muted(
        &self,
        id: &str,
        seat: &Seat,
        muted: bool,
        now: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.shuffle().await;
        self.inner.set_muted(id, seat, muted, now).await
    }
    async fn set_on_sfu(
        &self,
        id: &str,
        seat: &Seat,
        now: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        self.shuffle().await;
        self.inner.set_on_sfu(id, seat, now).await
    }
    async fn expire(
        &self,
        seat: &Seat,
        until: u64,
        now: u64,
    ) -> Result<Option<Departure>, StoreError> {
        self.shuffle().await;
        self.inner.expire(seat, until, now).await
    }
    async fn keep_if_detached(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        exp: u64,
    ) -> Result<KeepOutcome, StoreError> {
        self.shuffle().await;
        self.inner.keep_if_detached(seat, gone, msg, max, exp).await
    }
    async fn take_kept(&self, peer: &str) -> Result<Vec<String>, StoreError> {
        self.shuffle().await;
        self.inner.take_kept(peer).await
    }
    async fn expired_members(&self, now: u64) -> Result<Vec<(Seat, u64)>, StoreError> {
        self.inner.expired_members(now).await
    }
    async fn stranded_members(&self, now: u64) -> Result<Vec<tincan_store::Stranded>, StoreError> {
        self.inner.stranded_members(now).await
    }
}

/// Frames per connection, in push order; cut connections answer 410.
#[derive(Default)]
struct Wire {
    frames: Mutex<HashMap<String, Vec<Value>>>,
    cut: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl Push for Wire {
    async fn send(&self, to: &str, text: &str) -> Result<(), PushError> {
        if self.cut.lock().unwrap().contains(to) {
            return Err(PushError::Gone(to.to_owned()));
        }
        let value = serde_json::from_str(text).unwrap();
        self.frames
            .lock()
            .unwrap()
            .entry(to.to_owned())
            .or_default()
            .push(value);
        Ok(())
    }
    async fn close(&self, to: &str) -> Result<(), PushError> {
        self.cut.lock().unwrap().insert(to.to_owned());
        Ok(())
    }
}

/// What one user's client knows, built only from frames it received.
#[derive(Debug, Default, Clone)]
struct Client {
    conn: String,
    /// Its participant: peer id, room, resume token.
    me: Option<(String, String, String)>,
    /// Peers it knows in its room, with how many times each was announced.
    known: BTreeMap<String, u32>,
}

struct World {
    api: WsApi,
    wire: Arc<Wire>,
    store: Arc<Shuffled>,
    tokens: TokenKeys,
    clients: Vec<Client>,
    conns: u64,
    /// peer id -> room, for every participant ever created.
    rooms_of: HashMap<String, String>,
    now: Arc<AtomicU64>,
    log: Vec<String>,
}

impl World {
    fn new(seed: u64) -> Self {
        let store = Arc::new(Shuffled {
            inner: MemoryConnectionStore::new(),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
            violations: Mutex::default(),
        });
        let wire = Arc::new(Wire::default());
        let tokens = TokenKeys::new(b"interleavings-secret-interleavings", 900).unwrap();
        let api = WsApi::new(WsApiConfig {
            limits: Limits {
                room_max: ROOM_MAX,
                ..Limits::default()
            },
            tokens: tokens.clone(),
            api_keys: tincan_token::join::ApiKeys::none(),
            store: store.clone(),
            push: wire.clone(),
            ice: Arc::new(NoIceServers),
            sfu: Arc::new(tincan_ws_api::NoSfu),
            calls: None,
            users: None,
        });
        Self {
            api,
            wire,
            store,
            tokens,
            clients: vec![Client::default(); USERS],
            conns: 0,
            rooms_of: HashMap::new(),
            now: Arc::new(AtomicU64::new(T0)),
            log: Vec::new(),
        }
    }

    async fn connect(&mut self, user: usize) {
        self.conns += 1;
        let conn = format!("c{}", self.conns);
        let now = self.now.load(Ordering::Relaxed);
        let token = self
            .tokens
            .issue(&format!("u{user}"), &format!("U{user}"), now / 1000);
        self.api.connect(&conn, Some(&token), now).await.unwrap();
        self.clients[user].conn = conn;
    }

    /// Reads every frame delivered so far into the clients, checking what
    /// each learns.
    fn hear(&mut self, failures: &mut Vec<String>) {
        let mut frames = std::mem::take(&mut *self.wire.frames.lock().unwrap());
        for (user, client) in self.clients.iter_mut().enumerate() {
            for frame in frames.remove(&client.conn).unwrap_or_default() {
                let kind = frame["type"].as_str().unwrap_or_default().to_owned();
                match kind.as_str() {
                    "joined" | "resumed" => {
                        let me = frame["self"]["peerId"].as_str().unwrap().to_owned();
                        let room = frame["room"].as_str().unwrap().to_owned();
                        let token = frame["resume"]["token"].as_str().unwrap().to_owned();
                        let fresh = kind == "joined";
                        if fresh {
                            client.known.clear();
                        }
                        let mut listed = BTreeSet::new();
                        for p in frame["peers"].as_array().unwrap() {
                            let id = p["peerId"].as_str().unwrap().to_owned();
                            listed.insert(id.clone());
                            if fresh {
                                *client.known.entry(id).or_default() += 1;
                            } else {
                                client.known.entry(id).or_insert(1);
                            }
                        }
                        if !fresh {
                            // `resumed` restates the room.
                            client.known.retain(|id, _| listed.contains(id));
                        }
                        self.rooms_of.insert(me.clone(), room.clone());
                        client.me = Some((me, room, token));
                    }
                    "peer-joined" => {
                        let id = frame["peer"]["peerId"].as_str().unwrap().to_owned();
                        *client.known.entry(id).or_default() += 1;
                    }
                    "peer-left" => {
                        let id = frame["peerId"].as_str().unwrap();
                        client.known.remove(id);
                    }
                    "signal" => {
                        let from = frame["from"].as_str().unwrap();
                        let to = frame["to"].as_str().unwrap();
                        if client.me.as_ref().is_none_or(|(me, _, _)| me != to) {
                            // For a participant it no longer is: the client
                            // drops it.
                            continue;
                        }
                        let mine = client.me.as_ref().map(|(_, room, _)| room.as_str());
                        let theirs = self.rooms_of.get(from).map(String::as_str);
                        if mine.is_none() || mine != theirs {
                            failures.push(format!(
                                "u{user} in {mine:?} got a signal from {from} in {theirs:?}"
                            ));
                        }
                    }
                    "error" if frame["code"] == "resume-failed" => client.me = None,
                    _ => {}
                }
            }
            for (id, times) in &client.known {
                if *times > 1 {
                    failures.push(format!("u{user} learned of {id} {times} times"));
                }
            }
        }
    }

    /// Checks that every two attached participants in one room know of
    /// each other.
    async fn check_rosters(&self, failures: &mut Vec<String>) {
        for room in ROOMS {
            let view = self.store.inner.room(room).await.unwrap();
            for a in &view.members {
                let Some(client) = self.clients.iter().find(|c| {
                    c.me.as_ref()
                        .is_some_and(|(me, _, _)| *me == a.peer.peer_id)
                }) else {
                    continue;
                };
                if !a.is_attached_to(&client.conn) {
                    continue;
                }
                for b in &view.members {
                    if a.peer.peer_id != b.peer.peer_id
                        && !client.known.contains_key(&b.peer.peer_id)
                    {
                        failures.push(format!(
                            "{} in {room} does not know {}",
                            a.peer.peer_id, b.peer.peer_id
                        ));
                    }
                }
            }
        }
    }
}

/// One random action of `user`, as a frame or a socket event.
fn action(rng: &mut StdRng, world: &World, user: usize) -> (String, Option<Value>) {
    let client = &world.clients[user];
    let peers: Vec<&String> = client.known.keys().collect();
    match rng.random_range(0..10) {
        0..=2 => {
            let room = ROOMS[rng.random_range(0..ROOMS.len())];
            ("join".into(), Some(json!({"action": "join", "room": room})))
        }
        3 => ("leave".into(), Some(json!({"action": "leave"}))),
        4 | 5 if !peers.is_empty() => {
            let to = peers[rng.random_range(0..peers.len())];
            (
                "signal".into(),
                Some(json!({"action": "signal", "to": to, "data": {"n": rng.random::<u16>()}})),
            )
        }
        6 if rng.random_bool(0.3) => ("bye".into(), None),
        6 => ("cut".into(), None),
        7 => ("resume".into(), None),
        8 => (
            "mute".into(),
            Some(json!({"action": "mute", "muted": true})),
        ),
        _ => ("ping".into(), Some(json!({"action": "ping"}))),
    }
}

async fn run_seed(seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::new(seed);
    let mut failures = Vec::new();
    for user in 0..USERS {
        world.connect(user).await;
    }
    for step in 0..STEPS {
        // A batch: several users act at once, in one interleaving.
        let actors: Vec<usize> = (0..USERS).filter(|_| rng.random_bool(0.6)).collect();
        let mut tasks = Vec::new();
        for &user in &actors {
            let (what, frame) = action(&mut rng, &world, user);
            world.log.push(format!("step {step}: u{user} {what}"));
            let now = world.now.fetch_add(1, Ordering::Relaxed);
            match (what.as_str(), frame) {
                ("cut", _) => {
                    // The socket drops; API Gateway's $disconnect runs
                    // concurrently with whatever else is in flight.
                    let conn = world.clients[user].conn.clone();
                    world.wire.cut.lock().unwrap().insert(conn.clone());
                    let api = world.api.clone();
                    tasks.push(tokio::spawn(async move {
                        api.disconnect(&conn, SocketEnd::Dropped, now).await
                    }));
                }
                ("bye", _) => {
                    // The client closes with 1000: its participant leaves
                    // at once, racing whatever else is in flight.
                    let conn = world.clients[user].conn.clone();
                    world.wire.cut.lock().unwrap().insert(conn.clone());
                    let api = world.api.clone();
                    tasks.push(tokio::spawn(async move {
                        api.disconnect(&conn, SocketEnd::Goodbye, now).await
                    }));
                }
                ("resume", _) => {
                    // The socket drops (its $disconnect racing everything
                    // else), a new one opens and resumes if it can.
                    let old = world.clients[user].conn.clone();
                    world.wire.cut.lock().unwrap().insert(old.clone());
                    let api = world.api.clone();
                    tasks.push(tokio::spawn(async move {
                        api.disconnect(&old, SocketEnd::Dropped, now).await
                    }));
                    world.connect(user).await;
                    if let Some((peer, _, token)) = world.clients[user].me.clone() {
                        let conn = world.clients[user].conn.clone();
                        let api = world.api.clone();
                        let frame =
                            json!({"action": "resume", "peerId": peer, "token": token}).to_string();
                        tasks.push(tokio::spawn(async move {
                            api.message(&conn, &frame, now).await
                        }));
                    }
                }
                (_, Some(frame)) => {
                    let conn = world.clients[user].conn.clone();
                    let api = world.api.clone();
                    let text = frame.to_string();
                    tasks.push(tokio::spawn(
                        async move { api.message(&conn, &text, now).await },
                    ));
                }
                _ => {}
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        world.hear(&mut failures);
        world.check_rosters(&mut failures).await;
        failures.extend(world.store.violations.lock().unwrap().drain(..));
        if !failures.is_empty() {
            failures.push(format!("after:\n  {}", world.log.join("\n  ")));
            return failures;
        }
    }
    // Everyone goes; after the grace, the sweep empties every roster.
    for user in 0..USERS {
        let conn = world.clients[user].conn.clone();
        let now = world.now.fetch_add(1, Ordering::Relaxed);
        world.api.disconnect(&conn, SocketEnd::Dropped, now).await;
    }
    let later = world.now.load(Ordering::Relaxed) + 31_000;
    world.api.sweep(later).await;
    for room in ROOMS {
        let left = world.store.inner.room(room).await.unwrap().members;
        if !left.is_empty() {
            failures.push(format!(
                "{room} still holds {} after everyone left",
                left.len()
            ));
        }
    }
    failures
}

#[test]
fn random_interleavings_keep_the_invariants() {
    let seeds: Vec<u64> = match std::env::var("TINCAN_SEED") {
        Ok(seed) => vec![seed.parse().expect("TINCAN_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    };
    for seed in seeds {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let failures = runtime.block_on(run_seed(seed));
        assert!(
            failures.is_empty(),
            "seed {seed} (replay with TINCAN_SEED={seed}):\n{}",
            failures.join("\n")
        );
    }
}
