//! Where live signaling state is kept, behind small traits.
//!
//! The handlers never see a concrete client: they get an
//! `Arc<dyn ConnectionStore>` and an `Arc<dyn Push>`. The local stack plugs in
//! [`MemoryConnectionStore`] and an in-process push; Lambdas plug in
//! [`DynamoConnectionStore`] and [`ApiGatewayPush`]. One conformance suite
//! (`tests/connection_store.rs`) runs against every store backend so they
//! cannot drift.
//!
//! AWS SDK set-up and the DynamoDB plumbing (typed item getters, the
//! transaction helper) are `tincan-aws`'s; the SDK set-up is re-exported
//! here for the binaries that build their stores from it. With the
//! `testing` feature, the `testing` module (`tincan_aws::testing`) starts a
//! moto server for tests (see its docs).

mod apigw_push;
mod connection;
mod dynamo;
mod error;
mod memory;
mod push;

pub use crate::apigw_push::ApiGatewayPush;
pub use crate::connection::{
    apply_detach, apply_resume, keep_refusal, ConnectionRecord, ConnectionStore, Departure,
    JoinOutcome, KeepOutcome, ResumeOutcome, Stranded, CONNECTION_TTL_SECS, MAX_KEPT_BYTES,
};
pub use crate::dynamo::{
    create_table, create_throttle_table, DynamoConnectionStore, DynamoThrottleStore, ROOM_INDEX,
};
pub use crate::error::StoreError;
pub use crate::memory::MemoryConnectionStore;
pub use crate::push::{Push, PushError};
#[cfg(feature = "testing")]
pub use tincan_aws::testing;
pub use tincan_aws::{
    dynamo_client, dynamo_client_from_env, ensure_table, https_client, sdk_config_from_env,
    sdk_config_in_lambda, store_timeouts, DEFAULT_REGION,
};
