//! The account service: register, login, refresh, logout and the per-user
//! reads, on top of the store traits. The HTTP API (Lambda and local stack)
//! is a thin layer over this.
//!
//! Refresh tokens are `<session id>.<32 random bytes, base64url>`; only their
//! SHA-256 is stored. Each refresh rotates the token (compare-and-swap on the
//! hash); presenting a token that is no longer the session's current one is
//! taken as theft and revokes the whole session, so both the thief and the
//! user must log in again.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tincan_token::TokenKeys;

use crate::error::{AccountError, StoreError};
use crate::model::{
    username_key, AuthSession, CallRecord, Preferences, PreferencesPatch, StoredUser, User,
};
use crate::password::{HashPoolConfig, PasswordParams, Passwords};
use futures_util::future::join_all;

use crate::rate_limit::{address_key, keys, AuthLimits, Quota, Throttle, ThrottleError};
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

/// How the account service hashes and limits;
/// [`AccountSettings`](crate::config::AccountSettings) reads it from the
/// binaries' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountOptions {
    /// argon2id cost.
    pub password: PasswordParams,
    /// Hashing workers and queue.
    pub hash_pool: HashPoolConfig,
    /// Failed-login and registration limits.
    pub limits: AuthLimits,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: u64,
}

impl Default for AccountOptions {
    fn default() -> Self {
        Self {
            password: PasswordParams::default(),
            hash_pool: HashPoolConfig::default(),
            limits: AuthLimits::default(),
            refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
        }
    }
}

/// What the rest of the system is told about accounts. The signaling side
/// implements it to close the live sockets of a deleted user (and, if it
/// wants, of the sessions a password change revoked).
#[async_trait]
pub trait AccountEvents: Send + Sync {
    /// The account `user_id` is gone: its tokens are refused from now on;
    /// its open sockets should be closed.
    async fn account_deleted(&self, user_id: &str);

    /// `user_id` changed its password; every session but `kept_session`
    /// was revoked.
    async fn password_changed(&self, user_id: &str, kept_session: Option<&str>) {
        let _ = (user_id, kept_session);
    }

    /// Login sessions `session_ids` of `user_id` were revoked (a password
    /// change, reuse of a rotated refresh token, logout): their access
    /// tokens should stop opening sockets at once.
    async fn sessions_revoked(&self, user_id: &str, session_ids: &[String]) {
        let _ = (user_id, session_ids);
    }
}

/// The account service.
#[derive(Clone)]
pub struct AccountService {
    stores: Stores,
    tokens: TokenKeys,
    passwords: Passwords,
    refresh_ttl_ms: u64,
    limits: AuthLimits,
    throttle: Throttle,
    events: Option<Arc<dyn AccountEvents>>,
}

impl std::fmt::Debug for AccountService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService")
            .field("refresh_ttl_ms", &self.refresh_ttl_ms)
            .finish_non_exhaustive()
    }
}

/// Attempts taken from the throttle for one login, given back unless the
/// login failed on a wrong password: a login that fails for any other
/// reason (or succeeds) costs the caller nothing. A reservation dropped
/// without [`Reservation::settle`] (a cancelled request) stays counted.
struct Reservation<'a> {
    throttle: &'a Throttle,
    taken: Vec<(String, Quota)>,
    now_ms: u64,
}

impl<'a> Reservation<'a> {
    fn new(throttle: &'a Throttle, now_ms: u64) -> Self {
        Self {
            throttle,
            taken: Vec::new(),
            now_ms,
        }
    }

    /// Takes one attempt from every bucket of `buckets` (all at once), or
    /// refuses with the longest wait.
    async fn take(&mut self, buckets: Vec<(String, Quota)>) -> Result<(), AccountError> {
        let now_ms = self.now_ms;
        let tries = buckets
            .iter()
            .map(|(key, quota)| self.throttle.acquire(key, *quota, now_ms));
        let results = join_all(tries).await;
        let mut refused = None;
        let mut failed = None;
        for ((key, quota), result) in buckets.into_iter().zip(results) {
            match result {
                Ok(Ok(())) => self.taken.push((key, quota)),
                Ok(Err(wait)) => refused = Some(refused.unwrap_or(0).max(wait)),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(throttle_error(e));
        }
        match refused {
            Some(retry_after_secs) => Err(AccountError::RateLimited { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Keeps the attempts if `result` is a wrong password, else gives them
    /// back; returns `result`.
    async fn settle<T>(self, result: Result<T, AccountError>) -> Result<T, AccountError> {
        if !matches!(result, Err(AccountError::InvalidCredentials)) {
            let refunds = self
                .taken
                .iter()
                .map(|(key, quota)| self.throttle.refund(key, *quota, self.now_ms));
            for (r, (key, _)) in join_all(refunds).await.into_iter().zip(&self.taken) {
                if let Err(e) = r {
                    tracing::warn!(key = %key, error = %e, "throttle refund failed");
                }
            }
        }
        result
    }
}

/// A throttle store failure: the API answers 503 `store-unavailable`
/// (failing closed: no unlimited guessing while the store is down).
fn throttle_error(e: ThrottleError) -> AccountError {
    tracing::warn!(error = %e, "throttle store failed");
    AccountError::Store(StoreError::Unavailable(e.to_string()))
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
    /// A service over `stores`, issuing access tokens with `tokens`, with
    /// the default hashing pool and limits.
    pub fn new(
        stores: Stores,
        tokens: TokenKeys,
        password_params: PasswordParams,
        refresh_ttl_secs: u64,
    ) -> Result<Self, AccountError> {
        Self::with_options(
            stores,
            tokens,
            AccountOptions {
                password: password_params,
                refresh_ttl_secs,
                ..AccountOptions::default()
            },
        )
    }

    /// A service over `stores` shaped by `options` (e.g.
    /// [`AccountSettings::options`](crate::config::AccountSettings::options)).
    pub fn with_options(
        stores: Stores,
        tokens: TokenKeys,
        options: AccountOptions,
    ) -> Result<Self, AccountError> {
        Ok(Self {
            stores,
            tokens,
            passwords: Passwords::with_pool(options.password, options.hash_pool)?,
            refresh_ttl_ms: options.refresh_ttl_secs.saturating_mul(1000),
            limits: options.limits,
            throttle: Throttle::in_memory(options.limits.max_keys),
            events: None,
        })
    }

    /// Keeps the failed-login and registration counts in `throttle` (shared
    /// by every process using the same store) instead of this process's
    /// memory.
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Tells `events` about deleted accounts and password changes.
    pub fn with_events(mut self, events: Arc<dyn AccountEvents>) -> Self {
        self.events = Some(events);
        self
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
    /// the username (in any case) is free. Valid attempts count against the
    /// per-address registration limit of `from` (the client's address, when
    /// known): past it, [`AccountError::RateLimited`].
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
        from: Option<IpAddr>,
        now_ms: u64,
    ) -> Result<User, AccountError> {
        validate::username(username)?;
        let display_name = validate::display_name(display_name)?;
        validate::new_password(password)?;
        if let Some(ip) = from {
            // Every valid attempt counts, taken names too (no free probing).
            self.throttle
                .acquire(
                    &keys::register_addr(&address_key(ip)),
                    self.limits.registrations_per_addr,
                    now_ms,
                )
                .await
                .map_err(throttle_error)?
                .map_err(|retry_after_secs| AccountError::RateLimited { retry_after_secs })?;
        }
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
    ///
    /// Failed attempts count per username and per client address (`from`,
    /// when known); past either limit, [`AccountError::RateLimited`] before
    /// any hashing. An attempt is counted when it starts (so concurrent
    /// guesses cannot overrun the limit) and given back if the password was
    /// right or the attempt failed for another reason.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        from: Option<IpAddr>,
        now_ms: u64,
    ) -> Result<TokenPair, AccountError> {
        validate::password_length(password)?;
        let valid_name = validate::username(username).is_ok();
        let address = from.map(address_key);
        let mut buckets = Vec::with_capacity(3);
        if valid_name {
            let user = username_key(username);
            buckets.push((
                keys::login_user_addr(&user, address.as_deref()),
                self.limits.failed_logins_per_user_addr,
            ));
            buckets.push((keys::login_user(&user), self.limits.failed_logins_per_user));
        }
        if let Some(address) = &address {
            buckets.push((
                keys::login_addr(address),
                self.limits.failed_logins_per_addr,
            ));
        }
        let mut attempt = Reservation::new(&self.throttle, now_ms);
        let checked = match attempt.take(buckets).await {
            Ok(()) => self.check_password(username, password, valid_name).await,
            Err(e) => Err(e),
        };
        let stored = attempt.settle(checked).await?;
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
        Ok(self.pair(stored.user, &session_id, refresh_token, now_ms))
    }

    /// The user `username` if `password` is theirs, else
    /// [`AccountError::InvalidCredentials`] (after the same work either way).
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        valid_name: bool,
    ) -> Result<StoredUser, AccountError> {
        let stored = if valid_name {
            self.stores.users.user_by_username(username).await?
        } else {
            None
        };
        let hash = stored.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(password.to_owned(), hash).await?;
        stored.filter(|_| ok).ok_or_else(|| {
            tracing::info!("login refused");
            AccountError::InvalidCredentials
        })
    }

    fn pair(&self, user: User, session_id: &str, refresh_token: String, now_ms: u64) -> TokenPair {
        TokenPair {
            access_token: self.tokens.issue_for_session(
                &user.id,
                &user.display_name,
                session_id,
                now_ms / 1000,
            ),
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
            self.tell_revoked(&session.user_id, sid).await;
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
            self.tell_revoked(&session.user_id, sid).await;
            return Err(AccountError::InvalidRefreshToken);
        }
        Ok(self.pair(stored.user, sid, next, now_ms))
    }

    /// Tells [`AccountEvents`] that session `sid` of `user_id` was revoked.
    async fn tell_revoked(&self, user_id: &str, sid: &str) {
        if let Some(events) = &self.events {
            events.sessions_revoked(user_id, &[sid.to_owned()]).await;
        }
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

    /// Checks `password` for the user `user_id`, counting a wrong one
    /// against the per-username limit as a failed login would.
    async fn reauthenticate(
        &self,
        user_id: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<StoredUser, AccountError> {
        validate::password_length(password)?;
        let stored = self
            .stores
            .users
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::UnknownUser)?;
        let user = stored.username_key();
        let mut attempt = Reservation::new(&self.throttle, now_ms);
        let checked = match attempt
            .take(vec![
                (
                    keys::login_user_addr(&user, None),
                    self.limits.failed_logins_per_user_addr,
                ),
                (keys::login_user(&user), self.limits.failed_logins_per_user),
            ])
            .await
        {
            Ok(()) => self
                .passwords
                .verify(password.to_owned(), Some(stored.password_hash.clone()))
                .await
                .and_then(|ok| {
                    if ok {
                        Ok(())
                    } else {
                        Err(AccountError::InvalidCredentials)
                    }
                }),
            Err(e) => Err(e),
        };
        attempt.settle(checked).await?;
        Ok(stored)
    }

    /// Changes the password of `user_id` after checking the current one,
    /// and revokes every session but `keep_session` (the caller's own, from
    /// its access token). [`AccountError::InvalidCredentials`] for a wrong
    /// current password, [`AccountError::Invalid`] for a weak new one.
    /// Access tokens already issued to other sessions are refused from now on
    /// wherever [`AccountService::session_in_force`] is asked (the HTTP API,
    /// `$connect`); the caller's own session keeps its tokens.
    pub async fn change_password(
        &self,
        user_id: &str,
        keep_session: Option<&str>,
        current_password: &str,
        new_password: &str,
        now_ms: u64,
    ) -> Result<(), AccountError> {
        validate::new_password(new_password).map_err(|mut e| {
            e.field = "newPassword";
            e
        })?;
        let stored = self
            .reauthenticate(user_id, current_password, now_ms)
            .await?;
        let new_hash = self.passwords.hash(new_password.to_owned()).await?;
        if !self
            .stores
            .users
            .set_password_hash(user_id, &stored.password_hash, &new_hash)
            .await?
        {
            // Changed or deleted meanwhile: the password checked is stale.
            return Err(AccountError::InvalidCredentials);
        }
        let revoked = self
            .stores
            .sessions
            .revoke_user_sessions(user_id, keep_session)
            .await?;
        tracing::info!(%user_id, revoked = revoked.len(), "password changed");
        if let Some(events) = &self.events {
            events.sessions_revoked(user_id, &revoked).await;
            events.password_changed(user_id, keep_session).await;
        }
        Ok(())
    }

    /// Deletes the account `user_id` after checking its password: revokes
    /// its sessions, removes its preferences and call history, then the user
    /// (its username becomes free), and tells [`AccountEvents`]. Every step is
    /// idempotent, so a deletion cut short by a store failure is finished by
    /// trying again.
    pub async fn delete_account(
        &self,
        user_id: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), AccountError> {
        self.reauthenticate(user_id, password, now_ms).await?;
        let stores = &self.stores;
        stores.sessions.revoke_user_sessions(user_id, None).await?;
        stores.preferences.delete_preferences(user_id).await?;
        stores.calls.delete_calls_for_user(user_id).await?;
        stores.users.delete_user(user_id).await?;
        // A call the signaling side opened while we worked.
        stores.calls.delete_calls_for_user(user_id).await?;
        tracing::info!(%user_id, "account deleted");
        if let Some(events) = &self.events {
            events.account_deleted(user_id).await;
        }
        Ok(())
    }

    /// Whether the login session `session_id` (an access token's `sid`) is
    /// still in force for `user_id` at `now_ms`: `Ok` if it is (or if the
    /// token names no session), [`AccountError::SessionRevoked`] if it was
    /// revoked (logout, a password change that did not keep it, reuse of a
    /// rotated refresh token), has expired or belongs to someone else. So a
    /// revoked session's access tokens stop at once, not when they expire.
    pub async fn session_in_force(
        &self,
        user_id: &str,
        session_id: Option<&str>,
        now_ms: u64,
    ) -> Result<(), AccountError> {
        let Some(sid) = session_id else {
            return Ok(());
        };
        match self.stores.sessions.session(sid, now_ms).await? {
            Some(session) if !session.revoked && session.user_id == user_id => Ok(()),
            _ => Err(AccountError::SessionRevoked),
        }
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
