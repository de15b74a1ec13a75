//! Whether a user still exists: a valid token of a deleted account must not
//! open a socket.

use async_trait::async_trait;

/// A lookup of users that failed; the connect is refused with 503.
#[derive(Debug, thiserror::Error)]
#[error("user lookup failed: {0}")]
pub struct UserLookupError(pub String);

/// Answers whether a user id names a live account.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Whether `user_id` exists.
    async fn exists(&self, user_id: &str) -> Result<bool, UserLookupError>;
}

/// [`UserDirectory`] over the accounts' user store.
#[cfg(feature = "call-history")]
#[derive(Clone)]
pub struct AccountsUsers {
    users: std::sync::Arc<dyn tincan_accounts::UserStore>,
}

#[cfg(feature = "call-history")]
impl AccountsUsers {
    /// Users from `users`.
    pub fn new(users: std::sync::Arc<dyn tincan_accounts::UserStore>) -> Self {
        Self { users }
    }
}

#[cfg(feature = "call-history")]
impl std::fmt::Debug for AccountsUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountsUsers")
    }
}

#[cfg(feature = "call-history")]
#[async_trait]
impl UserDirectory for AccountsUsers {
    async fn exists(&self, user_id: &str) -> Result<bool, UserLookupError> {
        self.users
            .user_by_id(user_id)
            .await
            .map(|user| user.is_some())
            .map_err(|e| UserLookupError(e.to_string()))
    }
}
