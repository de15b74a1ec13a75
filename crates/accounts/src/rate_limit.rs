//! Keyed attempt limits (failed logins per username and per address,
//! registrations per address), IO-free: the caller passes `now` in ms.
//!
//! Each limiter is GCRA (the generic cell rate algorithm, as in `governor`)
//! over a map of key -> "theoretical arrival time": a quota of `n` per
//! `window` lets `n` attempts through at once and then one every
//! `window / n`, and forgets a key entirely once it has been quiet for a
//! window. One `u64` per key, no timers.
//!
//! Why not `governor` itself: a failed login must be *reserved* before the
//! password is checked (so 200 concurrent guesses cannot all pass a check
//! that only fails afterwards) and *refunded* when it turns out to be right;
//! governor has no refund or peek. The memory bound is explicit: expired keys
//! are swept, and at `max_keys` the key closest to expiry is dropped (which
//! forgets the least).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// `n` attempts per `window_secs`; `n == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Attempts allowed in a burst, and per window on average.
    pub n: u32,
    /// The window, seconds.
    pub window_secs: u64,
}

impl Quota {
    /// `n` per `window_secs`.
    pub const fn new(n: u32, window_secs: u64) -> Self {
        Self { n, window_secs }
    }
}

/// Keys a limiter keeps at most, by default: about 10 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One keyed limiter.
#[derive(Debug)]
pub struct KeyedLimiter {
    /// ms between attempts once the burst is spent (`window / n`).
    interval_ms: u64,
    /// How far ahead of now the theoretical arrival time may run
    /// (`window - interval`).
    tolerance_ms: u64,
    enabled: bool,
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tat: HashMap<String, u64>,
    inserts: u64,
}

/// Sweep expired keys every this many new keys, even below `max_keys`.
const SWEEP_EVERY: u64 = 4096;

/// Whole seconds until `ms` from now, at least 1.
fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

impl KeyedLimiter {
    /// A limiter for `quota`, keeping at most `max_keys` keys.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let window_ms = quota.window_secs.saturating_mul(1000);
        let interval_ms = window_ms / u64::from(quota.n.max(1));
        Self {
            interval_ms,
            tolerance_ms: window_ms.saturating_sub(interval_ms),
            enabled: quota.n > 0 && window_ms > 0,
            max_keys: max_keys.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Takes one attempt for `key` at `now_ms`: `Ok` if allowed (and now
    /// counted), else `Err(seconds until the next one is allowed)`.
    pub fn acquire(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = state.tat.get(key).copied().unwrap_or(0).max(now_ms);
        let allowed_at = tat.saturating_sub(self.tolerance_ms);
        if allowed_at > now_ms {
            return Err(ceil_secs(allowed_at - now_ms));
        }
        let next = tat.saturating_add(self.interval_ms);
        if let Some(v) = state.tat.get_mut(key) {
            *v = next;
        } else {
            self.make_room(&mut state, now_ms);
            state.tat.insert(key.to_owned(), next);
        }
        Ok(())
    }

    /// Gives back one attempt taken by [`KeyedLimiter::acquire`] (a login
    /// that turned out right, or one that was refused for another reason).
    pub fn refund(&self, key: &str, now_ms: u64) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = state.tat.get_mut(key) {
            *tat = tat.saturating_sub(self.interval_ms);
            if *tat <= now_ms {
                state.tat.remove(key);
            }
        }
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tat
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&self, state: &mut State, now_ms: u64) {
        state.inserts += 1;
        if state.tat.len() >= self.max_keys || state.inserts.is_multiple_of(SWEEP_EVERY) {
            // A key whose arrival time has passed is as good as absent.
            state.tat.retain(|_, tat| *tat > now_ms);
        }
        if state.tat.len() >= self.max_keys {
            let oldest = state
                .tat
                .iter()
                .min_by_key(|(_, tat)| **tat)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                state.tat.remove(&k);
            }
        }
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64 (one host
/// usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The account service's limits on guessing and signing up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failed logins per username (`TINCAN_LOGIN_FAILURES_PER_USER`, default
    /// 10 per `TINCAN_LOGIN_FAILURE_WINDOW_SECS`, default 900).
    pub failed_logins_per_user: Quota,
    /// Failed logins per client address (`TINCAN_LOGIN_FAILURES_PER_ADDR`,
    /// default 50 per the same window).
    pub failed_logins_per_addr: Quota,
    /// Registrations per client address (`TINCAN_REGISTRATIONS_PER_ADDR`,
    /// default 20 per `TINCAN_REGISTRATION_WINDOW_SECS`, default 3600).
    pub registrations_per_addr: Quota,
    /// Keys each limiter keeps at most.
    pub max_keys: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            failed_logins_per_user: Quota::new(10, 900),
            failed_logins_per_addr: Quota::new(50, 900),
            registrations_per_addr: Quota::new(20, 3600),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

impl AuthLimits {
    /// No limits at all (benches).
    pub fn off() -> Self {
        Self {
            failed_logins_per_user: Quota::new(0, 0),
            failed_logins_per_addr: Quota::new(0, 0),
            registrations_per_addr: Quota::new(0, 0),
            max_keys: 1,
        }
    }
}

/// The three limiters of [`AuthLimits`].
#[derive(Debug)]
pub(crate) struct AuthLimiters {
    pub(crate) login_user: KeyedLimiter,
    pub(crate) login_addr: KeyedLimiter,
    pub(crate) register_addr: KeyedLimiter,
}

impl AuthLimiters {
    pub(crate) fn new(limits: &AuthLimits) -> Self {
        Self {
            login_user: KeyedLimiter::new(limits.failed_logins_per_user, limits.max_keys),
            login_addr: KeyedLimiter::new(limits.failed_logins_per_addr, limits.max_keys),
            register_addr: KeyedLimiter::new(limits.registrations_per_addr, limits.max_keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval_then_forgotten() {
        let l = KeyedLimiter::new(Quota::new(10, 900), 100);
        let t = 1_000_000;
        for _ in 0..10 {
            assert_eq!(l.acquire("ada", t), Ok(()));
        }
        // The 11th waits one interval (90 s).
        assert_eq!(l.acquire("ada", t), Err(90));
        assert_eq!(l.acquire("ada", t + 30_000), Err(60));
        assert_eq!(l.acquire("bob", t), Ok(()), "other keys are untouched");
        assert_eq!(l.acquire("ada", t + 90_000), Ok(()));
        assert!(l.acquire("ada", t + 90_000).is_err());
        // A quiet window later, a full burst again.
        for _ in 0..10 {
            assert_eq!(l.acquire("ada", t + 90_000 + 900_000), Ok(()));
        }
    }

    #[test]
    fn refunds_give_attempts_back() {
        let l = KeyedLimiter::new(Quota::new(2, 60), 100);
        assert!(l.acquire("k", 0).is_ok());
        assert!(l.acquire("k", 0).is_ok());
        assert!(l.acquire("k", 0).is_err());
        l.refund("k", 0);
        assert!(l.acquire("k", 0).is_ok());
        l.refund("k", 0);
        l.refund("k", 0);
        assert!(l.is_empty(), "fully refunded keys are dropped");
        l.refund("never-seen", 0);
    }

    #[test]
    fn memory_is_bounded() {
        let l = KeyedLimiter::new(Quota::new(1, 60), 50);
        for i in 0..1_000 {
            assert!(l.acquire(&format!("k{i}"), 0).is_ok());
            assert!(l.len() <= 50);
        }
        // The newest keys are still limited.
        assert!(l.acquire("k999", 0).is_err());
        // Later, expired keys are swept rather than evicting live ones.
        assert!(l.acquire("late", 61_000).is_ok());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn zero_quota_is_off() {
        let l = KeyedLimiter::new(Quota::new(0, 60), 10);
        for _ in 0..100 {
            assert!(l.acquire("k", 0).is_ok());
        }
        assert!(l.is_empty());
    }

    #[test]
    fn addresses_key_by_host_or_slash_64() {
        let v6a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(v6a), address_key(v6b));
        assert_ne!(address_key(v6a), address_key(v6c));
        assert_eq!(address_key("10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }
}
