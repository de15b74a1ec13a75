//! Pushing a message to a connection: API Gateway's `PostToConnection`, or
//! the local gateway's in-process socket table.

use async_trait::async_trait;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The connection no longer exists (API Gateway answers 410): remove it
    /// and tell its room.
    #[error("connection {0} is gone")]
    Gone(String),
    /// The push could not be made for another reason; the connection may
    /// still exist.
    #[error("push failed: {0}")]
    Failed(String),
}

/// Delivers server messages to connections and closes them.
#[async_trait]
pub trait Push: Send + Sync {
    /// Sends one text frame to `connection_id`.
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), PushError>;

    /// Closes `connection_id` from the server side.
    async fn close(&self, connection_id: &str) -> Result<(), PushError>;
}
