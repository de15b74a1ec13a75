//! The Lambda functions of Tincan's WebSocket API, as a library so tests call
//! the handlers directly with a `LambdaEvent`.
//!
//! Each binary in `src/bin/` is a thin `main`: read its settings from the
//! environment once ([`ConnectSettings`], [`HistorySettings`],
//! [`HttpApiSettings`]), start JSON tracing, build the clients, and run one
//! handler. The
//! handlers turn an API Gateway WebSocket event into a call on
//! [`WsApi`](tincan_ws_api::WsApi) and its result into the proxy response API
//! Gateway expects.

mod config;
mod handlers;
mod history;
pub mod metrics;

pub use crate::config::{
    ConfigError, ConnectSettings, FunctionConfig, HistorySettings, HttpApiSettings, LogSettings,
    WsSettings,
};
pub use crate::handlers::{handle_connect, handle_default, handle_disconnect, handle_sweep, Deps};

/// Starts JSON logs, as CloudWatch wants them, filtered by `RUST_LOG`
/// ([`LogSettings`]): a default level and `target=level` pairs, e.g.
/// `info,tincan_ws_api=debug`; a filter that does not parse logs at `info`.
/// (`Targets` rather than `EnvFilter`: the same directives for what the
/// functions log, without a regex engine in every binary.)
pub fn init_tracing(log: &LogSettings) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = log
        .rust_log
        .parse::<Targets>()
        .ok()
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
