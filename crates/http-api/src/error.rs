//! API errors: `{"error": {"code", "message"}}` with stable kebab-case codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tincan_accounts::{AccountError, StoreError};

/// An error reply of the HTTP API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `invalid-request`: the message says what is wrong.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// 401 `invalid-credentials`: bad username/password or refresh token.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401 `unauthorized`: no valid bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// 409 `username-taken`.
    #[error("username taken")]
    UsernameTaken,
    /// 503 `store-unavailable`: the database is down or too slow; retry.
    #[error("store unavailable")]
    StoreUnavailable,
    /// 500 `internal`.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid-request",
            ApiError::InvalidCredentials => "invalid-credentials",
            ApiError::Unauthorized => "unauthorized",
            ApiError::UsernameTaken => "username-taken",
            ApiError::StoreUnavailable => "store-unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidCredentials | ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UsernameTaken => StatusCode::CONFLICT,
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::InvalidRequest(m) => m.clone(),
            ApiError::InvalidCredentials => "wrong username, password or refresh token".into(),
            ApiError::Unauthorized => "a valid bearer access token is required".into(),
            ApiError::UsernameTaken => "that username is taken".into(),
            ApiError::StoreUnavailable => "the account store is unavailable; try again".into(),
            ApiError::Internal => "internal error".into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(v) => ApiError::InvalidRequest(v.to_string()),
            AccountError::UsernameTaken => ApiError::UsernameTaken,
            AccountError::InvalidCredentials | AccountError::InvalidRefreshToken => {
                ApiError::InvalidCredentials
            }
            AccountError::UnknownUser => ApiError::Unauthorized,
            AccountError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(%detail, "account store unavailable");
                ApiError::StoreUnavailable
            }
            AccountError::Store(other) => {
                tracing::error!(error = %other, "account store error");
                ApiError::Internal
            }
            AccountError::Hashing(detail) => {
                tracing::error!(%detail, "password hashing failed");
                ApiError::Internal
            }
            other => {
                tracing::error!(error = %other, "account error");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.message()}});
        let mut resp = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::StoreUnavailable) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
