use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{json, Value};
use tincan_signaling::Limits;
use tincan_store::{MemoryConnectionStore, Push, PushError};
use tincan_token::TokenKeys;
use tincan_ws_api::{NoIceServers, NoSfu, WsApi, WsApiConfig};

use super::*;

/// The records of one `$default` invocation, exactly as printed (the same
/// JSON values the `json!`-built records had: CloudWatch reads members, not
/// their order).
const GOLDEN: &str = concat!(
    r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Tincan/Signaling","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"Errors","Unit":"Count"},{"Name":"GonePeers","Unit":"Count"},{"Name":"Joins","Unit":"Count"},{"Name":"Signals","Unit":"Count"}]}]},"FunctionName":"ws-default","Errors":3,"GonePeers":1,"Joins":1,"Signals":3}"#,
    "\n",
    r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Tincan/Signaling","Dimensions":[["FunctionName","Code"]],"Metrics":[{"Name":"Errors","Unit":"Count"}]}]},"FunctionName":"ws-default","Code":"not-in-room","Errors":1}"#,
    "\n",
    r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Tincan/Signaling","Dimensions":[["FunctionName","Code"]],"Metrics":[{"Name":"Errors","Unit":"Count"}]}]},"FunctionName":"ws-default","Code":"room-full","Errors":2}"#,
    "\n",
);

fn lines(records: &[Record]) -> String {
    records.iter().map(|r| r.to_json() + "\n").collect()
}

#[test]
fn records_are_the_embedded_metric_format_golden() {
    let metrics = Metrics::new("ws-default", 1_700_000_000_000);
    metrics.count(Metric::Joins);
    for _ in 0..3 {
        metrics.count(Metric::Signals);
    }
    metrics.count(Metric::GonePeers);
    metrics.error(ErrorCode::RoomFull);
    metrics.error(ErrorCode::NotInRoom);
    metrics.error(ErrorCode::RoomFull);
    assert_eq!(lines(&metrics.documents()), GOLDEN);
}

#[test]
fn every_dimension_and_metric_a_directive_names_is_in_its_record() {
    let metrics = Metrics::new("ws-connect", 1_700_000_000_123);
    metrics.count(Metric::Connections);
    metrics.error(Code::Unauthorized);
    metrics.error(ErrorCode::StoreUnavailable);
    let records = metrics.documents();
    assert_eq!(records.len(), 3);
    for record in records {
        let doc: Value = serde_json::from_str(&record.to_json()).unwrap();
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_123u64);
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for dim in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dim.as_str().unwrap()].is_string(), "{doc}");
        }
        for m in directive["Metrics"].as_array().unwrap() {
            assert_eq!(m["Unit"], "Count");
            assert!(doc[m["Name"].as_str().unwrap()].is_u64(), "{doc}");
        }
        // Nothing but the envelope, the dimensions and the metrics.
        let named = 1
            + directive["Dimensions"][0].as_array().unwrap().len()
            + directive["Metrics"].as_array().unwrap().len();
        assert_eq!(doc.as_object().unwrap().len(), named, "{doc}");
    }
}

#[test]
fn an_invocation_that_counted_nothing_prints_nothing() {
    let metrics = Metrics::new("ws-default", 1);
    metrics.pushed(Outbound::Message(&ServerMessage::Pong), Pushed::Delivered);
    assert!(metrics.documents().is_empty());
}

const SECRET: &[u8] = b"metrics-secret-metrics-secret-metrics!";
const T0: u64 = 1_700_000_000_000;

/// A push that answers 410 for the connections in `gone` and records the
/// rest.
#[derive(Default)]
struct Sink {
    gone: Mutex<Vec<String>>,
    frames: Mutex<HashMap<String, Vec<Value>>>,
}

#[async_trait]
impl Push for Sink {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        if self.gone.lock().unwrap().iter().any(|g| g == connection_id) {
            return Err(PushError::Gone(connection_id.to_owned()));
        }
        let value = serde_json::from_str(text).expect("JSON");
        self.frames
            .lock()
            .unwrap()
            .entry(connection_id.to_owned())
            .or_default()
            .push(value);
        Ok(())
    }

    async fn close(&self, _connection_id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

impl Sink {
    fn last(&self, connection_id: &str) -> Value {
        self.frames.lock().unwrap()[connection_id]
            .last()
            .cloned()
            .unwrap()
    }
}

/// Runs `work` as one invocation: its totals and its errors by code.
async fn counted<F: std::future::Future>(
    work: F,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let metrics = Metrics::new("ws-default", T0);
    metrics.scoped(work).await;
    let records: Vec<Value> = metrics
        .documents()
        .iter()
        .map(|r| serde_json::from_str(&r.to_json()).unwrap())
        .collect();
    let values = |doc: &Value| -> BTreeMap<String, u64> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().unwrap();
                (name.to_owned(), doc[name].as_u64().unwrap())
            })
            .collect()
    };
    let totals = records.first().map(values).unwrap_or_default();
    let errors = records[1.min(records.len())..]
        .iter()
        .map(|doc| {
            (
                doc["Code"].as_str().unwrap().to_owned(),
                values(doc)["Errors"],
            )
        })
        .collect();
    (totals, errors)
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// The handlers as the Lambdas build them, over an in-memory store: every
/// kind of outbound message, as the handlers typed it, lands in the metric
/// of the invocation that pushed it.
#[tokio::test]
async fn each_outbound_kind_is_counted_from_the_handlers_typed_messages() {
    let sink = Arc::new(Sink::default());
    let tokens = TokenKeys::new(SECRET, 900).unwrap();
    let api = WsApi::new(WsApiConfig {
        limits: Limits {
            room_max: 2,
            ..Limits::default()
        },
        tokens: tokens.clone(),
        api_keys: tincan_token::join::ApiKeys::none(),
        store: Arc::new(MemoryConnectionStore::new()),
        push: sink.clone(),
        ice: Arc::new(NoIceServers),
        sfu: Arc::new(NoSfu),
        calls: None,
        users: None,
    })
    .with_push_observer(Arc::new(PushCounter));
    let mut now = T0;
    // b2 is b's user on a new socket.
    for (id, user) in [("a", "a"), ("b", "b"), ("c", "c"), ("b2", "b")] {
        now += 1;
        let token = tokens.issue(&format!("user-{user}"), user, now / 1000);
        api.connect(id, Some(&token), now).await.unwrap();
    }
    let join = r#"{"action":"join","room":"r"}"#;

    // `joined` (and a `peer-joined`, not counted).
    assert_eq!(
        counted(api.message("a", join, now)).await,
        (counts(&[("Joins", 1)]), counts(&[]))
    );
    assert_eq!(
        counted(api.message("b", join, now)).await,
        (counts(&[("Joins", 1)]), counts(&[]))
    );
    let b = sink.last("b");
    assert_eq!(b["type"], "joined");
    let a_peer = b["peers"][0]["peerId"].as_str().unwrap().to_owned();
    let b_peer = b["self"]["peerId"].as_str().unwrap().to_owned();
    let b_resume = b["resume"]["token"].as_str().unwrap().to_owned();

    // A delivered `signal`.
    let to_b = json!({"action": "signal", "to": b_peer, "data": {"type": "offer"}}).to_string();
    assert_eq!(
        counted(api.message("a", &to_b, now)).await,
        (counts(&[("Signals", 1)]), counts(&[]))
    );

    // `error`s, by code: a full room, a signal from outside any room.
    let to_a = json!({"action": "signal", "to": a_peer, "data": {}}).to_string();
    assert_eq!(
        counted(async {
            api.message("c", join, now).await;
            api.message("c", &to_a, now).await;
        })
        .await,
        (
            counts(&[("Errors", 2)]),
            counts(&[("not-in-room", 1), ("room-full", 1)])
        )
    );

    // A push finding b gone: counted, and the signal is kept, not delivered.
    sink.gone.lock().unwrap().push("b".to_owned());
    assert_eq!(
        counted(api.message("a", &to_b, now)).await,
        (counts(&[("GonePeers", 1)]), counts(&[]))
    );

    // b resumes on a new socket: `resumed`, and the kept signal delivered.
    let resume = json!({"action": "resume", "peerId": b_peer, "token": b_resume}).to_string();
    assert_eq!(
        counted(api.message("b2", &resume, now + 1_000)).await,
        (counts(&[("Joins", 1), ("Signals", 1)]), counts(&[]))
    );
    assert_eq!(sink.last("b2")["type"], "signal");

    // Outside any invocation: pushed, counted nowhere (and no panic).
    api.message("a", r#"{"action":"ping"}"#, now + 2_000).await;
    assert_eq!(sink.last("a")["type"], "pong");
}
