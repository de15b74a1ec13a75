//! The local stack: everything Tincan needs, in one process, on loopback.
//!
//! The heart of it is [`gateway`], a faithful emulator of an API Gateway
//! WebSocket API: it gives each socket a connection id, routes `$connect`,
//! `$disconnect` and every message (by `$request.body.action`, falling back to
//! `$default`) to a [`Backend`], enforces API Gateway's frame, message and
//! idle limits, and serves the Management API at `/@connections/{id}` so
//! unmodified Lambda code can push to its sockets. The backend is either the
//! handler library called in-process ([`InProcess`], the default) or real
//! Lambdas under `cargo lambda watch` ([`LambdaForward`]).

mod backend;
mod config;
mod connections_api;
mod gateway;
mod sockets;
mod stack;

pub use crate::backend::{Backend, ConnectOutcome, InProcess, LambdaForward, WsEvent};
pub use crate::config::{GatewayLimits, LocalConfig};
pub use crate::gateway::{router, GatewayState};
pub use crate::sockets::{LocalPush, SocketTable};
pub use crate::stack::LocalStack;
