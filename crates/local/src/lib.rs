//! The local stack: everything Tincan needs, in one process, on loopback.
//!
//! The heart of it is [`gateway`], a faithful emulator of an API Gateway
//! WebSocket API: it gives each socket a connection id, routes `$connect`,
//! `$disconnect` and every message (by `$request.body.action`, falling back to
//! `$default`) to a [`Backend`], enforces API Gateway's frame, message and
//! idle limits, and serves the Management API at `/@connections/{id}` (on a
//! listener of its own, never the public one) so unmodified Lambda code can
//! push to its sockets. It is as unkind as API Gateway: frames of one socket
//! are handled concurrently and in no order. Every listener sheds silent and
//! excess connections, and each socket has a message rate and
//! a bounded outgoing queue. The backend is either the
//! handler library called in-process ([`InProcess`], the default) or real
//! Lambdas under `cargo lambda watch` ([`LambdaForward`]).

mod backend;
mod config;
mod connection;
mod connections_api;
mod gateway;
mod gateway_state;
mod leftover;
mod listener;
mod sockets;
mod stack;
mod web_app;

pub use crate::backend::{Backend, ConnectOutcome, InProcess, LambdaForward, WsEvent};
pub use crate::config::{GatewayLimits, ListenerLimits, LocalConfig, LocalSettings};
pub use crate::gateway::{management_router, router};
pub use crate::gateway_state::GatewayState;
pub use crate::sockets::{LocalPush, SocketTable};
pub use crate::stack::LocalStack;
pub use crate::web_app::{
    parse_cors_origins, CorsConfigError, WebSettings, CONTENT_SECURITY_POLICY, SETTINGS_PATH,
};
