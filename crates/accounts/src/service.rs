//! The account service: register, login, refresh, logout and the per-user
//! reads, on top of the store traits. The HTTP API (Lambda and local stack)
//! is a thin layer over this.
//!
//! Refresh tokens are `<session id>.<32 random bytes, base64url>`; only their
//! SHA-256 is stored. Each refresh rotates the token (compare-and-swap on the
//! hash); presenting a token that is no longer the session's current one is
//! taken as theft and revokes the whole session, so both the thief and the
//! user must log in again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tincan_token::TokenKeys;

use crate::error::{AccountError, StoreError};
use crate::model::{AuthSession, CallRecord, Preferences, PreferencesPatch, StoredUser, User};
use crate::password::{PasswordParams, Passwords};
use crate::store::Stores;
use crate::validate;

/// Default refresh-token lifetime: 30 days.
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;
/// Longest refresh token we look at.
const REFRESH_TOKEN_MAX: usize = 128;

/// What login and refresh hand back: the API's reply body as is.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// Short-lived JWT for `Authorization: Bearer` and the WebSocket.
    pub access_token: String,
    /// Opaque, single-use refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Who logged in.
    pub user: User,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The account service.
#[derive(Clone, Debug)]
pub struct AccountService {
    stores: Stores,
    tokens: TokenKeys,
    passwords: Passwords,
    refresh_ttl_ms: u64,
}

fn sha256_hex(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session id of a well-formed refresh token.
fn session_id_of(token: &str) -> Option<&str> {
    if token.len() > REFRESH_TOKEN_MAX {
        return None;
    }
    let (sid, secret) = token.split_once('.')?;
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(sid) && secret.len() == 43).then_some(sid)
}

fn new_refresh_token(session_id: &str) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{session_id}.{}", B64.encode(secret))
}

impl AccountService {
    /// A service over `stores`, issuing access tokens with `tokens`.
    pub fn new(
        stores: Stores,
        tokens: TokenKeys,
        password_params: PasswordParams,
        refresh_ttl_secs: u64,
    ) -> Result<Self, AccountError> {
        Ok(Self {
            stores,
            tokens,
            passwords: Passwords::new(password_params)?,
            refresh_ttl_ms: refresh_ttl_secs.saturating_mul(1000),
        })
    }

    /// The stores (the signaling side reads users and writes calls).
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The access-token keys.
    pub fn tokens(&self) -> &TokenKeys {
        &self.tokens
    }

    /// Creates an account. Nothing is stored unless every field is valid and
    /// the username (in any case) is free.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
        now_ms: u64,
    ) -> Result<User, AccountError> {
        validate::username(username)?;
        let display_name = validate::display_name(display_name)?;
        validate::new_password(password)?;
        // Cheap check first, so a taken name costs no hashing; the store's
        // unique index settles races.
        if self
            .stores
            .users
            .user_by_username(username)
            .await?
            .is_some()
        {
            return Err(AccountError::UsernameTaken);
        }
        let password_hash = self.passwords.hash(password.to_owned()).await?;
        let user = User {
            id: uuid::Uuid::new_v4().simple().to_string(),
            username: username.to_owned(),
            display_name,
        };
        let stored = StoredUser {
            user: user.clone(),
            password_hash,
            created_at_ms: now_ms,
        };
        match self.stores.users.create_user(&stored).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "user registered");
                Ok(user)
            }
            Err(StoreError::Duplicate) => Err(AccountError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a username and password and opens a session. Unknown user and
    /// wrong password give the same error after the same amount of work.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<TokenPair, AccountError> {
        validate::password_length(password)?;
        let stored = if validate::username(username).is_ok() {
            self.stores.users.user_by_username(username).await?
        } else {
            None
        };
        let hash = stored.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(password.to_owned(), hash).await?;
        let Some(stored) = stored.filter(|_| ok) else {
            tracing::info!("login refused");
            return Err(AccountError::InvalidCredentials);
        };
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        let refresh_token = new_refresh_token(&session_id);
        let session = AuthSession {
            id: session_id.clone(),
            user_id: stored.user.id.clone(),
            token_hash: sha256_hex(&refresh_token),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.refresh_ttl_ms),
            revoked: false,
        };
        self.stores.sessions.create_session(&session).await?;
        tracing::info!(user_id = %stored.user.id, session_id = %session_id, "login");
        Ok(self.pair(stored.user, refresh_token, now_ms))
    }

    fn pair(&self, user: User, refresh_token: String, now_ms: u64) -> TokenPair {
        TokenPair {
            access_token: self
                .tokens
                .issue(&user.id, &user.display_name, now_ms / 1000),
            refresh_token,
            expires_in: self.tokens.ttl_secs(),
            user,
        }
    }

    /// Exchanges a refresh token for a new pair; the presented token stops
    /// working. A token that was already rotated revokes its session.
    pub async fn refresh(&self, token: &str, now_ms: u64) -> Result<TokenPair, AccountError> {
        let sid = session_id_of(token).ok_or(AccountError::InvalidRefreshToken)?;
        let Some(session) = self.stores.sessions.session(sid, now_ms).await? else {
            return Err(AccountError::InvalidRefreshToken);
        };
        if session.revoked {
            return Err(AccountError::InvalidRefreshToken);
        }
        let presented = sha256_hex(token);
        if !bool::from(presented.as_bytes().ct_eq(session.token_hash.as_bytes())) {
            self.stores.sessions.revoke_session(sid).await?;
            tracing::warn!(session_id = %sid, user_id = %session.user_id,
                "reuse of a rotated refresh token; session revoked");
            return Err(AccountError::InvalidRefreshToken);
        }
        let Some(stored) = self.stores.users.user_by_id(&session.user_id).await? else {
            self.stores.sessions.revoke_session(sid).await?;
            return Err(AccountError::InvalidRefreshToken);
        };
        let next = new_refresh_token(sid);
        let rotated = self
            .stores
            .sessions
            .rotate_session(
                sid,
                &presented,
                &sha256_hex(&next),
                now_ms.saturating_add(self.refresh_ttl_ms),
                now_ms,
            )
            .await?;
        if !rotated {
            // Another refresh with the same token won the race: reuse.
            self.stores.sessions.revoke_session(sid).await?;
            tracing::warn!(session_id = %sid, "concurrent reuse of a refresh token; session revoked");
            return Err(AccountError::InvalidRefreshToken);
        }
        Ok(self.pair(stored.user, next, now_ms))
    }

    /// Revokes the session of a refresh token. Idempotent: an unknown or
    /// malformed token is not an error.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        if let Some(sid) = session_id_of(token) {
            self.stores.sessions.revoke_session(sid).await?;
            tracing::info!(session_id = %sid, "logout");
        }
        Ok(())
    }

    /// The user with this id (the subject of a verified access token).
    pub async fn user(&self, user_id: &str) -> Result<User, AccountError> {
        self.stores
            .users
            .user_by_id(user_id)
            .await?
            .map(|u| u.user)
            .ok_or(AccountError::UnknownUser)
    }

    /// The user's preferences, defaults if never saved.
    pub async fn preferences(&self, user_id: &str) -> Result<Preferences, AccountError> {
        Ok(self
            .stores
            .preferences
            .preferences(user_id)
            .await?
            .unwrap_or_default())
    }

    /// Applies `patch` to the user's preferences and returns the result.
    pub async fn update_preferences(
        &self,
        user_id: &str,
        patch: &PreferencesPatch,
    ) -> Result<Preferences, AccountError> {
        if let Some(Some(id)) = &patch.input_device_id {
            validate::device_id("inputDeviceId", id)?;
        }
        if let Some(Some(id)) = &patch.output_device_id {
            validate::device_id("outputDeviceId", id)?;
        }
        let current = self.preferences(user_id).await?;
        let next = patch.apply(&current);
        self.stores
            .preferences
            .put_preferences(user_id, &next)
            .await?;
        Ok(next)
    }

    /// The user's call history, newest first.
    pub async fn calls(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, AccountError> {
        Ok(self.stores.calls.calls_for_user(user_id, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_parse_only_when_well_formed() {
        let sid = uuid::Uuid::new_v4().simple().to_string();
        let t = new_refresh_token(&sid);
        assert_eq!(session_id_of(&t), Some(sid.as_str()));
        assert_eq!(session_id_of("nope"), None);
        assert_eq!(session_id_of(&format!("{sid}.short")), None);
        assert_eq!(session_id_of(&format!("{}{t}", "x".repeat(200))), None);
        assert_ne!(new_refresh_token(&sid), t);
    }
}
