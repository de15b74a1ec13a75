//! The WebSocket API of Tincan: what happens on `$connect`, `$disconnect` and
//! every message, whichever gateway delivered it.
//!
//! [`WsApi`] loads what the signaling core needs from the
//! [`ConnectionStore`](tincan_store::ConnectionStore), runs the core, and
//! applies its effects through the store and a [`Push`](tincan_store::Push)
//! sink. The Lambdas (`functions/`) and the local gateway (`crates/local`) call
//! the same three methods; neither knows the other exists. The caller passes
//! `now`, so tests run on a virtual clock.

mod api;
#[cfg(feature = "call-history")]
mod call_history;
mod call_log;
mod outbound;
mod sfu;
mod users;

pub use crate::api::{ConnectError, Swept, WsApi, WsApiConfig};
#[cfg(feature = "call-history")]
pub use crate::call_history::AccountsCallLog;
pub use crate::call_log::{CallLog, CallLogError};
pub use crate::outbound::{Outbound, PushObserver, Pushed};
pub use crate::sfu::{NoSfu, NodeSfu, SfuError, SfuGateway};
#[cfg(feature = "call-history")]
pub use crate::users::AccountsUsers;
pub use crate::users::{UserDirectory, UserLookupError};
pub use tincan_media_routing::{
    FixedSfuNode, IceServerSource, NoIceServers, SfuLocator, TurnRestIceServers,
};
pub use tincan_sfu_control::{ControlSecret, SfuControlClient};
pub use tincan_signaling::SocketEnd;
