//! Where live signaling state is kept, behind small traits.
//!
//! The handlers never see a concrete client: they get an
//! `Arc<dyn ConnectionStore>` and an `Arc<dyn Push>`. The local stack plugs in
//! [`MemoryConnectionStore`] and an in-process push; Lambdas plug in
//! [`DynamoConnectionStore`] and [`ApiGatewayPush`]. One conformance suite
//! (`tests/connection_store.rs`) runs against every store backend so they
//! cannot drift.
//!
//! With the `testing` feature, the `testing` module starts a moto server for tests
//! (see its docs).

mod apigw_push;
mod connection;
mod dynamo;
mod error;
mod memory;
mod push;
mod sdk_config;
mod sdk_http;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::apigw_push::ApiGatewayPush;
pub use crate::connection::{
    apply_detach, apply_resume, keep_refusal, ConnectionRecord, ConnectionStore, Departure,
    JoinOutcome, KeepOutcome, ResumeOutcome, Stranded, CONNECTION_TTL_SECS, MAX_KEPT_BYTES,
};
pub use crate::dynamo::{
    create_table, create_throttle_table, ensure_table, DynamoConnectionStore, DynamoThrottleStore,
    ROOM_INDEX,
};
pub use crate::error::StoreError;
pub use crate::memory::MemoryConnectionStore;
pub use crate::push::{Push, PushError};
pub use crate::sdk_config::{
    dynamo_client, dynamo_client_from_env, sdk_config_from_env, sdk_config_in_lambda,
    store_timeouts, DEFAULT_REGION,
};
pub use crate::sdk_http::https_client;
