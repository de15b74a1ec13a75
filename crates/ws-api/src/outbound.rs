//! What the handlers push, as typed values, for whoever counts them (the
//! Lambdas' CloudWatch metrics): each push reports the message the core
//! produced and what became of it, so no observer reads the JSON text back.

use tincan_signaling::ServerMessage;

/// The message one push carried.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Outbound<'a> {
    /// A message the core produced for this event.
    Message(&'a ServerMessage),
    /// A `signal` kept for a detached participant (stored as its text) and
    /// pushed now: on its resume, or to the connection it resumed on.
    KeptSignal,
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pushed {
    /// Handed to the connection.
    Delivered,
    /// The connection is gone (410): its participant is detached.
    Gone,
    /// Any other failure, logged.
    Failed,
}

/// Told of every push the handlers make ([`WsApi::with_push_observer`]).
/// Called on the push's task, after it completes; it must not block.
///
/// [`WsApi::with_push_observer`]: crate::WsApi::with_push_observer
pub trait PushObserver: Send + Sync {
    /// `message` was pushed, with `outcome`.
    fn pushed(&self, message: Outbound<'_>, outcome: Pushed);
}
