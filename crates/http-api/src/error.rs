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
    /// 429 `rate-limited`: too many failed logins or registrations; retry
    /// after this many seconds.
    #[error("rate limited")]
    RateLimited {
        /// `Retry-After`, seconds.
        retry_after_secs: u64,
    },
    /// 503 `busy`: too many password hashes queued; retry after this many
    /// seconds.
    #[error("busy")]
    Busy {
        /// `Retry-After`, seconds.
        retry_after_secs: u64,
    },
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
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::Busy { .. } => "busy",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidCredentials | ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UsernameTaken => StatusCode::CONFLICT,
            ApiError::StoreUnavailable | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::RateLimited { retry_after_secs } => {
                format!("too many attempts; try again in {retry_after_secs} s")
            }
            ApiError::Busy { retry_after_secs } => {
                format!("the server is busy; try again in {retry_after_secs} s")
            }
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
            AccountError::UnknownUser | AccountError::SessionRevoked => ApiError::Unauthorized,
            AccountError::RateLimited { retry_after_secs } => {
                ApiError::RateLimited { retry_after_secs }
            }
            AccountError::Busy { retry_after_secs } => {
                tracing::warn!("password hashing queue full");
                ApiError::Busy { retry_after_secs }
            }
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
        let retry_after = match self {
            ApiError::StoreUnavailable => Some(1),
            ApiError::RateLimited { retry_after_secs } | ApiError::Busy { retry_after_secs } => {
                Some(retry_after_secs.max(1))
            }
            _ => None,
        };
        let mut error = json!({"code": self.code(), "message": self.message()});
        if let Some(secs) = retry_after {
            // The same wait as `Retry-After`, in the unit and field the
            // WebSocket's `rate-limited` uses.
            error["retryAfterMs"] = json!(secs * 1000);
        }
        let mut resp = (self.status(), Json(json!({ "error": error }))).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
