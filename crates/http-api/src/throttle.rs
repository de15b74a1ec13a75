//! The failed-login and registration throttles of the `http-api` Lambda,
//! shared by all its containers: [`tincan_store::DynamoThrottleStore`] (one
//! item per key, conditional writes, TTL) as the account service's
//! [`ThrottleStore`].

use async_trait::async_trait;
use tincan_accounts::{ThrottleError, ThrottleStore};
use tincan_store::{DynamoThrottleStore, StoreError};

/// The throttles table as a [`ThrottleStore`].
#[derive(Debug, Clone)]
pub struct DynamoThrottles(pub DynamoThrottleStore);

fn throttle_error(err: StoreError) -> ThrottleError {
    ThrottleError::Unavailable(err.to_string())
}

#[async_trait]
impl ThrottleStore for DynamoThrottles {
    async fn get(&self, key: &str) -> Result<Option<u64>, ThrottleError> {
        self.0.get(key).await.map_err(throttle_error)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        now_ms: u64,
    ) -> Result<bool, ThrottleError> {
        self.0
            .compare_and_set(key, expected, new, now_ms)
            .await
            .map_err(throttle_error)
    }
}
