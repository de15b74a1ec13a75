//! The account layer's error types.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing database could not be reached, timed out or refused the
    /// call; the API answers 503 `store-unavailable` and the client may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule (the username) refused the write; nothing was written.
    #[error("duplicate key")]
    Duplicate,
    /// A stored record does not have the shape we write.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A field of a request that does not pass validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field at fault (`username`, `password`, ...).
    pub field: &'static str,
    /// What is wrong with it, safe to show the client (never echoes a password).
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why an account operation failed. Each variant maps to one API error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Bad input: 400 `invalid-request`.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The username is taken, in any case: 409 `username-taken`.
    #[error("username taken")]
    UsernameTaken,
    /// Unknown user or wrong password (indistinguishable): 401 `invalid-credentials`.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Unknown, expired, revoked or reused refresh token: 401 `invalid-credentials`.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A valid token names a user that no longer exists: 401 `unauthorized`.
    #[error("unknown user")]
    UnknownUser,
    /// A valid token names a login session that was revoked (logout, a
    /// password change, reuse of a rotated refresh token) or has ended:
    /// 401 `unauthorized`.
    #[error("session revoked")]
    SessionRevoked,
    /// The store failed: 503 `store-unavailable` (500 if corrupt).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many password hashes are queued: 503 `busy`, retry after this
    /// many seconds.
    #[error("busy hashing passwords")]
    Busy {
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
    /// Too many failed logins (for this username or from this address) or
    /// registrations from this address: 429 `rate-limited`.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the next attempt is allowed.
        retry_after_secs: u64,
    },
    /// Password hashing failed (bad parameters or a panicked worker): 500.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}
