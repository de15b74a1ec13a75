//! The Lambda functions of Tincan's WebSocket API, as a library so tests call
//! the handlers directly with a `LambdaEvent`.
//!
//! Each binary in `src/bin/` is a thin `main`: start JSON tracing, read
//! [`FunctionConfig`] once, build the clients, and run one handler. The
//! handlers turn an API Gateway WebSocket event into a call on
//! [`WsApi`](tincan_ws_api::WsApi) and its result into the proxy response API
//! Gateway expects.

mod config;
mod handlers;
pub mod metrics;

pub use crate::config::{ConfigError, FunctionConfig};
pub use crate::handlers::{handle_connect, handle_default, handle_disconnect, Deps, Function};

/// Starts JSON logs, as CloudWatch wants them, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}
