//! The MongoDB backend (the official `mongodb` driver): collections `users`
//! (unique index on `usernameLower`), `auth_sessions` (TTL index on
//! `expiresAt`), `preferences` (keyed by user id) and `calls`.
//!
//! A down or unreachable server must answer fast: server selection and
//! connecting are bounded by [`MongoConfig::timeout`], and every call as a
//! whole by [`MongoConfig::op_timeout`]; both become
//! [`StoreError::Unavailable`]. Indexes are created on first use and retried
//! on the next call if the server was down, so the store recovers by itself.
//! The TTL monitor deletes expired sessions lazily; reads filter them out
//! themselves.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{self, doc, DateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::StoreError;
use crate::model::{
    username_key, AuthSession, CallRecord, MediaPath, Preferences, StoredUser, User,
};
use crate::store::{CallStore, PreferenceStore, SessionStore, UserStore};

/// Default database name (`TINCAN_MONGODB_DB`).
pub const DEFAULT_DATABASE: &str = "tincan";

/// How to reach MongoDB.
#[derive(Clone)]
pub struct MongoConfig {
    /// Connection string (`MONGODB_URI`); may hold credentials, so it is
    /// never logged.
    pub uri: String,
    /// Database name (`TINCAN_MONGODB_DB`).
    pub database: String,
    /// Server selection and connect timeout (`TINCAN_MONGODB_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Upper bound on any one store call, retries included.
    pub op_timeout: Duration,
    /// How often the driver checks each server in the background
    /// (`TINCAN_MONGODB_HEARTBEAT_MS`). A failed operation triggers a check
    /// of its own, so a restarted server is noticed without frequent
    /// heartbeats.
    pub heartbeat: Duration,
    /// Most connections per server in this process (`TINCAN_MONGODB_MAX_POOL`).
    /// A Lambda container serves one event at a time, so a few are plenty.
    pub max_pool_size: u32,
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .field("op_timeout", &self.op_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("max_pool_size", &self.max_pool_size)
            .finish_non_exhaustive()
    }
}

impl MongoConfig {
    /// A config with the default database and timeouts (2 s to select a
    /// server, 5 s per call).
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: DEFAULT_DATABASE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            op_timeout: Duration::from_secs(5),
            heartbeat: DEFAULT_HEARTBEAT,
            max_pool_size: DEFAULT_MAX_POOL_SIZE,
        }
    }
}

/// Server selection and connect timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The driver's own default heartbeat: one check per server every 10 s.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// Connections per server, per process.
pub(crate) const DEFAULT_MAX_POOL_SIZE: u32 = 10;

/// All four stores on one MongoDB database.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    indexes: std::sync::Arc<OnceCell<()>>,
    op_timeout: Duration,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    username: String,
    username_lower: String,
    display_name: String,
    password_hash: String,
    created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    token_hash: String,
    created_at: i64,
    expires_at: DateTime,
    revoked: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    room: String,
    peer_id: String,
    started_at: i64,
    ended_at: Option<i64>,
    media_path: Option<String>,
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn to_u64(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// The last millisecond of year 9999: some servers (and most drivers)
/// cannot represent later dates.
const MAX_DATE_MS: u64 = 253_402_300_799_999;

fn to_date(ms: u64) -> DateTime {
    DateTime::from_millis(to_i64(ms.min(MAX_DATE_MS)))
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

fn unavailable(e: mongodb::error::Error) -> StoreError {
    if is_duplicate(&e) {
        return StoreError::Duplicate;
    }
    if let ErrorKind::BsonDeserialization(d) = e.kind.as_ref() {
        return StoreError::Corrupt {
            key: "?".to_owned(),
            reason: d.to_string(),
        };
    }
    StoreError::Unavailable(format!("mongodb: {e}"))
}

impl MongoStore {
    /// A store for `config`. Parses the URI (resolving `mongodb+srv`), but
    /// neither waits for nor needs the server: it returns at once, and the
    /// indexes are made in the background and, failing that, on first use.
    pub async fn connect(config: &MongoConfig) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(|e| StoreError::Unavailable(format!("bad MONGODB_URI: {}", e.kind)))?;
        options.app_name = Some("tincan".to_owned());
        options.server_selection_timeout = Some(config.timeout);
        options.connect_timeout = Some(config.timeout);
        // Lambda-friendly: no connections opened ahead of need, idle ones
        // closed, a small pool, and the driver's default heartbeat (a failed
        // operation asks for an immediate check anyway).
        options.heartbeat_freq = Some(config.heartbeat);
        options.min_pool_size = Some(0);
        options.max_pool_size = Some(config.max_pool_size.max(1));
        options.max_idle_time = Some(Duration::from_secs(60));
        let client = Client::with_options(options).map_err(unavailable)?;
        let store = Self {
            db: client.database(&config.database),
            indexes: std::sync::Arc::new(OnceCell::new()),
            op_timeout: config.op_timeout,
        };
        // Server selection and the indexes happen off the start-up path: a
        // cold start (a Lambda's init) never waits on MongoDB, up or down.
        // The warm-up runs in the background; the first call that needs
        // the indexes waits for it (bounded by the operation timeout) or
        // retries it.
        let warm = store.clone();
        tokio::spawn(async move {
            if let Err(e) = warm.ready().await {
                tracing::warn!(error = %e, "mongodb not ready yet; will retry on first use");
            }
        });
        Ok(store)
    }

    fn users(&self) -> Collection<UserDoc> {
        self.db.collection("users")
    }

    fn sessions(&self) -> Collection<SessionDoc> {
        self.db.collection("auth_sessions")
    }

    fn prefs(&self) -> Collection<Document> {
        self.db.collection("preferences")
    }

    /// The call records matching `filter`, in `sort` order, at most `limit`.
    async fn find_calls(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let mut cursor = self
                .calls()
                .find(filter)
                .sort(sort)
                .limit(limit)
                .await
                .map_err(unavailable)?;
            let mut out = Vec::new();
            while cursor.advance().await.map_err(unavailable)? {
                let d = cursor.deserialize_current().map_err(unavailable)?;
                out.push(call_from_doc(d)?);
            }
            Ok(out)
        })
        .await
    }

    fn calls(&self) -> Collection<CallDoc> {
        self.db.collection("calls")
    }

    /// Creates the indexes once (retried on later calls until it works).
    async fn ready(&self) -> Result<(), StoreError> {
        self.indexes
            .get_or_try_init(|| self.bounded(self.create_indexes()))
            .await
            .map(|_| ())
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = IndexOptions::builder().unique(true).build();
        self.users()
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"usernameLower": 1})
                    .options(unique)
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        let ttl = IndexOptions::builder()
            .expire_after(Duration::from_secs(0))
            .build();
        self.sessions()
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"expiresAt": 1})
                    .options(ttl)
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        self.sessions()
            .create_index(IndexModel::builder().keys(doc! {"userId": 1}).build())
            .await
            .map_err(unavailable)?;
        self.calls()
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"userId": 1, "startedAt": -1})
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        self.calls()
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"peerId": 1, "room": 1})
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        // Open visits, oldest first, for a restart or a sweep to close.
        self.calls()
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"endedAt": 1, "startedAt": 1})
                    .build(),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// `fut`, or `Unavailable` if it takes longer than the op timeout.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.op_timeout, fut)
            .await
            .map_err(|_| StoreError::Unavailable("mongodb: operation timed out".to_owned()))?
    }

    /// Runs one call: indexes first, the whole bounded in time.
    async fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.bounded(async {
            self.ready().await?;
            fut.await
        })
        .await
    }
}

fn user_from_doc(d: UserDoc) -> StoredUser {
    StoredUser {
        user: User {
            id: d.id,
            username: d.username,
            display_name: d.display_name,
        },
        password_hash: d.password_hash,
        created_at_ms: to_u64(d.created_at),
    }
}

fn session_from_doc(d: SessionDoc) -> AuthSession {
    AuthSession {
        id: d.id,
        user_id: d.user_id,
        token_hash: d.token_hash,
        created_at_ms: to_u64(d.created_at),
        expires_at_ms: to_u64(d.expires_at.timestamp_millis()),
        revoked: d.revoked,
    }
}

fn call_from_doc(d: CallDoc) -> Result<CallRecord, StoreError> {
    let media_path = match d.media_path.as_deref() {
        None => None,
        Some(s) => Some(MediaPath::parse(s).ok_or_else(|| StoreError::Corrupt {
            key: d.id.clone(),
            reason: format!("unknown media path {s:?}"),
        })?),
    };
    Ok(CallRecord {
        id: d.id,
        user_id: d.user_id,
        room: d.room,
        peer_id: d.peer_id,
        started_at: to_u64(d.started_at),
        ended_at: d.ended_at.map(to_u64),
        media_path,
    })
}

#[async_trait]
impl UserStore for MongoStore {
    async fn create_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        let doc = UserDoc {
            id: user.user.id.clone(),
            username: user.user.username.clone(),
            username_lower: user.username_key(),
            display_name: user.user.display_name.clone(),
            password_hash: user.password_hash.clone(),
            created_at: to_i64(user.created_at_ms),
        };
        self.run(async {
            self.users()
                .insert_one(&doc)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        let filter = doc! {"usernameLower": username_key(username)};
        self.run(async {
            let found = self.users().find_one(filter).await.map_err(unavailable)?;
            Ok(found.map(user_from_doc))
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<StoredUser>, StoreError> {
        self.run(async {
            let found = self
                .users()
                .find_one(doc! {"_id": id})
                .await
                .map_err(unavailable)?;
            Ok(found.map(user_from_doc))
        })
        .await
    }

    async fn set_password_hash(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let filter = doc! {"_id": id, "passwordHash": expected_hash};
        let update = doc! {"$set": {"passwordHash": new_hash}};
        self.run(async {
            let res = self
                .users()
                .update_one(filter, update)
                .await
                .map_err(unavailable)?;
            Ok(res.matched_count == 1)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        self.run(async {
            let res = self
                .users()
                .delete_one(doc! {"_id": id})
                .await
                .map_err(unavailable)?;
            Ok(res.deleted_count == 1)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, session: &AuthSession) -> Result<(), StoreError> {
        let doc = SessionDoc {
            id: session.id.clone(),
            user_id: session.user_id.clone(),
            token_hash: session.token_hash.clone(),
            created_at: to_i64(session.created_at_ms),
            expires_at: to_date(session.expires_at_ms),
            revoked: session.revoked,
        };
        self.run(async {
            self.sessions()
                .insert_one(&doc)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<AuthSession>, StoreError> {
        let filter = doc! {"_id": id, "expiresAt": {"$gt": to_date(now_ms)}};
        self.run(async {
            let found = self
                .sessions()
                .find_one(filter)
                .await
                .map_err(unavailable)?;
            Ok(found.map(session_from_doc))
        })
        .await
    }

    async fn rotate_session(
        &self,
        id: &str,
        expected_hash: &str,
        new_hash: &str,
        new_expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let filter = doc! {
            "_id": id,
            "tokenHash": expected_hash,
            "revoked": false,
            "expiresAt": {"$gt": to_date(now_ms)},
        };
        let update =
            doc! {"$set": {"tokenHash": new_hash, "expiresAt": to_date(new_expires_at_ms)}};
        self.run(async {
            let res = self
                .sessions()
                .update_one(filter, update)
                .await
                .map_err(unavailable)?;
            Ok(res.modified_count == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: &str) -> Result<(), StoreError> {
        self.run(async {
            self.sessions()
                .update_one(doc! {"_id": id}, doc! {"$set": {"revoked": true}})
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut filter = doc! {"userId": user_id, "revoked": false};
        if let Some(keep) = keep {
            filter.insert("_id", doc! {"$ne": keep});
        }
        self.run(async {
            // The ids first, then every match revoked (one added between
            // the two is revoked too, unlisted).
            let ids = self
                .sessions()
                .distinct("_id", filter.clone())
                .await
                .map_err(unavailable)?;
            self.sessions()
                .update_many(filter, doc! {"$set": {"revoked": true}})
                .await
                .map_err(unavailable)?;
            Ok(ids
                .into_iter()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect())
        })
        .await
    }
}

#[async_trait]
impl PreferenceStore for MongoStore {
    async fn preferences(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        self.run(async {
            let found = self
                .prefs()
                .find_one(doc! {"_id": user_id})
                .await
                .map_err(unavailable)?;
            found
                .map(|mut d| {
                    d.remove("_id");
                    bson::from_document(d).map_err(|e| StoreError::Corrupt {
                        key: user_id.to_owned(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        })
        .await
    }

    async fn put_preferences(&self, user_id: &str, prefs: &Preferences) -> Result<(), StoreError> {
        let mut d = bson::to_document(prefs).map_err(|e| StoreError::Corrupt {
            key: user_id.to_owned(),
            reason: e.to_string(),
        })?;
        d.insert("_id", user_id);
        self.run(async {
            self.prefs()
                .replace_one(doc! {"_id": user_id}, d)
                .upsert(true)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    async fn delete_preferences(&self, user_id: &str) -> Result<(), StoreError> {
        self.run(async {
            self.prefs()
                .delete_one(doc! {"_id": user_id})
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl CallStore for MongoStore {
    async fn start_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let doc = CallDoc {
            id: record.id.clone(),
            user_id: record.user_id.clone(),
            room: record.room.clone(),
            peer_id: record.peer_id.clone(),
            started_at: to_i64(record.started_at),
            ended_at: record.ended_at.map(to_i64),
            media_path: record.media_path.map(|m| m.as_str().to_owned()),
        };
        self.run(async {
            self.calls()
                .insert_one(&doc)
                .await
                .map(|_| ())
                .map_err(unavailable)
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
        let filter = doc! {"peerId": peer_id, "room": room, "endedAt": null};
        let mut set = doc! {"endedAt": to_i64(ended_at_ms)};
        if let Some(m) = media_path {
            set.insert("mediaPath", m.as_str());
        }
        self.run(async {
            let res = self
                .calls()
                .update_one(filter, doc! {"$set": set})
                .await
                .map_err(unavailable)?;
            Ok(res.matched_count == 1)
        })
        .await
    }

    async fn set_media_path(
        &self,
        peer_id: &str,
        room: &str,
        media_path: MediaPath,
    ) -> Result<bool, StoreError> {
        let filter = doc! {"peerId": peer_id, "room": room, "endedAt": null};
        let set = doc! {"$set": {"mediaPath": media_path.as_str()}};
        self.run(async {
            let res = self
                .calls()
                .update_one(filter, set)
                .await
                .map_err(unavailable)?;
            Ok(res.matched_count == 1)
        })
        .await
    }

    async fn calls_for_user(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.find_calls(
            doc! {"userId": user_id},
            doc! {"startedAt": -1, "_id": -1},
            limit,
        )
        .await
    }

    async fn delete_calls_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        self.run(async {
            let res = self
                .calls()
                .delete_many(doc! {"userId": user_id})
                .await
                .map_err(unavailable)?;
            Ok(res.deleted_count)
        })
        .await
    }

    async fn open_calls(
        &self,
        started_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.find_calls(
            doc! {"endedAt": null, "startedAt": {"$lt": to_i64(started_before_ms)}},
            doc! {"startedAt": 1, "_id": 1},
            limit,
        )
        .await
    }
}
