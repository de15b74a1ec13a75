//! The SFU control API (`docs/sfu.md`): join, mute and leave, each
//! authorized by a control token for the room and peer in the path
//! ([`tincan_sfu_control::verify_for`]).
//!
//! HTTP/1.1 only, one request per connection; a connection has `header_timeout` to send its request
//! head and as long again for its body, bodies are capped at
//! [`MAX_BODY_BYTES`], and at most `max_requests` connections are served
//! at once (more are closed at accept).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tincan_sfu_control::{
    codes, valid_peer_id, valid_room_id, verify_for, ControlError, ErrorBody, JoinReply,
    JoinRequest, MuteRequest, TurnSecret, MAX_BODY_BYTES,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::engine::{Command, JoinError};

/// How long a command may wait for the engine.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) struct ControlState {
    commands: mpsc::Sender<Command>,
    secret: Arc<TurnSecret>,
}

impl ControlState {
    pub(crate) fn new(commands: mpsc::Sender<Command>, secret: TurnSecret) -> Self {
        Self {
            commands,
            secret: Arc::new(secret),
        }
    }
}

/// An error reply in the API's shape.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody::new(self.1, self.2))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(err: ControlError) -> Self {
        match err {
            ControlError::WrongTarget => ApiError(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "the token is for another room or peer".to_owned(),
            ),
            other => ApiError(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                other.to_string(),
            ),
        }
    }
}

pub(crate) fn router(state: ControlState) -> Router {
    Router::new()
        .route("/sfu/v1/rooms/{room}/peers/{peer}", put(join).delete(leave))
        .route("/sfu/v1/rooms/{room}/peers/{peer}/mute", post(mute))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such route".to_owned(),
            )
        })
        .with_state(state)
}

/// Serves `listener` until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    state: ControlState,
    max_requests: usize,
    header_timeout: Duration,
) {
    let app = router(state);
    let slots = Arc::new(Semaphore::new(max_requests.max(1)));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(error = %err, "SFU control accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // At the cap: refuse rather than queue without bound.
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
            drop(permit);
        });
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn authorize(
    state: &ControlState,
    headers: &HeaderMap,
    room: &str,
    peer: &str,
) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                "a bearer control token is required".to_owned(),
            )
        })?;
    verify_for(&state.secret, token.trim(), room, peer, now_secs())?;
    if !valid_room_id(room) || !valid_peer_id(peer) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "invalid room or peer id".to_owned(),
        ));
    }
    Ok(())
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::TOO_LARGE,
                format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            format!("invalid body: {e}"),
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
            "the SFU is busy; retry".to_owned(),
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
    headers: HeaderMap,
    body: Body,
) -> Result<Json<JoinReply>, ApiError> {
    authorize(&state, &headers, &room, &peer)?;
    let request: JoinRequest = read_json(body).await?;
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
            "the room is full".to_owned(),
        )),
        Err(JoinError::BadSdp(why)) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            codes::BAD_SDP,
            format!("the offer cannot be answered: {why}"),
        )),
        Err(JoinError::Draining) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::DRAINING,
            "the node takes no new participants".to_owned(),
        )),
    }
}

async fn mute(
    State(state): State<ControlState>,
    Path((room, peer)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, &room, &peer)?;
    let request: MuteRequest = read_json(body).await?;
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
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, &room, &peer)?;
    ask(&state, |reply| Command::Leave { room, peer, reply }).await?;
    Ok(StatusCode::NO_CONTENT)
}
