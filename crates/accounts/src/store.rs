//! The store traits: one small trait per kind of data. Every backend
//! ([`crate::EmbeddedStore`], [`crate::MongoStore`]) implements all four, and
//! the conformance suite (`tests/conformance`) holds them to one behaviour.
//!
//! Times are ms since the Unix epoch and are passed in by the caller: stores
//! read no clock, so expiry is tested without waiting.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{AuthSession, CallRecord, MediaPath, Preferences, StoredUser};

/// Users, unique by username ignoring case.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user; [`StoreError::Duplicate`] if the id or the
    /// username (in any case) is taken, and then nothing is written.
    async fn create_user(&self, user: &StoredUser) -> Result<(), StoreError>;
    /// The user with this username, in any case.
    async fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<StoredUser>, StoreError>;
    /// Replaces the user's password hash if it is still `expected_hash`
    /// (compare-and-set, so two concurrent changes cannot both win);
    /// `false` if the user is gone or the hash changed meanwhile.
    async fn set_password_hash(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes the user (its username becomes free); `false` if there was none.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;
}

/// Auth sessions (refresh-token families).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &AuthSession) -> Result<(), StoreError>;
    /// The session with this id, unless it expired by `now_ms` (expired
    /// sessions read as absent whether or not the backend deleted them yet).
    /// Revoked sessions are returned, with `revoked` set.
    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<AuthSession>, StoreError>;
    /// Compare-and-swap rotation: if the session exists, is not revoked, not
    /// expired at `now_ms` and its hash is still `expected_hash`, sets the new
    /// hash and expiry and returns `true`; otherwise changes nothing and
    /// returns `false`. Two refreshes racing with one token: one wins.
    async fn rotate_session(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
        new_expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Marks the session revoked (idempotent; unknown ids are fine).
    async fn revoke_session(&self, id: &str) -> Result<(), StoreError>;
    /// Revokes every session of `user_id` except `keep` (if given); returns
    /// the ids of those revoked by this call (so their access tokens can be
    /// refused elsewhere: a session a concurrent login adds meanwhile is
    /// revoked, and may be missing from the list).
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError>;
}

/// Per-user audio preferences.
#[async_trait]
pub trait PreferenceStore: Send + Sync {
    /// The stored preferences, `None` if the user never saved any.
    async fn preferences(&self, user_id: &str) -> Result<Option<Preferences>, StoreError>;
    /// Replaces the user's preferences.
    async fn put_preferences(&self, user_id: &str, prefs: &Preferences) -> Result<(), StoreError>;
    /// Deletes the user's preferences (idempotent).
    async fn delete_preferences(&self, user_id: &str) -> Result<(), StoreError>;
}

/// Call history, written by the signaling side.
///
/// Contract for the WebSocket handlers: when a peer joins a room, call
/// [`CallStore::start_call`] with a fresh record (`ended_at: None`); when it
/// leaves (or disconnects), call [`CallStore::end_call`] with its connection id
/// and room. `end_call` closes the open record of that peer in that room and
/// returns whether there was one, so a leave followed by a disconnect is
/// harmless. A `media_path` given at the end is recorded; `None` keeps any
/// value recorded earlier.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Records that `record.user_id` joined `record.room` as `record.peer_id`.
    async fn start_call(&self, record: &CallRecord) -> Result<(), StoreError>;
    /// Closes the open record of `peer_id` in `room`; `false` if none is open.
    async fn end_call(
        &self,
        peer_id: &str,
        room: &str,
        ended_at_ms: u64,
        media_path: Option<MediaPath>,
    ) -> Result<bool, StoreError>;
    /// Notes how the media of the open call of `peer_id` in `room` goes;
    /// `false` if no call is open.
    async fn set_media_path(
        &self,
        peer_id: &str,
        room: &str,
        media_path: MediaPath,
    ) -> Result<bool, StoreError>;
    /// The user's records, newest `started_at` first, at most `limit`.
    async fn calls_for_user(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// Deletes all of the user's records, open ones too; returns how many.
    async fn delete_calls_for_user(&self, user_id: &str) -> Result<u64, StoreError>;
    /// Open records (no `ended_at`) of any user that started before
    /// `started_before_ms`, oldest `started_at` first, at most `limit`: the
    /// visits a restart or a sweep may have to close (with
    /// [`CallStore::end_call`], at the time their participant was last
    /// seen).
    async fn open_calls(
        &self,
        started_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;
}

/// The four stores, as the service and the handlers hold them.
#[derive(Clone)]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Auth sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Preferences.
    pub preferences: Arc<dyn PreferenceStore>,
    /// Call history.
    pub calls: Arc<dyn CallStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores(..)")
    }
}

impl Stores {
    /// All four stores from one backend that implements them all.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: UserStore + SessionStore + PreferenceStore + CallStore + 'static,
    {
        Self {
            users: backend.clone(),
            sessions: backend.clone(),
            preferences: backend.clone(),
            calls: backend,
        }
    }
}
