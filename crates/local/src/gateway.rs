//! The WebSocket side of the emulated API Gateway: upgrade, `$connect`,
//! frames routed to the backend, limits, `$disconnect`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::backend::{select_route, Backend, ConnectOutcome, WsEvent};
use crate::config::GatewayLimits;
use crate::connections_api;
use crate::sockets::{Outbound, SocketEntry, SocketTable};

/// WebSocket close codes the gateway uses.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// Routes this API defines (all messages go to `$default`).
const ROUTES: [&str; 3] = ["$connect", "$disconnect", "$default"];

/// Frames queued per socket before a slow reader is cut off.
const OUTBOUND_QUEUE: usize = 256;

/// Shared by every request the gateway serves.
#[derive(Clone)]
pub struct GatewayState {
    /// Where events go.
    pub backend: Arc<dyn Backend>,
    /// Open sockets.
    pub sockets: SocketTable,
    /// API Gateway's limits.
    pub limits: GatewayLimits,
    /// Stage name, as in `/{stage}/@connections/{id}`.
    pub stage: String,
}

/// The gateway's routes: `/ws`, `/healthz` and the Management API. Serve it
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(connections_api::router())
        .with_state(state)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`), from the URL-safe
/// alphabet so it can stand in a path.
fn new_connection_id() -> String {
    base64::engine::general_purpose::URL_SAFE.encode(rand::random::<[u8; 10]>())
}

async fn upgrade(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let now = now_ms();
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let event = WsEvent {
        connection_id: new_connection_id(),
        connected_at_ms: now,
        now_ms: now,
        source_ip: peer.ip().to_string(),
        user_agent: header_str(header::USER_AGENT),
        query,
        stage: state.stage.clone(),
        domain_name: header_str(header::HOST),
    };
    match state.backend.connect(&event).await {
        ConnectOutcome::Accept => {}
        ConnectOutcome::Refuse(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            debug!(%status, "connect refused");
            // API Gateway answers a refused $connect with the status alone.
            return (status, Json(json!({"message": status.canonical_reason()}))).into_response();
        }
    }
    let limits = state.limits;
    ws.max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .on_upgrade(move |socket| run_socket(state, socket, event))
}

async fn run_socket(state: GatewayState, socket: WebSocket, mut event: WsEvent) {
    let id = event.connection_id.clone();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    let last_active = Arc::new(AtomicU64::new(event.connected_at_ms));
    state.sockets.insert(
        id.clone(),
        SocketEntry {
            tx: tx.clone(),
            connected_at_ms: event.connected_at_ms,
            last_active_ms: last_active.clone(),
            source_ip: event.source_ip.clone(),
            user_agent: event.user_agent.clone(),
        },
    );
    info!(connection_id = %id, "socket open");

    let mut writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Text(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
    });

    let limits = state.limits;
    let max_connection = tokio::time::sleep(limits.max_connection);
    tokio::pin!(max_connection);
    let mut writer_done = false;
    let (status, reason) = loop {
        tokio::select! {
            next = tokio::time::timeout(limits.idle_timeout, stream.next()) => match next {
                Err(_) => {
                    let _ = tx.try_send(Outbound::Close(CLOSE_GOING_AWAY, "Going away (idle)"));
                    break (CLOSE_GOING_AWAY, "idle timeout");
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break (CLOSE_NORMAL, "client closed"),
                Ok(Some(Err(err))) => {
                    // Over the frame or message limit, as API Gateway does.
                    debug!(connection_id = %id, error = %err, "socket error");
                    let _ = tx.try_send(Outbound::Close(CLOSE_TOO_BIG, "Message too big"));
                    break (CLOSE_TOO_BIG, "message too big");
                }
                Ok(Some(Ok(frame))) => {
                    let body = match frame {
                        Message::Text(text) => text.to_string(),
                        Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        _ => continue,
                    };
                    let now = now_ms();
                    last_active.store(now, Ordering::Relaxed);
                    event.now_ms = now;
                    let route = select_route(&body, &ROUTES);
                    state.backend.message(&event, route, &body).await;
                }
            },
            _ = &mut max_connection => {
                let _ = tx.try_send(Outbound::Close(CLOSE_GOING_AWAY, "Going away (connection duration)"));
                break (CLOSE_GOING_AWAY, "connection duration limit");
            }
            _ = &mut writer => {
                writer_done = true;
                break (CLOSE_NORMAL, "closed by server");
            }
        }
    };
    state.sockets.remove(&id);
    drop(tx);
    if !writer_done {
        // Let a queued close frame go out, briefly.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
    }
    event.now_ms = now_ms();
    state.backend.disconnect(&event, status, reason).await;
    info!(connection_id = %id, status, reason, "socket closed");
}
