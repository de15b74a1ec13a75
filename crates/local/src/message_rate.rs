//! Messages per socket per second: a token bucket (GCRA, from `governor`)
//! of `rate` per second with room for a burst, and a second bucket of the
//! same size that counts the messages refused by the first. A client over
//! its budget has its extra messages refused; one that keeps sending more
//! than twice its budget empties the second bucket too and is cut off.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the budget: invoke the backend.
    Pass,
    /// Over the budget: refuse it; the next one may pass after this long.
    Limited { retry_after: Duration },
    /// Far over the budget for too long: close the socket.
    Abusive,
}

/// One socket's message budget.
#[derive(Debug)]
pub(crate) struct MessageRate {
    buckets: Option<(DefaultDirectRateLimiter, DefaultDirectRateLimiter)>,
}

impl MessageRate {
    /// `rate` messages per second with bursts of `burst`; a `rate` of 0
    /// means no limit.
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let buckets = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            let quota = Quota::per_second(rate).allow_burst(burst);
            (RateLimiter::direct(quota), RateLimiter::direct(quota))
        });
        Self { buckets }
    }

    /// Takes one message from the budget.
    pub(crate) fn check(&self) -> Verdict {
        let Some((budget, refused)) = &self.buckets else {
            return Verdict::Pass;
        };
        match budget.check() {
            Ok(()) => Verdict::Pass,
            Err(not_until) => {
                if refused.check().is_err() {
                    return Verdict::Abusive;
                }
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                Verdict::Limited { retry_after }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_messages_are_refused_then_the_socket_is_abusive() {
        let rate = MessageRate::new(1, 5);
        for _ in 0..5 {
            assert_eq!(rate.check(), Verdict::Pass);
        }
        for _ in 0..5 {
            match rate.check() {
                Verdict::Limited { retry_after } => {
                    assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}")
                }
                other => panic!("expected Limited, got {other:?}"),
            }
        }
        assert_eq!(rate.check(), Verdict::Abusive);
    }

    #[test]
    fn zero_means_no_limit() {
        let rate = MessageRate::new(0, 0);
        for _ in 0..10_000 {
            assert_eq!(rate.check(), Verdict::Pass);
        }
    }
}
