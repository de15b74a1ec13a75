//! Extractors: JSON bodies whose every failure is 400 `invalid-request`, the
//! bearer access token, and the client's address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tincan_accounts::{AccountError, StoreError};
use tincan_token::AccessClaims;

use crate::error::ApiError;
use crate::{now_ms, ApiState};

/// A JSON body; malformed, oversized or mistyped bodies answer 400.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let message = match &rejection {
                    JsonRejection::JsonDataError(e) => format!("bad field: {}", e.body_text()),
                    JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON".to_owned(),
                    JsonRejection::MissingJsonContentType(_) => {
                        "expected Content-Type: application/json".to_owned()
                    }
                    JsonRejection::BytesRejection(_) => "the body is too large".to_owned(),
                    _ => "unreadable body".to_owned(),
                };
                tracing::debug!(status = %rejection.status(), "rejected request body");
                Err(ApiError::InvalidRequest(message))
            }
        }
    }
}

/// The client's address as the platform in front of the API saw it, put in
/// the request's extensions by that platform's adapter (the Lambda copies
/// API Gateway's `requestContext.http.sourceIp` here). Wins over
/// `ConnectInfo`, which behind a proxy would name the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client's address for rate limits: a [`ClientAddr`] extension, else
/// the TCP peer (`ConnectInfo<SocketAddr>`), else unknown (`None`: only the
/// per-username limits apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ClientAddr(ip)) = parts.extensions.get::<ClientAddr>() {
            return Ok(ClientIp(Some(*ip)));
        }
        // Also sees axum's `MockConnectInfo` in tests.
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await;
        Ok(ClientIp(peer.ok().map(|ConnectInfo(addr)| addr.ip())))
    }
}

/// The caller for `GET /turn-credentials`: as [`Caller`], except that when
/// the account store is unavailable the token alone is trusted (logged), so
/// calls keep their relay through a database outage. A user known to be
/// deleted is still refused.
#[derive(Debug, Clone)]
pub struct RelayCaller {
    /// User id (the token's `sub`).
    pub user_id: String,
}

impl FromRequestParts<ApiState> for RelayCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let claims = bearer_claims(parts, state)?;
        let checked = match state.accounts.user(&claims.sub).await {
            Ok(_) => {
                state
                    .accounts
                    .session_in_force(&claims.sub, claims.sid.as_deref(), now_ms())
                    .await
            }
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {}
            Err(AccountError::Store(StoreError::Unavailable(detail))) => {
                tracing::warn!(%detail, "account store unavailable: TURN credentials on the token alone");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(RelayCaller {
            user_id: claims.sub,
        })
    }
}

fn bearer_claims(parts: &Parts, state: &ApiState) -> Result<AccessClaims, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized);
    }
    state
        .accounts
        .tokens()
        .verify(token.trim(), now_ms() / 1000)
        .map_err(|_| ApiError::Unauthorized)
}

/// The caller, from a valid `Authorization: Bearer <access token>` whose
/// user still exists.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User id (the token's `sub`).
    pub user_id: String,
    /// Display name at token issue.
    pub display_name: String,
    /// The login session the token was issued for, if it names one.
    pub session_id: Option<String>,
    /// The user as stored now.
    pub user: tincan_accounts::User,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let claims = bearer_claims(parts, state)?;
        // A deleted user's tokens, and a revoked session's, stop working at
        // once, everywhere.
        let user = state.accounts.user(&claims.sub).await?;
        state
            .accounts
            .session_in_force(&claims.sub, claims.sid.as_deref(), now_ms())
            .await?;
        Ok(Caller {
            user_id: claims.sub,
            display_name: claims.name,
            session_id: claims.sid,
            user,
        })
    }
}
