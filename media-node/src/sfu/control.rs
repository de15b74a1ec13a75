//! The SFU control API (`docs/sfu.md`): join, mute and leave, each
//! authorized by a control token for exactly that request, used once
//! ([`tincan_sfu_control::verify_request`], [`ReplayGuard`]).
//!
//! HTTP/1.1 only, one request per connection; a connection has
//! `header_timeout` to send its request head and as long again for its body,
//! bodies are capped at [`MAX_BODY_BYTES`], and connections are capped in
//! all and per client address ([`ConnCaps`]; more are closed at accept), so
//! one address cannot hold every slot.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tincan_sfu_control::{
    codes, valid_peer_id, valid_room_id, verify, Claims, ControlError, ControlSecret, ErrorBody,
    JoinReply, JoinRequest, MuteRequest, ReplayGuard, MAX_BODY_BYTES, REPLAY_GUARD_CAPACITY,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::core::JoinError;
use super::engine::Command;
use crate::conn_caps::ConnCaps;

/// How long a command may wait for the engine.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) struct ControlState {
    commands: mpsc::Sender<Command>,
    secret: ControlSecret,
    used: Arc<Mutex<ReplayGuard>>,
}

impl ControlState {
    pub(crate) fn new(commands: mpsc::Sender<Command>, secret: ControlSecret) -> Self {
        Self {
            commands,
            secret,
            used: Arc::new(Mutex::new(ReplayGuard::new(REPLAY_GUARD_CAPACITY))),
        }
    }
}

/// An error reply in the API's shape: a stable code and a fixed message,
/// never internal detail.
struct ApiError(StatusCode, &'static str, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody::new(self.1, self.2))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(err: ControlError) -> Self {
        let message = match err {
            ControlError::Replayed => "the control token was already used",
            ControlError::WrongRequest => "the control token is for another request",
            ControlError::TooManyTokens => "too many control requests in flight; retry",
            ControlError::Expired => "the control token expired",
            _ => "a valid bearer control token is required",
        };
        let status =
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, err.code(), message)
    }
}

pub(crate) fn router(state: ControlState) -> Router {
    Router::new()
        .route("/sfu/v1/rooms/{room}/peers/{peer}", put(join).delete(leave))
        .route("/sfu/v1/rooms/{room}/peers/{peer}/mute", post(mute))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such route") })
        .with_state(state)
}

/// Serves `listener` until the task is aborted: at most `max_connections`
/// at once, `max_per_ip` of them from one address (0: no such cap).
pub(crate) async fn serve(
    listener: TcpListener,
    state: ControlState,
    max_connections: usize,
    max_per_ip: usize,
    header_timeout: Duration,
) {
    let app = router(state);
    let caps = ConnCaps::new(max_connections, max_per_ip);
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(error = %err, "SFU control accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = caps.admit(peer.ip()) else {
            // At a cap: refuse rather than queue without bound.
            tracing::debug!(%peer, "SFU control connection cap reached; refusing");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                // One request per connection: the deadline below never cuts
                // a kept-alive connection a client means to reuse.
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // Head and body both within twice the head's allowance.
            let _ = tokio::time::timeout(header_timeout * 2 + ENGINE_TIMEOUT, connection).await;
            drop(slot);
        });
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks the request's token against its method and path, reads the body
/// and checks it against the token too, then spends the token (its id is
/// remembered until it expires). The body, once all of that holds.
async fn authorize(
    state: &ControlState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    (room, peer): (&str, &str),
) -> Result<Bytes, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ControlError::Invalid)?;
    let now = now_secs();
    let claims: Claims = verify(&state.secret, token.trim(), now)?;
    claims.check_target(method.as_str(), uri.path())?;
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::TOO_LARGE,
                "the body is over the size limit",
            )
        })?;
    claims.check_body(&bytes)?;
    state
        .used
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .use_once(&claims, now)?;
    if !valid_room_id(room) || !valid_peer_id(peer) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "invalid room or peer id",
        ));
    }
    Ok(bytes)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "the body is not the expected JSON",
        )
    })
}

async fn ask<T>(
    state: &ControlState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    let busy = || {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::BUSY,
            "the SFU is busy; retry",
        )
    };
    state.commands.try_send(make(reply)).map_err(|_| busy())?;
    match tokio::time::timeout(ENGINE_TIMEOUT, answer).await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(busy()),
    }
}

async fn join(
    State(state): State<ControlState>,
    Path((room, peer)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<JoinReply>, ApiError> {
    let body = authorize(&state, &method, &uri, &headers, body, (&room, &peer)).await?;
    let request: JoinRequest = parse(&body)?;
    let result = ask(&state, |reply| Command::Join {
        room,
        peer,
        muted: request.muted,
        offer: request.offer,
        reply,
    })
    .await?;
    match result {
        Ok(answer) => Ok(Json(JoinReply { answer })),
        Err(JoinError::RoomFull) => Err(ApiError(
            StatusCode::CONFLICT,
            codes::ROOM_FULL,
            "the room is full",
        )),
        Err(JoinError::BadSdp(why)) => {
            tracing::debug!(%why, "SFU offer refused");
            Err(ApiError(
                StatusCode::BAD_REQUEST,
                codes::BAD_SDP,
                "the offer cannot be answered",
            ))
        }
        Err(JoinError::Draining) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::DRAINING,
            "the node takes no new participants",
        )),
    }
}

async fn mute(
    State(state): State<ControlState>,
    Path((room, peer)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let body = authorize(&state, &method, &uri, &headers, body, (&room, &peer)).await?;
    let request: MuteRequest = parse(&body)?;
    ask(&state, |reply| Command::Mute {
        room,
        peer,
        muted: request.muted,
        reply,
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn leave(
    State(state): State<ControlState>,
    Path((room, peer)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &method, &uri, &headers, body, (&room, &peer)).await?;
    ask(&state, |reply| Command::Leave { room, peer, reply }).await?;
    Ok(StatusCode::NO_CONTENT)
}
