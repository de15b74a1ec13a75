//! Where the gateway sends WebSocket events: the handler library in-process,
//! or real Lambdas under `cargo lambda watch`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tincan_ws_api::{ConnectError, SocketEnd, WsApi};
use tracing::warn;

/// One WebSocket event, with what API Gateway puts in the request context.
#[derive(Debug, Clone)]
pub struct WsEvent {
    /// The connection id.
    pub connection_id: String,
    /// When the socket opened, ms since the epoch.
    pub connected_at_ms: u64,
    /// When this event happened, ms since the epoch.
    pub now_ms: u64,
    /// The client's address.
    pub source_ip: String,
    /// The client's `User-Agent`.
    pub user_agent: String,
    /// Query string of the upgrade request.
    pub query: Vec<(String, String)>,
    /// The API stage.
    pub stage: String,
    /// The host the client connected to.
    pub domain_name: String,
}

impl WsEvent {
    /// The last value of query parameter `name`: API Gateway's
    /// `queryStringParameters` keeps the last of repeated names, so the
    /// in-process path and the forwarded event read the same one.
    fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The event as API Gateway hands it to a Lambda.
    pub fn to_apigw_json(&self, route_key: &str, extra: &[(&str, Value)]) -> Value {
        let event_type = match route_key {
            "$connect" => "CONNECT",
            "$disconnect" => "DISCONNECT",
            _ => "MESSAGE",
        };
        let mut context = json!({
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": self.connected_at_ms,
            "requestTimeEpoch": self.now_ms,
            "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
            "requestId": format!("{:016x}", rand::random::<u64>()),
            "extendedRequestId": format!("{:016x}", rand::random::<u64>()),
            "domainName": self.domain_name,
            "connectionId": self.connection_id,
            "apiId": "local",
        });
        let mut event = Map::new();
        if route_key == "$connect" {
            let single: Map<String, Value> = self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let multi: Map<String, Value> = self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), json!([v])))
                .collect();
            event.insert("queryStringParameters".into(), Value::Object(single));
            event.insert(
                "multiValueQueryStringParameters".into(),
                Value::Object(multi),
            );
            event.insert(
                "headers".into(),
                json!({"Host": self.domain_name, "User-Agent": self.user_agent}),
            );
        }
        for (key, value) in extra {
            if let Some(field) = key.strip_prefix("context.") {
                context[field] = value.clone();
            } else {
                event.insert((*key).to_owned(), value.clone());
            }
        }
        event.insert("requestContext".into(), context);
        event.insert("isBase64Encoded".into(), Value::Bool(false));
        Value::Object(event)
    }
}

/// What `$connect` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Accept the upgrade.
    Accept,
    /// Refuse the upgrade with this HTTP status.
    Refuse(u16),
}

/// Receives the gateway's events.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `$connect`.
    async fn connect(&self, event: &WsEvent) -> ConnectOutcome;
    /// A message; `route_key` as selected by `$request.body.action`.
    async fn message(&self, event: &WsEvent, route_key: &str, body: &str);
    /// `$disconnect`.
    async fn disconnect(&self, event: &WsEvent, status_code: u16, reason: &str);
}

/// Calls the handler library in this process.
#[derive(Debug, Clone)]
pub struct InProcess {
    api: WsApi,
}

impl InProcess {
    /// A backend over `api`.
    pub fn new(api: WsApi) -> Self {
        Self { api }
    }
}

#[async_trait]
impl Backend for InProcess {
    async fn connect(&self, event: &WsEvent) -> ConnectOutcome {
        match self
            .api
            .connect(
                &event.connection_id,
                event.query_value("token"),
                event.now_ms,
            )
            .await
        {
            Ok(()) => ConnectOutcome::Accept,
            Err(ConnectError::Unauthorized(_)) => ConnectOutcome::Refuse(401),
            Err(ConnectError::TooManySockets(_)) => ConnectOutcome::Refuse(429),
            Err(err) => {
                warn!(error = %err, "connect failed");
                ConnectOutcome::Refuse(503)
            }
        }
    }

    async fn message(&self, event: &WsEvent, _route_key: &str, body: &str) {
        self.api
            .message(&event.connection_id, body, event.now_ms)
            .await;
    }

    async fn disconnect(&self, event: &WsEvent, status_code: u16, _reason: &str) {
        let end = SocketEnd::from_close_code(Some(status_code));
        self.api
            .disconnect(&event.connection_id, end, event.now_ms)
            .await;
    }
}

/// Forwards each event to a Lambda served by `cargo lambda watch`, through
/// its Invoke API (`POST {url}/2015-03-31/functions/{name}/invocations`).
#[derive(Debug, Clone)]
pub struct LambdaForward {
    base_url: String,
    client: reqwest::Client,
}

impl LambdaForward {
    /// Forwards to the invoke endpoint at `base_url` (e.g.
    /// `http://127.0.0.1:9000`).
    pub fn new(base_url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            // cargo lambda watch compiles a function on its first call.
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client,
        }
    }

    async fn invoke(&self, function: &str, event: &Value) -> Option<Value> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.base_url
        );
        match self.client.post(&url).json(event).send().await {
            Ok(resp) if resp.status().is_success() => resp.json().await.ok(),
            Ok(resp) => {
                warn!(function, status = %resp.status(), "lambda invoke failed");
                None
            }
            Err(err) => {
                warn!(function, error = %err, "lambda invoke failed");
                None
            }
        }
    }
}

/// The Lambda that serves a route.
fn function_for(route_key: &str) -> &'static str {
    match route_key {
        "$connect" => "ws-connect",
        "$disconnect" => "ws-disconnect",
        _ => "ws-default",
    }
}

#[async_trait]
impl Backend for LambdaForward {
    async fn connect(&self, event: &WsEvent) -> ConnectOutcome {
        let json = event.to_apigw_json("$connect", &[]);
        let reply = self.invoke(function_for("$connect"), &json).await;
        let status = reply
            .as_ref()
            .and_then(|r| r.get("statusCode"))
            .and_then(Value::as_u64)
            .unwrap_or(502);
        if (200..300).contains(&status) {
            ConnectOutcome::Accept
        } else {
            ConnectOutcome::Refuse(u16::try_from(status).unwrap_or(502))
        }
    }

    async fn message(&self, event: &WsEvent, route_key: &str, body: &str) {
        let json = event.to_apigw_json(
            route_key,
            &[
                ("body", Value::String(body.to_owned())),
                (
                    "context.messageId",
                    Value::String(format!("{:016x}", rand::random::<u64>())),
                ),
            ],
        );
        self.invoke(function_for(route_key), &json).await;
    }

    async fn disconnect(&self, event: &WsEvent, status_code: u16, reason: &str) {
        let json = event.to_apigw_json(
            "$disconnect",
            &[
                ("context.disconnectStatusCode", json!(status_code)),
                ("context.disconnectReason", json!(reason)),
            ],
        );
        self.invoke(function_for("$disconnect"), &json).await;
    }
}

/// API Gateway's route selection on `$request.body.action`: the action's
/// route if one is defined, else `$default`.
pub(crate) fn select_route<'a>(body: &str, routes: &'a [&'a str]) -> &'a str {
    /// Only `action` is read; every other field is skipped, not built.
    #[derive(serde::Deserialize)]
    struct Action<'b> {
        #[serde(borrow, default)]
        action: Option<std::borrow::Cow<'b, str>>,
    }
    let action = serde_json::from_str::<Action<'_>>(body)
        .ok()
        .and_then(|a| a.action);
    action
        .and_then(|a| routes.iter().find(|r| **r == a).copied())
        .unwrap_or("$default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    fn event() -> WsEvent {
        WsEvent {
            connection_id: "abc=".into(),
            connected_at_ms: 1,
            now_ms: 2,
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            query: vec![("token".into(), "t0k".into())],
            stage: "local".into(),
            domain_name: "127.0.0.1:8080".into(),
        }
    }

    #[test]
    fn events_parse_as_the_runtime_types() {
        let json = event().to_apigw_json("$connect", &[]);
        let parsed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        assert_eq!(
            parsed.request_context.route_key.as_deref(),
            Some("$connect")
        );
        assert_eq!(
            parsed.request_context.connection_id.as_deref(),
            Some("abc=")
        );
        assert_eq!(
            parsed.request_context.event_type.as_deref(),
            Some("CONNECT")
        );
        assert_eq!(parsed.query_string_parameters.first("token"), Some("t0k"));
        let json = event().to_apigw_json(
            "$disconnect",
            &[("context.disconnectStatusCode", json!(1001))],
        );
        let parsed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.request_context.disconnect_status_code, Some(1001));
    }

    #[test]
    fn a_repeated_token_reads_the_same_in_process_and_forwarded() {
        let mut twice = event();
        twice.query.push(("token".into(), "second".into()));
        let json = twice.to_apigw_json("$connect", &[]);
        let forwarded = json["queryStringParameters"]["token"].as_str();
        assert_eq!(forwarded, Some("second"));
        assert_eq!(twice.query_value("token"), forwarded);
    }

    #[test]
    fn route_selection_falls_back_to_default() {
        let routes = ["$connect", "$disconnect", "$default", "join"];
        assert_eq!(select_route(r#"{"action":"join"}"#, &routes), "join");
        assert_eq!(select_route(r#"{"action":"ping"}"#, &routes), "$default");
        assert_eq!(select_route("not json", &routes), "$default");
    }
}
