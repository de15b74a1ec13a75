//! The Lambda functions of Tincan's WebSocket API, as a library so tests call
//! the handlers directly with a `LambdaEvent`.
//!
//! Each binary in `src/bin/` is a thin `main`: start JSON tracing, read
//! [`FunctionConfig`] once, build the clients, and run one handler. The
//! handlers turn an API Gateway WebSocket event into a call on
//! [`WsApi`](tincan_ws_api::WsApi) and its result into the proxy response API
//! Gateway expects.

mod api_keys;
mod config;
mod handlers;
mod history;
pub mod metrics;

pub use crate::config::{ConfigError, FunctionConfig};
pub use crate::handlers::{handle_connect, handle_default, handle_disconnect, handle_sweep, Deps};

/// Starts JSON logs, as CloudWatch wants them, filtered by `RUST_LOG`
/// (default `info`): a default level and `target=level` pairs, e.g.
/// `info,tincan_ws_api=debug`. (`Targets` rather than `EnvFilter`: the same
/// directives for what the functions log, without a regex engine in every
/// binary.)
pub fn init_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time(),
        )
        .with(filter)
        .init();
}
