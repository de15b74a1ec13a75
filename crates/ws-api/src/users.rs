//! Whether a user still exists and its login session is still in force: a
//! valid token of a deleted account, or of a revoked session (logout, a
//! password change, reuse of a rotated refresh token), must not open a
//! socket.

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

    /// Whether login session `session_id` (a token's `sid`) of `user_id` is
    /// still in force at `now_ms`. A directory that knows no sessions says
    /// yes.
    async fn session_in_force(
        &self,
        user_id: &str,
        session_id: &str,
        now_ms: u64,
    ) -> Result<bool, UserLookupError> {
        let _ = (user_id, session_id, now_ms);
        Ok(true)
    }
}

/// [`UserDirectory`] over the accounts' user store.
#[cfg(feature = "call-history")]
#[derive(Clone)]
pub struct AccountsUsers {
    users: std::sync::Arc<dyn tincan_accounts::UserStore>,
    sessions: Option<std::sync::Arc<dyn tincan_accounts::SessionStore>>,
}

#[cfg(feature = "call-history")]
impl AccountsUsers {
    /// Users from `users`.
    pub fn new(users: std::sync::Arc<dyn tincan_accounts::UserStore>) -> Self {
        Self {
            users,
            sessions: None,
        }
    }

    /// Also checks tokens' login sessions in `sessions`: a revoked one opens
    /// no socket.
    pub fn with_sessions(
        mut self,
        sessions: std::sync::Arc<dyn tincan_accounts::SessionStore>,
    ) -> Self {
        self.sessions = Some(sessions);
        self
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

    async fn session_in_force(
        &self,
        user_id: &str,
        session_id: &str,
        now_ms: u64,
    ) -> Result<bool, UserLookupError> {
        let Some(sessions) = &self.sessions else {
            return Ok(true);
        };
        let session = sessions
            .session(session_id, now_ms)
            .await
            .map_err(|e| UserLookupError(e.to_string()))?;
        Ok(session.is_some_and(|s| !s.revoked && s.user_id == user_id))
    }
}
