//! Signaling metrics in CloudWatch embedded metric format (EMF).
//!
//! Each invocation counts what it did at the handler boundary and prints the
//! counts as EMF JSON lines on stdout; Lambda ships them to the function's
//! log group and CloudWatch turns them into metrics in [`NAMESPACE`], with
//! no API call and no extra permission. What is counted:
//!
//! | metric | dimensions | counted when |
//! |---|---|---|
//! | `Connections` | `FunctionName` | `$connect` accepts a socket |
//! | `Disconnections` | `FunctionName` | `$disconnect` runs |
//! | `Joins` | `FunctionName` | a `joined` or `resumed` goes out |
//! | `Signals` | `FunctionName` | a `signal` is delivered |
//! | `Errors` | `FunctionName`; `FunctionName`, `Code` | an `error {code}` goes out, or `$connect` refuses (`unauthorized`) or fails (`store-unavailable`) |
//! | `GonePeers` | `FunctionName` | a push finds the connection gone (410) |
//!
//! `FunctionName` is the deployed function's name, as in `AWS/Lambda`'s own
//! metrics, so one stack's metrics never mix with another's.
//!
//! The server messages are seen on their way out, through [`MeteredPush`]
//! around the real [`Push`], so the handlers' logic is untouched. The push
//! client lives as long as the container, so it counts into the metrics of
//! the invocation it runs in ([`Metrics::scoped`], a task-local), not into
//! one fixed set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tincan_store::{Push, PushError};

/// The CloudWatch namespace of the signaling metrics.
pub const NAMESPACE: &str = "Tincan/Signaling";

/// What one invocation did; cheap to clone (shared counts).
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    timestamp_ms: u64,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    totals: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
}

impl Metrics {
    /// Counts for one invocation of the function named `function`, stamped
    /// with the request's time.
    pub fn new(function: impl Into<String>, timestamp_ms: u64) -> Self {
        Self {
            function: function.into(),
            timestamp_ms,
            counts: Arc::default(),
        }
    }

    /// Adds one to `metric` (one of the names in the module table).
    pub fn count(&self, metric: &'static str) {
        let mut counts = self.lock();
        *counts.totals.entry(metric).or_default() += 1;
    }

    /// Adds one error with the protocol's stable `code`.
    pub fn error(&self, code: &str) {
        let mut counts = self.lock();
        *counts.totals.entry("Errors").or_default() += 1;
        *counts.errors.entry(code.to_owned()).or_default() += 1;
    }

    /// Counts one server message on its way to a client.
    pub fn observe_sent(&self, text: &str) {
        match message_type(text) {
            Some("joined" | "resumed") => self.count("Joins"),
            Some("signal") => self.count("Signals"),
            Some("error") => {
                let code = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("code")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned());
                self.error(&code);
            }
            _ => {}
        }
    }

    /// The EMF documents of this invocation: one with every total under
    /// `FunctionName`, one per error code under `FunctionName` and `Code`. None when
    /// nothing was counted.
    pub fn documents(&self) -> Vec<Value> {
        let counts = self.lock();
        if counts.totals.is_empty() {
            return Vec::new();
        }
        let mut docs = Vec::with_capacity(1 + counts.errors.len());
        let totals: Vec<(&str, u64)> = counts.totals.iter().map(|(k, v)| (*k, *v)).collect();
        docs.push(self.document(&[], &totals));
        for (code, n) in &counts.errors {
            docs.push(self.document(&[("Code", code)], &[("Errors", *n)]));
        }
        docs
    }

    /// Prints [`Metrics::documents`] on stdout, one JSON line each.
    pub fn emit(&self) {
        for doc in self.documents() {
            println!("{doc}");
        }
    }

    fn document(&self, extra_dims: &[(&str, &str)], metrics: &[(&str, u64)]) -> Value {
        let mut dims = vec!["FunctionName"];
        dims.extend(extra_dims.iter().map(|(k, _)| *k));
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dims],
                    "Metrics": definitions,
                }],
            }),
        );
        doc.insert("FunctionName".into(), self.function.clone().into());
        for (k, v) in extra_dims {
            doc.insert((*k).into(), (*v).into());
        }
        for (name, n) in metrics {
            doc.insert((*name).into(), (*n).into());
        }
        Value::Object(doc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counting cannot panic while holding the lock; a poisoned one still
        // holds usable counts.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `type` of a server message. Server messages are serialized with the
/// tag first (`{"type":"signal",...`), so this reads no further; anything
/// else is parsed.
fn message_type(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix("{\"type\":\"") {
        return rest.split('"').next();
    }
    let start = text.find("\"type\"")?;
    let rest = text[start + 6..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    rest.strip_prefix('"')?.split('"').next()
}

tokio::task_local! {
    /// The metrics of the invocation being served.
    static CURRENT: Metrics;
}

impl Metrics {
    /// Runs `work` (one invocation's handling) with these metrics as the
    /// ones a [`MeteredPush`] counts into.
    pub async fn scoped<F: std::future::Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }
}

/// A [`Push`] that counts what goes through it into the current
/// invocation's [`Metrics`] (see [`Metrics::scoped`]); outside one it only
/// forwards.
pub struct MeteredPush {
    inner: Arc<dyn Push>,
}

impl MeteredPush {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Push>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Push for MeteredPush {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError> {
        let result = self.inner.send(connection_id, text).await;
        // Outside an invocation's scope there is nothing to count into.
        let _ = CURRENT.try_with(|metrics| match &result {
            Ok(()) => metrics.observe_sent(text),
            Err(PushError::Gone(_)) => metrics.count("GonePeers"),
            Err(_) => {}
        });
        result
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.inner.close(connection_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink {
        gone: &'static str,
    }

    #[async_trait]
    impl Push for Sink {
        async fn send(&self, connection_id: &str, _text: &str) -> Result<(), PushError> {
            if connection_id == self.gone {
                Err(PushError::Gone(connection_id.into()))
            } else {
                Ok(())
            }
        }
        async fn close(&self, _connection_id: &str) -> Result<(), PushError> {
            Ok(())
        }
    }

    fn metric_names(doc: &Value) -> Vec<String> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn pushes_are_counted_by_type_and_errors_by_code() {
        let metrics = Metrics::new("ws-default", 1_700_000_000_000);
        let push = MeteredPush::new(Arc::new(Sink { gone: "c9" }));
        metrics
            .scoped(async {
                let joined =
                    serde_json::to_string(&json!({"type": "joined", "room": "r"})).unwrap();
                push.send("c1", &joined).await.unwrap();
                push.send("c2", r#"{"type":"peer-joined","peer":{}}"#)
                    .await
                    .unwrap();
                for _ in 0..3 {
                    push.send(
                        "c2",
                        r#"{"type":"signal","from":"p1","data":{"type":"offer"}}"#,
                    )
                    .await
                    .unwrap();
                }
                push.send(
                    "c1",
                    r#"{"type":"error","code":"room-full","message":"full"}"#,
                )
                .await
                .unwrap();
                push.send(
                    "c1",
                    r#"{"type":"error","code":"room-full","message":"full"}"#,
                )
                .await
                .unwrap();
                push.send("c1", r#"{"code":"not-in-room","type":"error"}"#)
                    .await
                    .unwrap();
                assert!(push.send("c9", r#"{"type":"signal"}"#).await.is_err());
            })
            .await;

        let docs = metrics.documents();
        assert_eq!(docs.len(), 3, "{docs:#?}");
        let totals = &docs[0];
        assert_eq!(totals["FunctionName"], "ws-default");
        assert_eq!(totals["Joins"], 1);
        assert_eq!(
            totals["Signals"], 3,
            "the gone peer's signal was not delivered"
        );
        assert_eq!(totals["Errors"], 3);
        assert_eq!(totals["GonePeers"], 1);
        assert_eq!(
            metric_names(totals),
            ["Errors", "GonePeers", "Joins", "Signals"]
        );
        assert_eq!(
            totals["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"]])
        );
        let by_code: BTreeMap<&str, u64> = docs[1..]
            .iter()
            .map(|d| (d["Code"].as_str().unwrap(), d["Errors"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            by_code,
            BTreeMap::from([("not-in-room", 1), ("room-full", 2)])
        );
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Code"]])
        );
    }

    #[tokio::test]
    async fn one_push_client_counts_into_each_invocations_own_metrics() {
        let push = MeteredPush::new(Arc::new(Sink { gone: "c9" }));
        let first = Metrics::new("ws-default", 1);
        let second = Metrics::new("ws-default", 2);
        first
            .scoped(push.send("c1", r#"{"type":"signal"}"#))
            .await
            .unwrap();
        second
            .scoped(async {
                push.send("c1", r#"{"type":"signal"}"#).await.unwrap();
                push.send("c2", r#"{"type":"signal"}"#).await.unwrap();
            })
            .await;
        // Outside any invocation: forwarded, counted nowhere.
        push.send("c1", r#"{"type":"signal"}"#).await.unwrap();
        assert_eq!(first.documents()[0]["Signals"], 1);
        assert_eq!(second.documents()[0]["Signals"], 2);
    }

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let metrics = Metrics::new("ws-connect", 1_700_000_000_123);
        metrics.count("Connections");
        metrics.error("unauthorized");
        for doc in metrics.documents() {
            let aws = &doc["_aws"];
            assert_eq!(aws["Timestamp"], 1_700_000_000_123u64);
            let directives = aws["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(directives.len(), 1);
            let directive = &directives[0];
            assert_eq!(directive["Namespace"], NAMESPACE);
            // Every dimension and every metric named in the directive is a
            // member of the document, with a string and a number value.
            for dim in directive["Dimensions"][0].as_array().unwrap() {
                assert!(doc[dim.as_str().unwrap()].is_string(), "{doc}");
            }
            for m in directive["Metrics"].as_array().unwrap() {
                assert_eq!(m["Unit"], "Count");
                assert!(doc[m["Name"].as_str().unwrap()].is_u64(), "{doc}");
            }
            // One line each.
            assert!(!doc.to_string().contains('\n'));
        }
    }

    #[test]
    fn an_invocation_that_counted_nothing_prints_nothing() {
        let metrics = Metrics::new("ws-default", 1);
        metrics.observe_sent(r#"{"type":"pong"}"#);
        metrics.observe_sent("not json");
        assert!(metrics.documents().is_empty());
    }

    #[test]
    fn an_error_without_a_code_is_counted_as_unknown() {
        let metrics = Metrics::new("ws-default", 1);
        metrics.observe_sent(r#"{"type":"error"}"#);
        assert_eq!(metrics.documents()[1]["Code"], "unknown");
    }
}
