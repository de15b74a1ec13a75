//! Tincan accounts: users, auth sessions, preferences and call history.
//!
//! - [`model`]: the records (`User`, `Preferences`, `CallRecord`, ...).
//! - [`store`]: one small trait per kind of data, bundled as [`Stores`];
//!   backends [`EmbeddedStore`] (redb on disk, the local stack's default) and
//!   [`MongoStore`] (the official driver; Atlas in production). The
//!   conformance suite in `tests/conformance` runs against both.
//! - [`AccountService`]: register / login / refresh / logout with argon2id
//!   passwords, JWT access tokens (`tincan-token`) and rotated, hashed
//!   refresh tokens.
//! - Password hashing runs on a bounded pool of workers with reused argon2
//!   memory ([`HashPoolConfig`]); failed logins and registrations are limited
//!   per username and client address ([`AuthLimits`]), counted in a
//!   [`ThrottleStore`] (in memory, or shared by every process).
//! - [`config`]: the account settings the binaries share (MongoDB, hashing,
//!   limits), and the backend they pick.
//!
//! The signaling side uses [`Stores::calls`] ([`CallStore::start_call`] on
//! join, [`CallStore::end_call`] on leave/disconnect) and [`Stores::users`].

pub mod config;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
pub mod model;
mod mongo;
mod password;
pub mod private_files;
pub mod rate_limit;
#[cfg(feature = "test-support")]
pub mod secantus;
mod service;
pub mod store;
pub mod validate;

#[cfg(feature = "embedded")]
pub use crate::embedded::{EmbeddedStore, EMBEDDED_FILE};
pub use crate::error::{AccountError, StoreError, ValidationError};
pub use crate::model::{
    AuthSession, CallRecord, MediaPath, Preferences, PreferencesPatch, StoredUser, User,
};
pub use crate::mongo::{MongoConfig, MongoStore, DEFAULT_DATABASE};
pub use crate::password::{
    HashPoolConfig, PasswordParams, Passwords, BUSY_RETRY_AFTER_SECS, DEFAULT_QUEUE_PER_WORKER,
};
pub use crate::private_files::write_private_file;
pub use crate::rate_limit::{
    AuthLimits, MemoryThrottleStore, Quota, Throttle, ThrottleError, ThrottleStore,
};
pub use crate::service::{
    AccountEvents, AccountOptions, AccountService, TokenPair, DEFAULT_REFRESH_TTL_SECS,
};
pub use crate::store::{CallStore, PreferenceStore, SessionStore, Stores, UserStore};
