//! Messages per socket per second, as a pure function of the stored state
//! and `now`: the caller (a store) keeps a [`RateState`] with each
//! connection and applies [`MessageRate::take`] to it atomically, so every
//! gateway container sees one budget per socket.
//!
//! Two budgets, each a GCRA (the generic cell rate algorithm: a token
//! bucket held as one "theoretical arrival time"): the first admits `rate`
//! messages per second with bursts of `burst`; the second counts the
//! messages the first refused, with the same burst at half the rate. A
//! client over its budget has its extra messages refused with a
//! retry-after; one that keeps sending at twice its rate (anything over one
//! and a half times, sustained) empties the second one too and is closed.

/// A socket's message budget: `per_sec` messages per second with bursts of
/// `burst` (`TINCAN_MSG_RATE`, `TINCAN_MSG_BURST`). A `per_sec` of 0 means
/// no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRate {
    /// Sustained messages per second; 0: no limit.
    pub per_sec: u32,
    /// Messages a burst may hold (0 counts as `per_sec`).
    pub burst: u32,
}

/// One socket's two budgets as stored: each the time (µs since the epoch)
/// at which that budget is full again. 0, or any time not after now, means
/// full; [`RateState::settled`] writes those as 0, so two states that
/// behave alike compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RateState {
    /// The budget of admitted messages.
    pub admitted_until_us: u64,
    /// The budget of refused messages.
    pub refused_until_us: u64,
}

impl RateState {
    /// The state with every budget that is full at `now_ms` written as 0:
    /// [`MessageRate::take`] gives the same answer for both.
    pub fn settled(self, now_ms: u64) -> Self {
        let now = now_ms.saturating_mul(1000);
        let settle = |t: u64| if t <= now { 0 } else { t };
        Self {
            admitted_until_us: settle(self.admitted_until_us),
            refused_until_us: settle(self.refused_until_us),
        }
    }
}

/// What one incoming message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the budget: handle it.
    Pass,
    /// Over the budget: refuse it; the next may pass after this long.
    Limited {
        /// Milliseconds until a message may pass again (at least 1).
        retry_after_ms: u64,
    },
    /// Far over the budget for too long: close the socket.
    Close,
}

impl MessageRate {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_sec: 0,
        burst: 0,
    };

    /// Whether every message passes.
    pub fn is_unlimited(&self) -> bool {
        self.per_sec == 0
    }

    /// Takes one message arriving at `now_ms` from a socket whose budgets
    /// are `state`: the verdict, and the state to store (equal to
    /// `state.settled(now_ms)` when nothing changed).
    pub fn take(&self, state: RateState, now_ms: u64) -> (RateVerdict, RateState) {
        let state = state.settled(now_ms);
        if self.is_unlimited() {
            return (RateVerdict::Pass, state);
        }
        let now = now_ms.saturating_mul(1000);
        // µs between two messages at the sustained rate, and how far ahead
        // of now a budget may run before it refuses.
        let interval = 1_000_000 / u64::from(self.per_sec.max(1));
        let burst = u64::from(if self.burst == 0 {
            self.per_sec
        } else {
            self.burst
        });
        let window = interval.saturating_mul(burst);
        let next = |until: u64, step: u64| until.max(now).saturating_add(step);
        let admitted = next(state.admitted_until_us, interval);
        if admitted - now <= window {
            let state = RateState {
                admitted_until_us: admitted,
                ..state
            };
            return (RateVerdict::Pass, state);
        }
        // Refused messages drain their budget at twice the pace: a socket
        // refused half its messages for long enough is closed.
        let refused = next(state.refused_until_us, interval.saturating_mul(2));
        if refused - now > window.saturating_mul(2) {
            return (RateVerdict::Close, state);
        }
        // The admitted budget has room again once it runs `window` ahead
        // of the clock no more.
        let wait_us = admitted - now - window;
        let retry_after_ms = wait_us.div_ceil(1000).max(1);
        let state = RateState {
            refused_until_us: refused,
            ..state
        };
        (RateVerdict::Limited { retry_after_ms }, state)
    }

    /// About when the last message was admitted to a socket whose budget
    /// [`take`](Self::take) left as `state` (ms since the epoch): exact for
    /// a socket that sends within its rate (a keepalive `ping`), at most
    /// the burst window (`burst / per_sec` seconds) late after a burst.
    /// `None` if it never had a message admitted, or there is no limit
    /// (the budget then records nothing).
    pub fn last_admitted_ms(&self, state: RateState) -> Option<u64> {
        if self.is_unlimited() || state.admitted_until_us == 0 {
            return None;
        }
        let interval = 1_000_000 / u64::from(self.per_sec.max(1));
        Some(state.admitted_until_us.saturating_sub(interval) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_900_000_000_000;

    fn run(rate: MessageRate, times: impl IntoIterator<Item = u64>) -> Vec<RateVerdict> {
        let mut state = RateState::default();
        times
            .into_iter()
            .map(|t| {
                let (verdict, next) = rate.take(state, t);
                state = next;
                verdict
            })
            .collect()
    }

    #[test]
    fn a_burst_passes_then_the_41st_is_limited_then_the_socket_is_closed() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        let verdicts = run(rate, std::iter::repeat_n(T0, 81));
        assert!(verdicts[..40].iter().all(|v| *v == RateVerdict::Pass));
        for v in &verdicts[40..80] {
            let RateVerdict::Limited { retry_after_ms } = v else {
                panic!("expected Limited, got {v:?}");
            };
            // One message's worth of refill: 50 ms at 20 per second.
            assert_eq!(*retry_after_ms, 50);
        }
        assert_eq!(verdicts[80], RateVerdict::Close);
    }

    #[test]
    fn the_sustained_rate_passes_forever() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        let verdicts = run(rate, (0..10_000).map(|i| T0 + i * 50));
        assert!(verdicts.iter().all(|v| *v == RateVerdict::Pass));
    }

    #[test]
    fn twice_the_rate_is_refused_then_closed() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        // 40 per second, a message every 25 ms: the burst, then every other
        // message refused, then closed once the refused budget runs dry
        // (after about 2 + 4 s).
        let verdicts = run(rate, (0..2400).map(|i| T0 + i * 25));
        let closed = verdicts.iter().position(|v| *v == RateVerdict::Close);
        let closed = closed.expect("closed");
        assert!((200..300).contains(&closed), "closed at message {closed}");
        assert!(verdicts[..closed]
            .iter()
            .any(|v| matches!(v, RateVerdict::Limited { .. })));
    }

    #[test]
    fn a_socket_somewhat_over_its_rate_is_refused_but_never_closed() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        // 28 per second (1.4 times) for ten minutes.
        let verdicts = run(rate, (0..16_800).map(|i| T0 + i * 1000 / 28));
        assert!(!verdicts.contains(&RateVerdict::Close));
        assert!(verdicts
            .iter()
            .any(|v| matches!(v, RateVerdict::Limited { .. })));
    }

    #[test]
    fn the_last_admitted_message_is_read_back_from_the_budget() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        assert_eq!(rate.last_admitted_ms(RateState::default()), None);
        // Pings every 25 s: exact.
        let mut state = RateState::default();
        for t in [T0, T0 + 25_000, T0 + 50_000] {
            state = rate.take(state, t).1;
        }
        assert_eq!(rate.last_admitted_ms(state), Some(T0 + 50_000));
        // Ten at once: within the burst window (2 s) after the last.
        for _ in 0..10 {
            state = rate.take(state, T0 + 60_000).1;
        }
        let seen = rate.last_admitted_ms(state).unwrap();
        assert!((T0 + 60_000..=T0 + 62_000).contains(&seen), "{seen}");
        assert_eq!(MessageRate::UNLIMITED.last_admitted_ms(state), None);
    }

    #[test]
    fn a_pause_refills_the_budget() {
        let rate = MessageRate {
            per_sec: 20,
            burst: 40,
        };
        let mut state = RateState::default();
        for _ in 0..45 {
            state = rate.take(state, T0).1;
        }
        // Two seconds later both budgets are full again, and settle to 0.
        assert_eq!(state.settled(T0 + 2000), RateState::default());
        assert_eq!(rate.take(state, T0 + 2000).0, RateVerdict::Pass);
    }

    #[test]
    fn zero_means_no_limit() {
        let verdicts = run(MessageRate::UNLIMITED, std::iter::repeat_n(T0, 10_000));
        assert!(verdicts.iter().all(|v| *v == RateVerdict::Pass));
    }
}
