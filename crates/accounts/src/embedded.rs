//! The embedded backend: one [redb](https://www.redb.org) file on disk
//! (`<dir>/accounts.redb`), ACID and crash-safe, so the local stack's
//! accounts survive a restart. Records are JSON values; secondary keys
//! (lower-cased username, open calls) are kept in their own tables inside the
//! same transactions, so every write is all or nothing.
//!
//! redb is synchronous; each call runs in `spawn_blocking`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;
use crate::model::{username_key, AuthSession, CallRecord, MediaPath, Preferences, StoredUser};
use crate::private_files::{private_dir, private_file};
use crate::store::{CallStore, PreferenceStore, SessionStore, UserStore};

/// File name inside the data directory.
pub const EMBEDDED_FILE: &str = "accounts.redb";

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USERNAMES: TableDefinition<&str, &str> = TableDefinition::new("usernames");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_sessions");
const PREFERENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("preferences");
/// `user_id \0 started_at(20 digits) \0 call id` -> record: a user's calls in time order.
const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("calls");
/// `peer_id \0 room` -> key in `CALLS` of the open call.
const OPEN_CALLS: TableDefinition<&str, &str> = TableDefinition::new("open_calls");

/// All four stores in one redb database.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore(..)")
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn call_key(user_id: &str, started_at: u64, id: &str) -> String {
    format!("{user_id}\0{started_at:020}\0{id}")
}

fn open_key(peer_id: &str, room: &str) -> String {
    format!("{peer_id}\0{room}")
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `dir`. Fails if another
    /// process has it open.
    ///
    /// The file holds password hashes: it is created readable by its owner
    /// only (0600), and an existing one is narrowed to that; a directory
    /// this creates is 0700.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        private_dir(dir).map_err(db_err)?;
        let path = dir.join(EMBEDDED_FILE);
        private_file(&path).map_err(db_err)?;
        let db = Database::create(&path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(USERS).map_err(db_err)?;
            txn.open_table(USERNAMES).map_err(db_err)?;
            txn.open_table(SESSIONS).map_err(db_err)?;
            txn.open_table(PREFERENCES).map_err(db_err)?;
            txn.open_table(CALLS).map_err(db_err)?;
            txn.open_table(OPEN_CALLS).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&txn)
        })
        .await
        .map_err(db_err)?
    }

    /// Runs `f` in a write transaction, committed only if `f` succeeds.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(db_err)?;
            let out = f(&txn)?;
            txn.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
        .map_err(db_err)?
    }
}

fn get_json<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let table = txn.open_table(table).map_err(db_err)?;
    let value = table.get(key).map_err(db_err)?;
    value.map(|v| decode(key, v.value())).transpose()
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let key = user.username_key();
            let mut names = txn.open_table(USERNAMES).map_err(db_err)?;
            let mut users = txn.open_table(USERS).map_err(db_err)?;
            if names.get(key.as_str()).map_err(db_err)?.is_some()
                || users.get(user.user.id.as_str()).map_err(db_err)?.is_some()
            {
                return Err(StoreError::Duplicate);
            }
            let bytes = encode(&user.user.id, &user)?;
            names
                .insert(key.as_str(), user.user.id.as_str())
                .map_err(db_err)?;
            users
                .insert(user.user.id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        let key = username_key(username);
        self.read(move |txn| {
            let names = txn.open_table(USERNAMES).map_err(db_err)?;
            let Some(id) = names.get(key.as_str()).map_err(db_err)? else {
                return Ok(None);
            };
            let id = id.value().to_owned();
            get_json(txn, USERS, &id)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<StoredUser>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| get_json(txn, USERS, &id)).await
    }

    async fn set_password_hash(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let (id, expected, new_hash) =
            (id.to_owned(), expected_hash.to_owned(), new_hash.to_owned());
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(db_err)?;
            let current: Option<StoredUser> = match users.get(id.as_str()).map_err(db_err)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            let Some(mut user) = current.filter(|u| u.password_hash == expected) else {
                return Ok(false);
            };
            user.password_hash = new_hash;
            let bytes = encode(&id, &user)?;
            users
                .insert(id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(db_err)?;
            let removed: Option<StoredUser> = match users.remove(id.as_str()).map_err(db_err)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            let Some(user) = removed else {
                return Ok(false);
            };
            let mut names = txn.open_table(USERNAMES).map_err(db_err)?;
            names.remove(user.username_key().as_str()).map_err(db_err)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &AuthSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            if table.get(session.id.as_str()).map_err(db_err)?.is_some() {
                return Err(StoreError::Duplicate);
            }
            let bytes = encode(&session.id, &session)?;
            table
                .insert(session.id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<AuthSession>, StoreError> {
        let id = id.to_owned();
        let found: Option<AuthSession> = self.read(move |txn| get_json(txn, SESSIONS, &id)).await?;
        Ok(found.filter(|s| s.expires_at_ms > now_ms))
    }

    async fn rotate_session(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
        new_expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let (id, expected, new_hash) =
            (id.to_owned(), expected_hash.to_owned(), new_hash.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            let current: Option<AuthSession> = match table.get(id.as_str()).map_err(db_err)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            let Some(mut session) = current else {
                return Ok(false);
            };
            if session.revoked || session.expires_at_ms <= now_ms || session.token_hash != expected
            {
                return Ok(false);
            }
            session.token_hash = new_hash;
            session.expires_at_ms = new_expires_at_ms;
            let bytes = encode(&id, &session)?;
            table
                .insert(id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_session(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            let current: Option<AuthSession> = match table.get(id.as_str()).map_err(db_err)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            if let Some(mut session) = current {
                session.revoked = true;
                let bytes = encode(&id, &session)?;
                table
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let (user_id, keep) = (user_id.to_owned(), keep.map(str::to_owned));
        self.write(move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            // The local stack's sessions are few: a scan is fine.
            let mut hit = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let session: AuthSession = decode(k.value(), v.value())?;
                if session.user_id == user_id
                    && !session.revoked
                    && keep.as_deref() != Some(session.id.as_str())
                {
                    hit.push(session);
                }
            }
            for mut session in hit.iter().cloned() {
                session.revoked = true;
                let bytes = encode(&session.id, &session)?;
                table
                    .insert(session.id.as_str(), bytes.as_slice())
                    .map_err(db_err)?;
            }
            Ok(hit.into_iter().map(|s| s.id).collect())
        })
        .await
    }
}

#[async_trait]
impl PreferenceStore for EmbeddedStore {
    async fn preferences(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |txn| get_json(txn, PREFERENCES, &user_id))
            .await
    }

    async fn put_preferences(&self, user_id: &str, prefs: &Preferences) -> Result<(), StoreError> {
        let bytes = encode(user_id, prefs)?;
        let user_id = user_id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(PREFERENCES).map_err(db_err)?;
            table
                .insert(user_id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_preferences(&self, user_id: &str) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(PREFERENCES).map_err(db_err)?;
            table.remove(user_id.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl CallStore for EmbeddedStore {
    async fn start_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |txn| {
            let key = call_key(&record.user_id, record.started_at, &record.id);
            let bytes = encode(&key, &record)?;
            let mut calls = txn.open_table(CALLS).map_err(db_err)?;
            calls
                .insert(key.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            if record.ended_at.is_none() {
                let mut open = txn.open_table(OPEN_CALLS).map_err(db_err)?;
                open.insert(
                    open_key(&record.peer_id, &record.room).as_str(),
                    key.as_str(),
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn end_call(
        &self,
        peer_id: &str,
        room: &str,
        ended_at_ms: u64,
        media_path: Option<MediaPath>,
    ) -> Result<bool, StoreError> {
        let open = open_key(peer_id, room);
        self.write(move |txn| {
            update_open_call(txn, &open, OpenCall::Close, |record| {
                record.ended_at = Some(ended_at_ms);
                if media_path.is_some() {
                    record.media_path = media_path;
                }
            })
        })
        .await
    }

    async fn set_media_path(
        &self,
        peer_id: &str,
        room: &str,
        media_path: MediaPath,
    ) -> Result<bool, StoreError> {
        let open = open_key(peer_id, room);
        self.write(move |txn| {
            update_open_call(txn, &open, OpenCall::KeepOpen, |record| {
                record.media_path = Some(media_path);
            })
        })
        .await
    }

    async fn calls_for_user(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let (from, to) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
        self.read(move |txn| {
            let calls = txn.open_table(CALLS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in calls
                .range(from.as_str()..to.as_str())
                .map_err(db_err)?
                .rev()
                .take(limit)
            {
                let (k, v) = entry.map_err(db_err)?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_calls_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let (from, to) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
        self.write(move |txn| {
            let mut calls = txn.open_table(CALLS).map_err(db_err)?;
            let mut removed = 0;
            for entry in calls
                .extract_from_if(from.as_str()..to.as_str(), |_, _| true)
                .map_err(db_err)?
            {
                entry.map_err(db_err)?;
                removed += 1;
            }
            let mut open = txn.open_table(OPEN_CALLS).map_err(db_err)?;
            open.retain(|_, call| !call.starts_with(from.as_str()))
                .map_err(db_err)?;
            Ok(removed)
        })
        .await
    }

    async fn open_calls(
        &self,
        started_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.read(move |txn| {
            let open = txn.open_table(OPEN_CALLS).map_err(db_err)?;
            let calls = txn.open_table(CALLS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in open.iter().map_err(db_err)? {
                let (_, key) = entry.map_err(db_err)?;
                let key = key.value();
                let Some(bytes) = calls.get(key).map_err(db_err)? else {
                    continue;
                };
                let record: CallRecord = decode(key, bytes.value())?;
                if record.ended_at.is_none() && record.started_at < started_before_ms {
                    out.push(record);
                }
            }
            out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            out.truncate(limit);
            Ok(out)
        })
        .await
    }
}

/// Whether [`update_open_call`] closes the call it updates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenCall {
    Close,
    KeepOpen,
}

/// Applies `change` to the open call under `open` (the peer's key in
/// `OPEN_CALLS`); `false` if no call is open there.
fn update_open_call(
    txn: &WriteTransaction,
    open: &str,
    after: OpenCall,
    change: impl FnOnce(&mut CallRecord),
) -> Result<bool, StoreError> {
    let mut open_calls = txn.open_table(OPEN_CALLS).map_err(db_err)?;
    let key = match after {
        OpenCall::Close => open_calls.remove(open).map_err(db_err)?,
        OpenCall::KeepOpen => open_calls.get(open).map_err(db_err)?,
    };
    let Some(key) = key else {
        return Ok(false);
    };
    let key = key.value().to_owned();
    let mut calls = txn.open_table(CALLS).map_err(db_err)?;
    let current: Option<CallRecord> = match calls.get(key.as_str()).map_err(db_err)? {
        Some(v) => Some(decode(&key, v.value())?),
        None => None,
    };
    let Some(mut record) = current else {
        return Ok(false);
    };
    change(&mut record);
    let bytes = encode(&key, &record)?;
    calls
        .insert(key.as_str(), bytes.as_slice())
        .map_err(db_err)?;
    Ok(true)
}
