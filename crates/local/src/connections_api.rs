//! API Gateway's Management API, at `/@connections/{id}` and
//! `/{stage}/@connections/{id}`: POST pushes a message, GET describes the
//! connection, DELETE closes it; an unknown id answers 410 `GoneException`,
//! as the AWS SDK expects.

use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::gateway_state::GatewayState;
use crate::sockets::CLOSED_BY_SERVER;

pub(crate) fn router() -> Router<GatewayState> {
    Router::new()
        .route(
            "/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .route(
            "/{stage}/@connections/{id}",
            post(staged_post).get(staged_get).delete(staged_delete),
        )
}

fn gone() -> Response {
    // The shape API Gateway sends, with the error type header the SDK reads.
    (
        StatusCode::GONE,
        [("x-amzn-errortype", "GoneException")],
        Json(json!({"message": null, "__type": "GoneException"})),
    )
        .into_response()
}

fn wrong_stage() -> Response {
    (
        StatusCode::FORBIDDEN,
        [("x-amzn-errortype", "ForbiddenException")],
        Json(json!({"message": "Forbidden"})),
    )
        .into_response()
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

async fn post_to_connection(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > state.limits.max_message_bytes {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [("x-amzn-errortype", "PayloadTooLargeException")],
            Json(json!({"message": "Message too long"})),
        )
            .into_response();
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    // Never waits for the socket: a socket that does not read is closed,
    // and this answers 410 at once.
    match state.sockets.send(&id, text) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => gone(),
    }
}

async fn get_connection(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    match state.sockets.get(&id) {
        Some(entry) => Json(json!({
            "connectedAt": rfc3339(entry.connected_at_ms),
            "lastActiveAt": rfc3339(entry.last_active_ms.load(Ordering::Relaxed)),
            "identity": {"sourceIp": entry.source_ip, "userAgent": entry.user_agent},
        }))
        .into_response(),
        None => gone(),
    }
}

async fn delete_connection(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    match state.sockets.close(&id, CLOSED_BY_SERVER) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => gone(),
    }
}

async fn staged_post(
    state: State<GatewayState>,
    Path((stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if stage != state.stage {
        return wrong_stage();
    }
    post_to_connection(state, Path(id), body).await
}

async fn staged_get(
    state: State<GatewayState>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    if stage != state.stage {
        return wrong_stage();
    }
    get_connection(state, Path(id)).await
}

async fn staged_delete(
    state: State<GatewayState>,
    Path((stage, id)): Path<(String, String)>,
) -> Response {
    if stage != state.stage {
        return wrong_stage();
    }
    delete_connection(state, Path(id)).await
}
