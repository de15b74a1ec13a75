//! The store layer's error type.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing service could not be reached or refused the call; callers
    /// answer `store-unavailable` and the client may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the same item; the write was not made.
    #[error("too much contention on {0}")]
    Contention(String),
    /// The connection's user was deleted (see
    /// [`DynamoConnectionStore::mark_user_deleted`](crate::DynamoConnectionStore::mark_user_deleted)):
    /// nothing was written.
    #[error("user {0} was deleted")]
    UserDeleted(String),
    /// The connection's login session was revoked (see
    /// [`DynamoConnectionStore::mark_session_revoked`](crate::DynamoConnectionStore::mark_session_revoked)):
    /// nothing was written.
    #[error("session {0} was revoked")]
    SessionRevoked(String),
    /// The connection's user already has as many live connections as
    /// allowed: nothing was written.
    #[error("user {user} has {max} live connections already")]
    TooManyConnections {
        /// The user.
        user: String,
        /// The limit.
        max: usize,
    },
    /// An item in the store does not have the shape we write.
    #[error("corrupt item {key}: {reason}")]
    Corrupt {
        /// The item's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<tincan_aws::DynamoError> for StoreError {
    fn from(err: tincan_aws::DynamoError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<tincan_aws::ItemError> for StoreError {
    fn from(err: tincan_aws::ItemError) -> Self {
        Self::Corrupt {
            reason: err.reason(),
            key: err.key,
        }
    }
}
