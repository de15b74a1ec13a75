//! What every route of the emulated API Gateway shares ([`GatewayState`]:
//! the backend, the open sockets, the limits) and its clock, below the
//! public routes (`gateway.rs`), the life of a socket (`connection.rs`) and
//! the Management API (`connections_api.rs`), which all use them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::backend::Backend;
use crate::config::GatewayLimits;
use crate::sockets::SocketTable;

/// Shared by every request the gateway serves.
#[derive(Clone)]
pub struct GatewayState {
    /// Where events go.
    pub backend: Arc<dyn Backend>,
    /// Open sockets.
    pub sockets: SocketTable,
    /// API Gateway's limits, and ours.
    pub limits: GatewayLimits,
    /// Stage name, as in `/{stage}/@connections/{id}`.
    pub stage: String,
    /// `$default` invocations running, gateway-wide.
    pub(crate) inflight: Arc<Semaphore>,
}

impl GatewayState {
    /// A gateway sending events to `backend`.
    pub fn new(
        backend: Arc<dyn Backend>,
        sockets: SocketTable,
        limits: GatewayLimits,
        stage: impl Into<String>,
    ) -> Self {
        Self {
            backend,
            sockets,
            limits,
            stage: stage.into(),
            inflight: Arc::new(Semaphore::new(limits.max_inflight.max(1))),
        }
    }
}

/// Milliseconds since the epoch, the gateway's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
