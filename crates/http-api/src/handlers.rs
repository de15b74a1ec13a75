//! The route handlers: parse, call the account service, shape the reply.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tincan_accounts::PreferencesPatch;
use tincan_signaling::RoomId;

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, ClientIp, RelayCaller};
use crate::{now_ms, ApiState, TurnFleet};

/// Default and largest page of `GET /me/calls`.
const CALLS_DEFAULT: usize = 50;
const CALLS_MAX: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegisterBody {
    username: String,
    password: String,
    display_name: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
pub(crate) struct DeleteBody {
    password: String,
}

#[derive(Deserialize)]
pub(crate) struct CallsQuery {
    limit: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct TurnQuery {
    room: Option<String>,
}

pub(crate) async fn register(
    State(state): State<ApiState>,
    ClientIp(from): ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state
        .accounts
        .register(
            &body.username,
            &body.password,
            &body.display_name,
            from,
            now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

pub(crate) async fn login(
    State(state): State<ApiState>,
    ClientIp(from): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let pair = state
        .accounts
        .login(&body.username, &body.password, from, now_ms())
        .await?;
    Ok(Json(pair))
}

pub(crate) async fn change_password(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .change_password(
            &caller.user_id,
            caller.session_id.as_deref(),
            &body.current_password,
            &body.new_password,
            now_ms(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete_me(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .delete_account(&caller.user_id, &body.password, now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn refresh(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    let pair = state
        .accounts
        .refresh(&body.refresh_token, now_ms())
        .await?;
    Ok(Json(pair))
}

pub(crate) async fn logout(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<StatusCode, ApiError> {
    state.accounts.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn me(caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "user": caller.user })))
}

pub(crate) async fn get_preferences(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.accounts.preferences(&caller.user_id).await?))
}

pub(crate) async fn put_preferences(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(patch): ApiJson<PreferencesPatch>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .accounts
            .update_preferences(&caller.user_id, &patch)
            .await?,
    ))
}

pub(crate) async fn calls(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<CallsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bad = || ApiError::InvalidRequest(format!("limit must be 1 to {CALLS_MAX}"));
    let limit = match query.map_err(|_| bad())?.0.limit {
        None => CALLS_DEFAULT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=CALLS_MAX).contains(n))
            .ok_or_else(bad)?,
    };
    let calls = state.accounts.calls(&caller.user_id, limit).await?;
    Ok(Json(json!({ "calls": calls })))
}

pub(crate) async fn turn_credentials(
    State(state): State<ApiState>,
    Extension(TurnFleet(fleet)): Extension<TurnFleet>,
    caller: RelayCaller,
    query: Result<Query<TurnQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bad = || ApiError::InvalidRequest("room must be 1-64 of A-Z a-z 0-9 _ -".to_owned());
    let room = query.map_err(|_| bad())?.0.room;
    if room.as_deref().is_some_and(|r| !RoomId::is_valid(r)) {
        return Err(bad());
    }
    let turn = &state.turn;
    let now = now_ms() / 1000;
    let ice_servers = match fleet {
        Some(fleet) => {
            fleet
                .ice_servers_for(&caller.user_id, room.as_deref(), now)
                .await
        }
        None => {
            let credential = turn.secret.mint(&caller.user_id, now, turn.ttl_secs);
            tincan_turn_credentials::ice_servers(&turn.url, &credential)
        }
    };
    Ok(Json(
        json!({ "iceServers": ice_servers, "ttl": turn.ttl_secs }),
    ))
}
