//! The three WebSocket handlers, from API Gateway event to proxy response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use lambda_runtime::LambdaEvent;
use tincan_accounts::config::MongoSettings;
use tincan_fleet::{DynamoMediaNodeStore, FleetIceServers};
use tincan_signaling::ErrorCode;
use tincan_store::{
    dynamo_client, sdk_config_in_lambda, ApiGatewayPush, ConnectionStore, DynamoConnectionStore,
    Push,
};
use tincan_ws_api::{
    CallLog, ConnectError, IceServerSource, NoIceServers, SocketEnd, TurnRestIceServers, WsApi,
    WsApiConfig,
};
use tracing::warn;

use crate::config::{ConfigError, ConnectSettings, FunctionConfig, HistorySettings, WsSettings};
use crate::metrics::{Code, Metric, Metrics, PushCounter};

/// Most Management API endpoints (one per WebSocket API and stage) whose
/// handlers a container keeps; past it, the cache starts over.
const MAX_ENDPOINTS: usize = 8;

/// What every handler needs, built once per container (cold start): the
/// DynamoDB client, the call-history client, and, per Management API
/// endpoint, the push client and the handlers over it.
#[derive(Clone)]
pub struct Deps {
    config: FunctionConfig,
    sdk: aws_config::SdkConfig,
    store: Arc<dyn ConnectionStore>,
    ice: Arc<dyn IceServerSource>,
    sfu: Arc<dyn tincan_ws_api::SfuGateway>,
    calls: Option<Arc<dyn CallLog>>,
    apis: Arc<Mutex<HashMap<String, Arc<WsApi>>>>,
}

impl Deps {
    /// For `$connect`: the API keys of join tokens (`TINCAN_API_KEYS`, read
    /// by this function alone) and DynamoDB (with [`sdk_config_in_lambda`]:
    /// Lambda's region and role credentials). A deleted account is refused
    /// by its deleted-user marker, checked in the connection's write, so
    /// this function opens no MongoDB client and links no MongoDB driver:
    /// each binary calls only its own constructor, and what it does not
    /// call stays out of it.
    pub async fn for_connect(settings: ConnectSettings) -> Result<Self, ConfigError> {
        let api_keys = crate::config::api_keys(settings.api_keys.as_ref())?;
        let mut deps = Self::on_dynamodb(settings.ws)?.0;
        deps.config.api_keys = api_keys;
        Ok(deps)
    }

    /// The configuration, the connections table, and the DynamoDB client
    /// it is on (for the fleet registry too).
    fn on_dynamodb(settings: WsSettings) -> Result<(Self, aws_sdk_dynamodb::Client), ConfigError> {
        let config = FunctionConfig::from_settings(settings)?;
        let sdk = sdk_config_in_lambda(config.dynamodb_endpoint.as_deref());
        let client = dynamo_client(&sdk, config.dynamodb_endpoint.as_deref());
        let store = Arc::new(DynamoConnectionStore::new(
            client.clone(),
            config.connections_table.clone(),
        ));
        Ok((Self::new(config, sdk, store), client))
    }

    /// For `$disconnect`: DynamoDB, and MongoDB for call history.
    pub async fn for_disconnect(settings: HistorySettings) -> Result<Self, ConfigError> {
        let deps = Self::on_dynamodb(settings.ws)?.0;
        Ok(deps.with_call_history(&settings.mongo).await)
    }

    /// For `$default`: DynamoDB, the media-node fleet (room placement, TURN
    /// credentials, the SFU), and MongoDB for call history.
    pub async fn for_default(settings: HistorySettings) -> Result<Self, ConfigError> {
        let (deps, client) = Self::on_dynamodb(settings.ws)?;
        Ok(deps
            .on_the_fleet(client)?
            .with_call_history(&settings.mongo)
            .await)
    }

    /// For the scheduled sweep: what `$default` has (the fleet, for the SFU
    /// leave of a participant that ends; call history, to close its visit),
    /// and `TINCAN_WS_ENDPOINT`, required: a scheduled event names no API
    /// to push its `peer-left`s through.
    pub async fn for_sweep(settings: HistorySettings) -> Result<Self, ConfigError> {
        let deps = Self::for_default(settings).await?;
        if deps.config.ws_endpoint.is_none() {
            return Err(ConfigError::Missing("TINCAN_WS_ENDPOINT"));
        }
        Ok(deps)
    }

    /// With `TINCAN_MEDIA_NODES_TABLE` and `TINCAN_TURN_SECRET`: rooms are
    /// placed on media nodes, `joined` carries the node's TURN URLs, and
    /// rooms past the mesh size go to that node's SFU, whose control API
    /// takes tokens signed with `TINCAN_SFU_CONTROL_SECRET` (required then).
    fn on_the_fleet(mut self, client: aws_sdk_dynamodb::Client) -> Result<Self, ConfigError> {
        let (Some(table), Some(secret)) =
            (&self.config.media_nodes_table, &self.config.turn_secret)
        else {
            return Ok(self);
        };
        let fleet = FleetIceServers::new(
            Arc::new(DynamoMediaNodeStore::new(client, table.clone())),
            secret.clone(),
            self.config.turn_ttl_secs,
        );
        // With no live node, the configured TURN URL, never no relay.
        let fleet = Arc::new(match &self.config.turn {
            Some((_, url)) => fleet.with_fallback(url.clone()),
            None => fleet,
        });
        let control_secret = self
            .config
            .sfu_control_secret
            .clone()
            .ok_or(ConfigError::Missing("TINCAN_SFU_CONTROL_SECRET"))?;
        let sfu_client = tincan_ws_api::SfuControlClient::new(control_secret)
            .map_err(|_| ConfigError::Invalid("TINCAN_SFU_CONTROL_SECRET"))?;
        self.sfu = Arc::new(tincan_ws_api::NodeSfu::new(sfu_client, fleet.clone()));
        self.ice = fleet;
        Ok(self)
    }

    /// Call history in MongoDB, when it is configured
    /// ([`call_log`](crate::history::call_log)).
    async fn with_call_history(mut self, mongo: &MongoSettings) -> Self {
        self.calls = crate::history::call_log(mongo).await;
        self
    }

    /// From parts (tests pass their own store).
    pub fn new(
        config: FunctionConfig,
        sdk: aws_config::SdkConfig,
        store: Arc<dyn ConnectionStore>,
    ) -> Self {
        let ice: Arc<dyn IceServerSource> = match &config.turn {
            Some((secret, url)) => Arc::new(TurnRestIceServers::new(
                secret.clone(),
                url.clone(),
                config.turn_ttl_secs,
            )),
            None => Arc::new(NoIceServers),
        };
        Self {
            config,
            sdk,
            store,
            ice,
            sfu: Arc::new(tincan_ws_api::NoSfu),
            calls: None,
            apis: Arc::default(),
        }
    }

    /// The handlers, pushing through the Management API of the API that sent
    /// `request`: built on the first event from that endpoint, then reused,
    /// so the push client (and its connection pool) lives as long as the
    /// container.
    fn api(&self, request: &ApiGatewayWebsocketProxyRequest) -> Arc<WsApi> {
        let context = &request.request_context;
        let endpoint = self.config.ws_endpoint.clone().unwrap_or_else(|| {
            format!(
                "https://{}/{}",
                context.domain_name.as_deref().unwrap_or_default(),
                context.stage.as_deref().unwrap_or_default()
            )
        });
        self.api_at(endpoint)
    }

    /// The handlers pushing through the Management API at `endpoint`.
    fn api_at(&self, endpoint: String) -> Arc<WsApi> {
        let mut apis = self.apis.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(api) = apis.get(&endpoint) {
            return api.clone();
        }
        if apis.len() >= MAX_ENDPOINTS {
            apis.clear();
        }
        let push: Arc<dyn Push> = Arc::new(ApiGatewayPush::new(&endpoint, &self.sdk));
        let api = Arc::new(
            WsApi::new(WsApiConfig {
                limits: self.config.limits,
                tokens: self.config.tokens.clone(),
                api_keys: self.config.api_keys.clone(),
                store: self.store.clone(),
                push,
                ice: self.ice.clone(),
                sfu: self.sfu.clone(),
                calls: self.calls.clone(),
                // Deleted accounts are refused by the store (deleted-user
                // markers), not by asking MongoDB at every connect.
                users: None,
            })
            .with_push_observer(Arc::new(PushCounter)),
        );
        apis.insert(endpoint, api.clone());
        api
    }

    /// How many Management API endpoints have handlers built (tests).
    pub fn endpoints_built(&self) -> usize {
        self.apis
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn response(status: i64, body: &str) -> ApiGatewayProxyResponse {
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = status;
    resp.body = Some(Body::Text(body.to_owned()));
    resp
}

/// How long a user over its socket cap is told to wait.
const SOCKETS_RETRY_AFTER_SECS: u64 = 5;

/// 429 `rate-limited` for a user with as many sockets open as allowed.
fn too_many_sockets(max: usize) -> ApiGatewayProxyResponse {
    let body = serde_json::json!({"error": {
        "code": "rate-limited",
        "message": format!("at most {max} sockets per user"),
        "retryAfterMs": SOCKETS_RETRY_AFTER_SECS * 1000,
    }});
    let mut resp = response(429, &body.to_string());
    if let Ok(value) = SOCKETS_RETRY_AFTER_SECS.to_string().parse() {
        resp.headers
            .insert(aws_lambda_events::http::header::RETRY_AFTER, value);
    }
    resp
}

fn now_ms(request: &ApiGatewayWebsocketProxyRequest) -> u64 {
    match u64::try_from(request.request_context.request_time_epoch) {
        Ok(ms) if ms > 0 => ms,
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }
}

/// The deployed function's name (the metrics' `FunctionName`), or `binary`
/// where the runtime gives none (tests).
fn function_name<'a>(context: &'a lambda_runtime::Context, binary: &'a str) -> &'a str {
    match context.env_config.function_name.as_str() {
        "" => binary,
        name => name,
    }
}

fn connection_id(request: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    request.request_context.connection_id.as_deref()
}

/// `$connect`: 200 with a valid access token in `?token=`, else 401 (API
/// Gateway then refuses the upgrade); 503 if the store is down.
pub async fn handle_connect(
    deps: &Deps,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let request = &event.payload;
    let Some(id) = connection_id(request) else {
        return Ok(response(400, "no connection id"));
    };
    let token = request.query_string_parameters.first("token");
    let metrics = Metrics::new(function_name(&event.context, "ws-connect"), now_ms(request));
    let reply = match metrics
        .scoped(deps.api(request).connect(id, token, now_ms(request)))
        .await
    {
        Ok(()) => {
            metrics.count(Metric::Connections);
            response(200, "connected")
        }
        Err(ConnectError::Unauthorized(_)) => {
            metrics.error(Code::Unauthorized);
            response(401, "unauthorized")
        }
        Err(ConnectError::TooManySockets(max)) => {
            metrics.error(ErrorCode::RateLimited);
            too_many_sockets(max)
        }
        Err(err) => {
            warn!(error = %err, "connect failed");
            metrics.error(ErrorCode::StoreUnavailable);
            response(503, "store unavailable")
        }
    };
    metrics.emit();
    Ok(reply)
}

/// `$disconnect`: the connection leaves its room.
pub async fn handle_disconnect(
    deps: &Deps,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let request = &event.payload;
    let metrics = Metrics::new(
        function_name(&event.context, "ws-disconnect"),
        now_ms(request),
    );
    if let Some(id) = connection_id(request) {
        metrics
            .scoped(
                deps.api(request).disconnect(
                    id,
                    SocketEnd::from_close_code(
                        request
                            .request_context
                            .disconnect_status_code
                            .and_then(|code| u16::try_from(code).ok()),
                    ),
                    now_ms(request),
                ),
            )
            .await;
        metrics.count(Metric::Disconnections);
    }
    metrics.emit();
    Ok(response(200, "disconnected"))
}

/// `$default`: one client message, routed by its `action`. Replies go out by
/// PostToConnection, so the response body is empty.
pub async fn handle_default(
    deps: &Deps,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let request = &event.payload;
    let Some(id) = connection_id(request) else {
        return Ok(response(400, "no connection id"));
    };
    let body = request.body.as_deref().unwrap_or_default();
    let metrics = Metrics::new(function_name(&event.context, "ws-default"), now_ms(request));
    metrics
        .scoped(deps.api(request).message(id, body, now_ms(request)))
        .await;
    metrics.emit();
    Ok(response(200, ""))
}

/// The scheduled sweep (an EventBridge rule, every `SweepSchedule`): ends
/// the participants that are gone for good in rooms nobody reads again,
/// tells their rooms, and closes their visits in call history at the time
/// each was last seen ([`WsApi::sweep`]). The event's content is not used;
/// its `time` (ms precision lost) is not either: the clock is read here.
pub async fn handle_sweep(
    deps: &Deps,
    event: LambdaEvent<serde_json::Value>,
) -> Result<tincan_ws_api::Swept, lambda_runtime::Error> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let Some(endpoint) = deps.config.ws_endpoint.clone() else {
        return Err("TINCAN_WS_ENDPOINT must be set".into());
    };
    let metrics = Metrics::new(function_name(&event.context, "ws-sweep"), now_ms);
    let swept = metrics.scoped(deps.api_at(endpoint).sweep(now_ms)).await;
    metrics.emit();
    Ok(swept)
}
