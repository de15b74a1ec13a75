//! One `TransactWriteItems` helper for every store.
//!
//! [`transact`] sends a transaction. Cancelled by conflicts only (another
//! transaction or write was touching one of its items: every reason is
//! `TransactionConflict` or `None`), it is sent again after a jittered
//! backoff ([`Retry`]) while its budget of attempts lasts, then
//! [`TransactError::Contention`]. Any other cancellation is handed back as
//! a [`Cancellation`] whose reasons are typed by their code
//! ([`CancellationCode`]), one per item in the order sent, with the item
//! as it was when a condition failed if the request asked for it
//! (`ReturnValuesOnConditionCheckFailure`). The caller decides: re-read
//! and try again within the same [`Retry`], answer "full" or "deleted",
//! or fail ([`Cancellation::into_error`]).

use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_sdk_dynamodb::Client;

use crate::error::DynamoError;
use crate::item::Item;

/// Sleeps a random time up to 5 ms doubled per attempt (0-based), at most
/// 200 ms ("full jitter"), so colliding writers spread out.
pub async fn backoff(attempt: u32) {
    let cap_ms: u64 = (5u64 << attempt.min(6)).min(200);
    let ms = rand::random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A bounded number of attempts with [`backoff`] between them.
///
/// ```ignore
/// let mut retry = Retry::new(8);
/// while retry.next().await {
///     // read, decide, transact(&client, items, &mut retry) ...
/// }
/// // the attempts are spent: contention
/// ```
#[derive(Debug, Clone)]
pub struct Retry {
    made: u32,
    max: u32,
}

impl Retry {
    /// At most `max_attempts` attempts.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            made: 0,
            max: max_attempts,
        }
    }

    /// Starts the next attempt: `false` if all are spent; otherwise waits
    /// the backoff after the attempt before (none before the first).
    pub async fn next(&mut self) -> bool {
        if self.made >= self.max {
            return false;
        }
        if self.made > 0 {
            backoff(self.made - 1).await;
        }
        self.made += 1;
        true
    }

    /// The attempts allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max
    }
}

/// Why DynamoDB cancelled a transaction, for one of its items: the
/// `Code` of a `CancellationReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancellationCode {
    /// `None` (or no code): this item did not cause the cancellation.
    Unaffected,
    /// `ConditionalCheckFailed`: its condition did not hold.
    ConditionalCheckFailed,
    /// `TransactionConflict`: another write was in progress on it.
    TransactionConflict,
    /// `ItemCollectionSizeLimitExceeded`.
    ItemCollectionSizeLimitExceeded,
    /// `ProvisionedThroughputExceeded`.
    ProvisionedThroughputExceeded,
    /// `ThrottlingError`.
    ThrottlingError,
    /// `ValidationError`.
    ValidationError,
    /// A code this list does not know.
    Other(String),
}

impl CancellationCode {
    /// The code DynamoDB sent (`None` if it sent none).
    pub fn from_code(code: Option<&str>) -> Self {
        match code {
            None | Some("None") => Self::Unaffected,
            Some("ConditionalCheckFailed") => Self::ConditionalCheckFailed,
            Some("TransactionConflict") => Self::TransactionConflict,
            Some("ItemCollectionSizeLimitExceeded") => Self::ItemCollectionSizeLimitExceeded,
            Some("ProvisionedThroughputExceeded") => Self::ProvisionedThroughputExceeded,
            Some("ThrottlingError") => Self::ThrottlingError,
            Some("ValidationError") => Self::ValidationError,
            Some(other) => Self::Other(other.to_owned()),
        }
    }
}

/// One item's reason in a [`Cancellation`].
#[derive(Debug, Clone, PartialEq)]
pub struct CancellationReason {
    /// Why.
    pub code: CancellationCode,
    /// The item as it was, when its condition failed and the request
    /// asked for it (`ReturnValuesOnConditionCheckFailure::AllOld`).
    pub item: Option<Item>,
}

/// A cancelled transaction: one reason per item, in the order sent.
#[derive(Debug, Clone)]
pub struct Cancellation {
    reasons: Vec<CancellationReason>,
    /// The SDK's error chain, for [`Self::into_error`].
    message: String,
}

impl Cancellation {
    /// A cancellation with these reasons (for tests of callers).
    pub fn new(reasons: Vec<CancellationReason>) -> Self {
        Self {
            reasons,
            message: "TransactionCanceledException".to_owned(),
        }
    }

    /// The reasons, one per item in the order sent.
    pub fn reasons(&self) -> &[CancellationReason] {
        &self.reasons
    }

    /// Whether item `index`'s condition failed.
    pub fn failed_check(&self, index: usize) -> bool {
        self.code(index) == Some(&CancellationCode::ConditionalCheckFailed)
    }

    /// Item `index`'s code, if DynamoDB gave one for it.
    pub fn code(&self, index: usize) -> Option<&CancellationCode> {
        self.reasons.get(index).map(|r| &r.code)
    }

    /// Item `index` as it was when its condition failed, if returned.
    pub fn item(&self, index: usize) -> Option<&Item> {
        self.reasons.get(index).and_then(|r| r.item.as_ref())
    }

    /// Whether every reason is one of `codes` or [`CancellationCode::Unaffected`].
    pub fn only(&self, codes: &[CancellationCode]) -> bool {
        self.reasons
            .iter()
            .all(|r| r.code == CancellationCode::Unaffected || codes.contains(&r.code))
    }

    /// Only conflicts with other writes: sending it again may commit.
    pub fn is_conflict(&self) -> bool {
        self.only(&[CancellationCode::TransactionConflict])
    }

    /// As an error of the call, for a cancellation the caller cannot handle.
    pub fn into_error(self) -> DynamoError {
        let err = DynamoError::Call {
            operation: "TransactWriteItems",
            message: self.message,
        };
        tracing::warn!(error = %err, "DynamoDB call failed");
        err
    }
}

/// What became of a transaction [`transact`] sent.
#[derive(Debug, Clone)]
pub enum Transacted {
    /// Written.
    Committed,
    /// Cancelled for a reason other than conflicts alone; nothing written.
    Cancelled(Cancellation),
}

/// Why [`transact`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransactError {
    /// The call failed (see [`DynamoError`]).
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    /// Conflicts with other writes outlasted the attempts.
    #[error("transaction still conflicting after {attempts} attempts")]
    Contention {
        /// The attempts made.
        attempts: u32,
    },
}

/// Sends `items` as one `TransactWriteItems`; sends them again after a
/// backoff while they are cancelled by conflicts only and `retry` has
/// attempts left (the call itself counts as the attempt `retry` last
/// started). See the module docs.
pub async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
    retry: &mut Retry,
) -> Result<Transacted, TransactError> {
    loop {
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Transacted::Committed),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(DynamoError::call("TransactWriteItems", err).into());
        };
        let cancellation = Cancellation {
            reasons: cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| CancellationReason {
                    code: CancellationCode::from_code(reason.code()),
                    item: reason.item().cloned(),
                })
                .collect(),
            message: DisplayErrorContext(&err).to_string(),
        };
        if !cancellation.is_conflict() {
            return Ok(Transacted::Cancelled(cancellation));
        }
        tracing::debug!("transaction conflicted; sending it again");
        if !retry.next().await {
            return Err(TransactError::Contention {
                attempts: retry.max_attempts(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[Option<&str>]) -> Cancellation {
        Cancellation::new(
            codes
                .iter()
                .map(|code| CancellationReason {
                    code: CancellationCode::from_code(*code),
                    item: None,
                })
                .collect(),
        )
    }

    #[test]
    fn codes_are_typed_by_their_name() {
        use CancellationCode::*;
        for (code, want) in [
            (None, Unaffected),
            (Some("None"), Unaffected),
            (Some("ConditionalCheckFailed"), ConditionalCheckFailed),
            (Some("TransactionConflict"), TransactionConflict),
            (Some("ThrottlingError"), ThrottlingError),
            (Some("ValidationError"), ValidationError),
            (
                Some("ItemCollectionSizeLimitExceeded"),
                ItemCollectionSizeLimitExceeded,
            ),
            (
                Some("ProvisionedThroughputExceeded"),
                ProvisionedThroughputExceeded,
            ),
            (Some("SomethingNew"), Other("SomethingNew".into())),
        ] {
            assert_eq!(CancellationCode::from_code(code), want);
        }
    }

    #[test]
    fn conflicts_alone_are_a_conflict_and_checks_are_told_by_index() {
        assert!(reasons(&[Some("None"), Some("TransactionConflict")]).is_conflict());
        assert!(reasons(&[None, None]).is_conflict());
        let failed = reasons(&[Some("None"), Some("ConditionalCheckFailed")]);
        assert!(!failed.is_conflict());
        assert!(failed.failed_check(1) && !failed.failed_check(0) && !failed.failed_check(5));
        assert!(failed.only(&[CancellationCode::ConditionalCheckFailed]));
        assert!(!reasons(&[Some("ValidationError")]).only(&[
            CancellationCode::ConditionalCheckFailed,
            CancellationCode::TransactionConflict
        ]));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_allows_its_attempts_with_bounded_backoff_between() {
        let mut retry = Retry::new(3);
        let start = tokio::time::Instant::now();
        assert!(retry.next().await);
        assert_eq!(start.elapsed(), Duration::ZERO, "no wait before the first");
        assert!(retry.next().await);
        assert!(retry.next().await);
        assert!(!retry.next().await);
        // At most 5 + 10 ms of backoff for two retries.
        assert!(start.elapsed() <= Duration::from_millis(15));
        assert_eq!(retry.max_attempts(), 3);
    }
}
