//! Where live signaling state is kept, behind small traits.
//!
//! The handlers never see a concrete client: they get an
//! `Arc<dyn ConnectionStore>` and an `Arc<dyn Push>`. The local stack plugs in
//! [`MemoryConnectionStore`] and an in-process push; Lambdas plug in
//! [`DynamoConnectionStore`] and [`ApiGatewayPush`]. One conformance suite
//! (`tests/connection_store.rs`) runs against every store backend so they
//! cannot drift.

mod connection;
mod error;
mod memory;
mod push;

pub use crate::connection::{
    room_view, ConnectionRecord, ConnectionStore, JoinOutcome, CONNECTION_TTL_SECS,
};
pub use crate::error::StoreError;
pub use crate::memory::MemoryConnectionStore;
pub use crate::push::{Push, PushError};
