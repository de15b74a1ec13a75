//! Extractors: JSON bodies whose every failure is 400 `invalid-request`, and
//! the bearer access token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

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

/// The caller, from a valid `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User id (the token's `sub`).
    pub user_id: String,
    /// Display name at token issue.
    pub display_name: String,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let claims = state
            .accounts
            .tokens()
            .verify(token.trim(), now_ms() / 1000)
            .map_err(|_| ApiError::Unauthorized)?;
        Ok(Caller {
            user_id: claims.sub,
            display_name: claims.name,
        })
    }
}
