//! Why a DynamoDB call failed.

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};

/// Why a DynamoDB call failed. The stores wrap it in their own error
/// (`StoreError::Unavailable`, `FleetError::Backend`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoError {
    /// The call failed: DynamoDB unreachable, the request refused, a
    /// transaction cancelled for a reason its caller does not handle.
    /// `message` is the SDK's error chain (e.g. "dispatch failure: ...
    /// connection refused"); the SDK never puts credentials in it.
    #[error("DynamoDB {operation}: {message}")]
    Call {
        /// The DynamoDB operation, e.g. `PutItem`.
        operation: &'static str,
        /// The SDK's error chain.
        message: String,
    },
    /// A request we built is missing a required field: a bug, reported
    /// rather than a panic.
    #[error("DynamoDB request could not be built: {0}")]
    Build(#[from] BuildError),
    /// A table did not become `ACTIVE` in time.
    #[error("table {table} not ACTIVE after {secs}s")]
    NotActive {
        /// The table.
        table: String,
        /// How long we waited.
        secs: u64,
    },
}

impl DynamoError {
    /// An SDK failure of `operation`, logged as a warning.
    pub fn call<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let err = Self::Call {
            operation,
            message: DisplayErrorContext(&err).to_string(),
        };
        tracing::warn!(error = %err, "DynamoDB call failed");
        err
    }
}
