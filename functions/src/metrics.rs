//! Signaling metrics in CloudWatch embedded metric format (EMF).
//!
//! Each invocation counts what it did at the handler boundary and prints the
//! counts as EMF records, one JSON line each, on stdout; Lambda ships them to
//! the function's log group and CloudWatch turns them into metrics in
//! [`NAMESPACE`], with no API call and no extra permission. What is counted:
//!
//! | metric | dimensions | counted when |
//! |---|---|---|
//! | `Connections` | `FunctionName` | `$connect` accepts a socket |
//! | `Disconnections` | `FunctionName` | `$disconnect` runs |
//! | `Joins` | `FunctionName` | a `joined` or `resumed` goes out |
//! | `Signals` | `FunctionName` | a `signal` is delivered (fresh, or kept for a resume) |
//! | `Errors` | `FunctionName`; `FunctionName`, `Code` | an `error {code}` goes out, or `$connect` refuses (`unauthorized`, `rate-limited`) or fails (`store-unavailable`) |
//! | `GonePeers` | `FunctionName` | a push finds the connection gone (410) |
//!
//! All in `Count`. `FunctionName` is the deployed function's name, as in
//! `AWS/Lambda`'s own metrics, so one stack's metrics never mix with
//! another's.
//!
//! A record is typed ([`Record`]: the `_aws` envelope with its one
//! `CloudWatchMetrics` directive, then the dimension and metric values), so
//! a record whose directive names a value it does not carry cannot be built.
//! The server messages are counted from the typed messages the handlers
//! push: [`PushCounter`] is the handlers' [`PushObserver`], told each push's
//! [`Outbound`] message and [`Pushed`] outcome, so nothing reads the JSON
//! text back. The handlers live as long as the container, so it counts into
//! the metrics of the invocation it runs in ([`Metrics::scoped`], a
//! task-local), not into one fixed set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tincan_signaling::{ErrorCode, ServerMessage};
use tincan_ws_api::{Outbound, PushObserver, Pushed};

/// The CloudWatch namespace of the signaling metrics.
pub const NAMESPACE: &str = "Tincan/Signaling";

/// One signaling metric (the module table). Serialized as its name; in
/// alphabetical order, the order of a record's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum Metric {
    /// `$connect` accepted a socket.
    Connections,
    /// `$disconnect` ran.
    Disconnections,
    /// An `error` went out, or `$connect` refused or failed.
    Errors,
    /// A push found its connection gone (410).
    GonePeers,
    /// A `joined` or `resumed` went out.
    Joins,
    /// A `signal` was delivered.
    Signals,
}

/// The `Code` of an `Errors` count: the protocol's stable error code, or
/// `unauthorized` for a refused `$connect` (an HTTP 401, not a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// An `error {code}` sent to a client, or a `$connect` answered with
    /// the same code (`rate-limited`, `store-unavailable`).
    Protocol(ErrorCode),
    /// `$connect` without a valid token.
    Unauthorized,
}

impl Code {
    /// The `Code` dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Protocol(code) => code.as_str(),
            Code::Unauthorized => "unauthorized",
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Code::Protocol(code)
    }
}

/// One EMF record: the metadata CloudWatch reads (`_aws`), the dimension
/// values, and the metric values, all members of one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    #[serde(rename = "_aws")]
    aws: Envelope,
    #[serde(rename = "FunctionName")]
    function_name: String,
    #[serde(rename = "Code", skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(flatten)]
    values: BTreeMap<Metric, u64>,
}

/// The `_aws` member: when, and which members are metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    /// Milliseconds since the epoch.
    timestamp: u64,
    cloud_watch_metrics: [Directive; 1],
}

/// A metric directive: the namespace, one dimension set, the metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: &'static str,
    dimensions: [Vec<Dimension>; 1],
    metrics: Vec<MetricDefinition>,
}

/// A dimension a record carries a value for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Dimension {
    FunctionName,
    Code,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDefinition {
    name: Metric,
    unit: Unit,
}

/// A CloudWatch unit; every signaling metric is a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Unit {
    Count,
}

impl Record {
    /// `values` under `FunctionName` = `function`, and `Code` = `code` if
    /// given: the directive names exactly the dimensions and metrics the
    /// record carries.
    fn new(
        function: &str,
        timestamp_ms: u64,
        code: Option<&'static str>,
        values: BTreeMap<Metric, u64>,
    ) -> Self {
        let mut dimensions = vec![Dimension::FunctionName];
        dimensions.extend(code.map(|_| Dimension::Code));
        let metrics = values
            .keys()
            .map(|&name| MetricDefinition {
                name,
                unit: Unit::Count,
            })
            .collect();
        Self {
            aws: Envelope {
                timestamp: timestamp_ms,
                cloud_watch_metrics: [Directive {
                    namespace: NAMESPACE,
                    dimensions: [dimensions],
                    metrics,
                }],
            },
            function_name: function.to_owned(),
            code,
            values,
        }
    }

    /// The record as one JSON line.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What one invocation did; cheap to clone (shared counts).
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    timestamp_ms: u64,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    totals: BTreeMap<Metric, u64>,
    errors: BTreeMap<&'static str, u64>,
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

    /// Adds one to `metric`.
    pub fn count(&self, metric: Metric) {
        *self.lock().totals.entry(metric).or_default() += 1;
    }

    /// Adds one error with `code`.
    pub fn error(&self, code: impl Into<Code>) {
        let mut counts = self.lock();
        *counts.totals.entry(Metric::Errors).or_default() += 1;
        *counts.errors.entry(code.into().as_str()).or_default() += 1;
    }

    /// Counts one push of the handlers: a delivered `joined`, `resumed`,
    /// `signal` or `error`, or any message whose connection was gone.
    pub fn pushed(&self, message: Outbound<'_>, outcome: Pushed) {
        match (outcome, message) {
            (Pushed::Gone, _) => self.count(Metric::GonePeers),
            (Pushed::Delivered, Outbound::KeptSignal) => self.count(Metric::Signals),
            (Pushed::Delivered, Outbound::Message(message)) => match message {
                ServerMessage::Joined { .. } | ServerMessage::Resumed { .. } => {
                    self.count(Metric::Joins)
                }
                ServerMessage::Signal { .. } => self.count(Metric::Signals),
                ServerMessage::Error { code, .. } => self.error(*code),
                _ => {}
            },
            _ => {}
        }
    }

    /// The EMF records of this invocation: one with every total under
    /// `FunctionName`, one per error code under `FunctionName` and `Code`.
    /// None when nothing was counted.
    pub fn documents(&self) -> Vec<Record> {
        let counts = self.lock();
        if counts.totals.is_empty() {
            return Vec::new();
        }
        let mut records = Vec::with_capacity(1 + counts.errors.len());
        records.push(Record::new(
            &self.function,
            self.timestamp_ms,
            None,
            counts.totals.clone(),
        ));
        for (&code, &n) in &counts.errors {
            records.push(Record::new(
                &self.function,
                self.timestamp_ms,
                Some(code),
                BTreeMap::from([(Metric::Errors, n)]),
            ));
        }
        records
    }

    /// Prints [`Metrics::documents`] on stdout, one JSON line each.
    pub fn emit(&self) {
        for record in self.documents() {
            println!("{}", record.to_json());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counting cannot panic while holding the lock; a poisoned one still
        // holds usable counts.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

tokio::task_local! {
    /// The metrics of the invocation being served.
    static CURRENT: Metrics;
}

impl Metrics {
    /// Runs `work` (one invocation's handling) with these metrics as the
    /// ones the [`PushCounter`] counts into.
    pub async fn scoped<F: std::future::Future>(&self, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }
}

/// The handlers' [`PushObserver`]: counts each push into the current
/// invocation's [`Metrics`] (see [`Metrics::scoped`]); outside one, nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushCounter;

impl PushObserver for PushCounter {
    fn pushed(&self, message: Outbound<'_>, outcome: Pushed) {
        // Outside an invocation's scope there is nothing to count into.
        let _ = CURRENT.try_with(|metrics| metrics.pushed(message, outcome));
    }
}

#[cfg(test)]
mod tests;
