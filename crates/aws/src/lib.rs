//! AWS SDK set-up and the DynamoDB plumbing every Tincan store shares.
//!
//! - **SDK set-up**: the configuration every binary builds its clients from
//!   ([`sdk_config_from_env`], [`sdk_config_in_lambda`]): region, credentials
//!   (dummy ones for an emulator), the stores' timeouts and retries, the
//!   DynamoDB endpoint override (`DYNAMODB_ENDPOINT`, read by the binaries
//!   with their other settings and passed in), and one HTTP/1.1 client
//!   ([`https_client`]).
//! - **Items** ([`item`]): attribute constructors and typed getters whose
//!   failure is an [`ItemError`] naming the item and the attribute.
//! - **Transactions** ([`transact`]): one `TransactWriteItems` helper that
//!   resends on conflicts with a bounded, jittered backoff and hands every
//!   other cancellation back with its reasons typed by code.
//! - **Tables** ([`ensure_table`]): create if missing, wait until active,
//!   TTL on.
//!
//! With the `testing` feature, the `testing` module starts a moto server
//! for tests (see its docs).
//!
//! This crate sits below the stores (`tincan-store`, `tincan-fleet`): a
//! binary that only needs an SDK client (the media node) links it alone.

mod error;
pub mod item;
mod sdk_config;
mod sdk_http;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transact;

pub use crate::error::DynamoError;
pub use crate::item::ItemError;
pub use crate::sdk_config::{
    dynamo_client, dynamo_client_from_env, sdk_config_from_env, sdk_config_in_lambda,
    store_timeouts, DEFAULT_REGION,
};
pub use crate::sdk_http::https_client;
pub use crate::table::ensure_table;
