//! The route handlers: parse, call the account service, shape the reply.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tincan_accounts::PreferencesPatch;

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::{now_ms, ApiState};

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
pub(crate) struct CallsQuery {
    limit: Option<String>,
}

pub(crate) async fn register(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state
        .accounts
        .register(&body.username, &body.password, &body.display_name, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

pub(crate) async fn login(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let pair = state
        .accounts
        .login(&body.username, &body.password, now_ms())
        .await?;
    Ok(Json(pair))
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

pub(crate) async fn me(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = state.accounts.user(&caller.user_id).await?;
    Ok(Json(json!({ "user": user })))
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
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let turn = &state.turn;
    let credential = turn
        .secret
        .mint(&caller.user_id, now_ms() / 1000, turn.ttl_secs);
    let ice_servers = tincan_turn_credentials::ice_servers(&turn.url, &credential);
    Ok(Json(
        json!({ "iceServers": ice_servers, "ttl": turn.ttl_secs }),
    ))
}
