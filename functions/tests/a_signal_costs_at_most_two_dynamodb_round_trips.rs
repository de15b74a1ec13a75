//! DynamoDB round trips per message, counted on the wire: a counting
//! interceptor on the SDK client sees every HTTP request (retries included)
//! that the DynamoDB store sends to moto. Behaviour, not timing.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde_json::Value;
use tincan_signaling::Limits;
use tincan_store::testing::{sdk_config, unique_table_name, MotoServer};
use tincan_store::{create_table, DynamoConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, WsApi, WsApiConfig};

const SECRET: &[u8] = b"round-trip-secret-round-trip-secret!";
const T0: u64 = 1_900_000_000_000;

/// The DynamoDB operations sent, in order (`X-Amz-Target` without its
/// version prefix).
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<Vec<String>>>);

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
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

impl Counter {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_costs_at_most_two_dynamodb_round_trips() {
    let (_moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let counter = Counter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config(&endpoint))
        .endpoint_url(&endpoint)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = unique_table_name("round-trips");
    create_table(&client, &table).await.unwrap();
    counter.take();
    let store = Arc::new(DynamoConnectionStore::new(client, table));
    let push = Arc::new(RecordingPush::default());
    let tokens = TokenKeys::new(SECRET, 900).unwrap();
    let api = WsApi::new(WsApiConfig {
        limits: Limits::default(),
        tokens: tokens.clone(),
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
        eprintln!("{id} joins: {ops:?}");
    }
    let joined = push.take_for("conn-b");
    let bob = joined
        .iter()
        .find(|f| f["type"] == "joined")
        .and_then(|f| f["self"]["peerId"].as_str())
        .expect("bob joined")
        .to_owned();
    counter.take();

    // Warm-up and measured signals alike: the count is per message.
    for i in 0..3 {
        let body = format!(r#"{{"action":"signal","to":"{bob}","data":{{"n":{i}}}}}"#);
        api.message("conn-a", &body, T0 + 10 + i).await;
        let ops = counter.take();
        eprintln!("signal {i}: {ops:?}");
        assert!(
            ops.len() <= 2,
            "signal {i} took {} DynamoDB round trips: {ops:?}",
            ops.len()
        );
        let got = push.take_for("conn-b");
        assert!(
            got.iter()
                .any(|f| f["type"] == "signal" && f["data"]["n"] == i),
            "bob got signal {i}: {got:?}"
        );
    }
}
