//! The WebSocket side of the emulated API Gateway: the public routes (`/ws`,
//! `/healthz`), the upgrade and `$connect` (the backend decides it, the
//! per-user socket cap included, as the `ws-connect` Lambda does). The
//! life of an open socket is in [`crate::connection`]; the Management API,
//! served on its own listener, in [`crate::connections_api`].

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;
use tracing::debug;

use crate::backend::{ConnectOutcome, WsEvent};
use crate::connection::run_socket;
use crate::connections_api;
use crate::gateway_state::{now_ms, GatewayState};

/// The gateway's public routes: `/ws` and `/healthz`; the Management API's
/// paths answer 404 here, whatever the method. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: GatewayState) -> Router {
    let not_here = || async { StatusCode::NOT_FOUND };
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/@connections/{*rest}", any(not_here))
        .route("/{stage}/@connections/{*rest}", any(not_here))
        .with_state(state)
}

/// The Management API (`/@connections/{id}`, `/{stage}/@connections/{id}`),
/// for a listener of its own that only the backend can reach.
pub fn management_router(state: GatewayState) -> Router {
    connections_api::router().with_state(state)
}

/// An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`), from the URL-safe
/// alphabet so it can stand in a path.
fn new_connection_id() -> String {
    base64::engine::general_purpose::URL_SAFE.encode(rand::random::<[u8; 10]>())
}

/// 429 for a user who has as many sockets open as allowed (the backend's
/// `$connect` decides), with the retry-after the `ws-connect` Lambda sends.
fn too_many_sockets() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "5")],
        Json(json!({"error": {
            "code": "rate-limited",
            "message": "too many sockets for this user",
            "retryAfterMs": 5000,
        }})),
    )
        .into_response()
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
        ConnectOutcome::Refuse(429) => {
            debug!("connect refused: too many sockets for this user");
            return too_many_sockets();
        }
        ConnectOutcome::Refuse(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            debug!(%status, "connect refused");
            // API Gateway answers a refused $connect with the status alone.
            return (status, Json(json!({"message": status.canonical_reason()}))).into_response();
        }
    }
    let limits = state.limits;
    // $connect succeeded: whatever becomes of the upgrade, the backend hears
    // of its end.
    let backend = state.backend.clone();
    let failed = event.clone();
    ws.max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .read_buffer_size(limits.read_buffer)
        // Frames go out as they are sent; nothing is held back to batch.
        .write_buffer_size(0)
        .on_failed_upgrade(move |err| {
            debug!(connection_id = %failed.connection_id, error = %err, "upgrade failed");
            tokio::spawn(async move {
                let mut event = failed;
                event.now_ms = now_ms();
                backend.disconnect(&event, 1006, "Upgrade failed").await;
            });
        })
        .on_upgrade(move |socket| run_socket(state, socket, event))
}
