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
//! - [`config`]: picking the backend from the environment.
//!
//! The signaling side uses [`Stores::calls`] ([`CallStore::start_call`] on
//! join, [`CallStore::end_call`] on leave/disconnect) and [`Stores::users`].

pub mod config;
mod embedded;
mod error;
pub mod model;
mod mongo;
mod password;
#[cfg(feature = "test-support")]
pub mod secantus;
mod service;
pub mod store;
pub mod validate;

pub use crate::embedded::{EmbeddedStore, EMBEDDED_FILE};
pub use crate::error::{AccountError, StoreError, ValidationError};
pub use crate::model::{
    AuthSession, CallRecord, MediaPath, Preferences, PreferencesPatch, StoredUser, User,
};
pub use crate::mongo::{MongoConfig, MongoStore, DEFAULT_DATABASE};
pub use crate::password::{PasswordParams, Passwords};
pub use crate::service::{AccountService, TokenPair, DEFAULT_REFRESH_TTL_SECS};
pub use crate::store::{CallStore, PreferenceStore, SessionStore, Stores, UserStore};
