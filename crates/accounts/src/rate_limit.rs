//! Keyed attempt limits (failed logins per user and address, per user and
//! per address; registrations per address), with the state in a
//! [`ThrottleStore`] so that every process sharing the store shares the
//! counts.
//!
//! Each limit is GCRA (the generic cell rate algorithm, as in `governor`):
//! a key holds one number, its "theoretical arrival time" (TAT, ms). A quota
//! of `n` per `window` lets `n` attempts through at once and then one every
//! `window / n`; a key whose TAT has passed is as good as absent, so the
//! store may forget it then (the DynamoDB store's TTL does). The arithmetic
//! ([`Gcra`]) is IO-free; [`Throttle`] drives it over a store with
//! compare-and-set, retried a bounded number of times when another process
//! wrote the key in between.
//!
//! Why not `governor` itself: a failed login must be *reserved* before the
//! password is checked (so 200 concurrent guesses cannot all pass a check
//! that only fails afterwards) and *refunded* when it turns out to be right;
//! governor has no refund or peek, and keeps its state in memory only.
//!
//! Stores: [`MemoryThrottleStore`] (one process: the local stack; its memory
//! is bounded, expired keys swept and, at `max_keys`, the key closest to
//! expiry dropped) and, in the Lambdas, a DynamoDB table (one item per key,
//! conditional writes, a TTL attribute; `tincan_store::DynamoThrottleStore`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

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

/// Keys the in-memory store keeps at most, by default: about 10 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Whole seconds until `ms` from now, at least 1.
fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// The GCRA arithmetic of one quota: no IO, no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// ms between attempts once the burst is spent (`window / n`).
    interval_ms: u64,
    /// How far ahead of now the TAT may run (`window - interval`).
    tolerance_ms: u64,
    enabled: bool,
}

impl Gcra {
    /// The arithmetic of `quota`.
    pub fn new(quota: Quota) -> Self {
        let window_ms = quota.window_secs.saturating_mul(1000);
        let interval_ms = window_ms / u64::from(quota.n.max(1));
        Self {
            interval_ms,
            tolerance_ms: window_ms.saturating_sub(interval_ms),
            enabled: quota.n > 0 && window_ms > 0,
        }
    }

    /// Whether the quota limits anything.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// One attempt at `now_ms` against a key whose TAT is `tat` (`None`:
    /// absent): `Ok(new TAT)` if allowed, else `Err(seconds to wait)`.
    pub fn acquire(&self, tat: Option<u64>, now_ms: u64) -> Result<u64, u64> {
        let tat = tat.unwrap_or(0).max(now_ms);
        let allowed_at = tat.saturating_sub(self.tolerance_ms);
        if allowed_at > now_ms {
            return Err(ceil_secs(allowed_at - now_ms));
        }
        Ok(tat.saturating_add(self.interval_ms))
    }

    /// The TAT after giving one attempt back, or `None` if the key has
    /// nothing left to remember at `now_ms`.
    pub fn refund(&self, tat: u64, now_ms: u64) -> Option<u64> {
        let tat = tat.saturating_sub(self.interval_ms);
        (tat > now_ms).then_some(tat)
    }
}

/// Why a throttle store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// The backing store could not be reached or refused the call.
    #[error("throttle store unavailable: {0}")]
    Unavailable(String),
    /// The key kept changing under us ([`CAS_ATTEMPTS`] writes lost).
    #[error("throttle key contended: {0}")]
    Contention(String),
}

/// The state of keyed limits: one `u64` (a TAT, ms since the epoch) per
/// key, changed only by compare-and-set. A value at or before now means
/// nothing, so a store may forget it (and should, eventually).
#[async_trait]
pub trait ThrottleStore: Send + Sync + std::fmt::Debug {
    /// The value of `key`, if any (strongly consistent).
    async fn get(&self, key: &str) -> Result<Option<u64>, ThrottleError>;

    /// Sets `key` to `new` if its value is still `expected` (`None`:
    /// absent). `Ok(false)`: it was not, nothing written. `now_ms` is the
    /// caller's clock: a `new` at or before it means "forget the key", and
    /// any key whose value is at or before it may be forgotten.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        now_ms: u64,
    ) -> Result<bool, ThrottleError>;
}

/// How many times a lost compare-and-set is retried before
/// [`ThrottleError::Contention`].
pub const CAS_ATTEMPTS: usize = 8;

/// Keyed limits over a shared [`ThrottleStore`].
#[derive(Debug, Clone)]
pub struct Throttle {
    store: Arc<dyn ThrottleStore>,
}

impl Throttle {
    /// Limits kept in `store`.
    pub fn new(store: Arc<dyn ThrottleStore>) -> Self {
        Self { store }
    }

    /// Limits kept in this process's memory.
    pub fn in_memory(max_keys: usize) -> Self {
        Self::new(Arc::new(MemoryThrottleStore::new(max_keys)))
    }

    /// Takes one attempt for `key` under `quota` at `now_ms`: `Ok(Ok(()))`
    /// if allowed (and now counted), `Ok(Err(seconds until the next one is
    /// allowed))` if not.
    pub async fn acquire(
        &self,
        key: &str,
        quota: Quota,
        now_ms: u64,
    ) -> Result<Result<(), u64>, ThrottleError> {
        let gcra = Gcra::new(quota);
        if !gcra.enabled() {
            return Ok(Ok(()));
        }
        let mut current = self.store.get(key).await?;
        for _ in 0..CAS_ATTEMPTS {
            let next = match gcra.acquire(current, now_ms) {
                Ok(next) => next,
                Err(wait) => return Ok(Err(wait)),
            };
            if self
                .store
                .compare_and_set(key, current, next, now_ms)
                .await?
            {
                return Ok(Ok(()));
            }
            current = self.store.get(key).await?;
        }
        Err(ThrottleError::Contention(key.to_owned()))
    }

    /// Gives back one attempt taken by [`Throttle::acquire`] (a login that
    /// turned out right, or one that was refused for another reason).
    pub async fn refund(&self, key: &str, quota: Quota, now_ms: u64) -> Result<(), ThrottleError> {
        let gcra = Gcra::new(quota);
        if !gcra.enabled() {
            return Ok(());
        }
        let mut current = self.store.get(key).await?;
        for _ in 0..CAS_ATTEMPTS {
            let Some(tat) = current else { return Ok(()) };
            // Nothing left to remember: `now` is as good as absent.
            let next = gcra.refund(tat, now_ms).unwrap_or(now_ms.min(tat));
            if next == tat
                || self
                    .store
                    .compare_and_set(key, current, next, now_ms)
                    .await?
            {
                return Ok(());
            }
            current = self.store.get(key).await?;
        }
        Err(ThrottleError::Contention(key.to_owned()))
    }
}

/// A [`ThrottleStore`] in this process's memory, holding at most
/// `max_keys` keys.
#[derive(Debug)]
pub struct MemoryThrottleStore {
    max_keys: usize,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    tat: HashMap<String, u64>,
    inserts: u64,
}

/// Sweep expired keys every this many new keys, even below `max_keys`.
const SWEEP_EVERY: u64 = 4096;

impl MemoryThrottleStore {
    /// An empty store keeping at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        Self {
            max_keys: max_keys.max(1),
            state: Mutex::new(MemoryState::default()),
        }
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().tat.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more key at `now_ms`.
    fn make_room(&self, state: &mut MemoryState, now_ms: u64) {
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

#[async_trait]
impl ThrottleStore for MemoryThrottleStore {
    async fn get(&self, key: &str) -> Result<Option<u64>, ThrottleError> {
        Ok(self.lock().tat.get(key).copied())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        now_ms: u64,
    ) -> Result<bool, ThrottleError> {
        let mut state = self.lock();
        if state.tat.get(key).copied() != expected {
            return Ok(false);
        }
        if new <= now_ms {
            state.tat.remove(key);
        } else if let Some(v) = state.tat.get_mut(key) {
            *v = new;
        } else {
            self.make_room(&mut state, now_ms);
            state.tat.insert(key.to_owned(), new);
        }
        Ok(true)
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

/// The throttle keys of the account service, one namespace each.
pub mod keys {
    /// Failed logins for a username (lowercased) from anywhere.
    pub fn login_user(username_key: &str) -> String {
        format!("login-user#{username_key}")
    }

    /// Failed logins for a username from one address (`None`: not known,
    /// e.g. a password check of a signed-in user: one bucket of its own).
    pub fn login_user_addr(username_key: &str, address: Option<&str>) -> String {
        format!("login-user-addr#{username_key}#{}", address.unwrap_or("-"))
    }

    /// Failed logins from an address, for any username.
    pub fn login_addr(address: &str) -> String {
        format!("login-addr#{address}")
    }

    /// Registrations from an address.
    pub fn register_addr(address: &str) -> String {
        format!("register-addr#{address}")
    }
}

/// The account service's limits on guessing and signing up.
///
/// Failed logins count in three buckets at once: per (username, address),
/// tight, so a guesser is stopped quickly; per username, looser, so guesses
/// spread over many addresses are stopped too, but ten strangers' guesses do
/// not lock the owner out from their own address; per address, for one
/// address trying many usernames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failed logins per username from one client address
    /// (`TINCAN_LOGIN_FAILURES_PER_USER_ADDR`, default 10 per
    /// `TINCAN_LOGIN_FAILURE_WINDOW_SECS`, default 900).
    pub failed_logins_per_user_addr: Quota,
    /// Failed logins per username from all addresses together
    /// (`TINCAN_LOGIN_FAILURES_PER_USER`, default 100 per the same window).
    pub failed_logins_per_user: Quota,
    /// Failed logins per client address (`TINCAN_LOGIN_FAILURES_PER_ADDR`,
    /// default 50 per the same window).
    pub failed_logins_per_addr: Quota,
    /// Registrations per client address (`TINCAN_REGISTRATIONS_PER_ADDR`,
    /// default 20 per `TINCAN_REGISTRATION_WINDOW_SECS`, default 3600).
    pub registrations_per_addr: Quota,
    /// Keys the in-memory store keeps at most.
    pub max_keys: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            failed_logins_per_user_addr: Quota::new(10, 900),
            failed_logins_per_user: Quota::new(100, 900),
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
            failed_logins_per_user_addr: Quota::new(0, 0),
            failed_logins_per_user: Quota::new(0, 0),
            failed_logins_per_addr: Quota::new(0, 0),
            registrations_per_addr: Quota::new(0, 0),
            max_keys: 1,
        }
    }
}

/// One conformance suite for every [`ThrottleStore`] (feature
/// `test-support`): the in-memory store in this crate's tests, the DynamoDB
/// one against moto in `tincan-http-api`'s. Each check uses keys of its own,
/// so one store can serve them all.
#[cfg(feature = "test-support")]
pub mod conformance {
    use super::*;

    fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// Every check, in turn; panics on the first failure.
    pub async fn run_all(store: Arc<dyn ThrottleStore>) {
        compare_and_set_is_conditional(store.as_ref()).await;
        burst_then_wait_then_refund(store.clone()).await;
        two_throttles_on_one_store_share_the_count(store.clone()).await;
        concurrent_attempts_never_overrun(store).await;
    }

    /// Compare-and-set writes only over the value expected.
    pub async fn compare_and_set_is_conditional(store: &dyn ThrottleStore) {
        let k = unique("cas");
        let now = 1_000_000;
        assert_eq!(store.get(&k).await.unwrap(), None);
        assert!(store
            .compare_and_set(&k, None, now + 10, now)
            .await
            .unwrap());
        assert_eq!(store.get(&k).await.unwrap(), Some(now + 10));
        assert!(!store
            .compare_and_set(&k, None, now + 20, now)
            .await
            .unwrap());
        assert!(!store
            .compare_and_set(&k, Some(now + 11), now + 20, now)
            .await
            .unwrap());
        assert!(store
            .compare_and_set(&k, Some(now + 10), now + 20, now)
            .await
            .unwrap());
        assert_eq!(store.get(&k).await.unwrap(), Some(now + 20));
    }

    /// A quota of 3 per 60 s: three at once, the fourth waits 20 s, a refund
    /// gives one back.
    pub async fn burst_then_wait_then_refund(store: Arc<dyn ThrottleStore>) {
        let t = Throttle::new(store);
        let k = unique("burst");
        let q = Quota::new(3, 60);
        let now = 5_000_000;
        for _ in 0..3 {
            assert_eq!(t.acquire(&k, q, now).await.unwrap(), Ok(()));
        }
        assert_eq!(t.acquire(&k, q, now).await.unwrap(), Err(20));
        assert_eq!(t.acquire(&k, q, now + 5_000).await.unwrap(), Err(15));
        t.refund(&k, q, now).await.unwrap();
        assert_eq!(t.acquire(&k, q, now).await.unwrap(), Ok(()));
        assert_eq!(t.acquire(&k, q, now + 20_000).await.unwrap(), Ok(()));
        // A quiet window later, a full burst again.
        for _ in 0..3 {
            assert_eq!(t.acquire(&k, q, now + 200_000).await.unwrap(), Ok(()));
        }
    }

    /// Two throttles (two processes) over one store reach the limit at the
    /// shared count.
    pub async fn two_throttles_on_one_store_share_the_count(store: Arc<dyn ThrottleStore>) {
        let a = Throttle::new(store.clone());
        let b = Throttle::new(store);
        let k = unique("shared");
        let q = Quota::new(4, 900);
        let now = 9_000_000;
        let mut allowed = 0;
        for i in 0..8 {
            let t = if i % 2 == 0 { &a } else { &b };
            if t.acquire(&k, q, now).await.unwrap().is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 4);
    }

    /// Twenty concurrent attempts against a quota of 5 let exactly 5 through.
    pub async fn concurrent_attempts_never_overrun(store: Arc<dyn ThrottleStore>) {
        let k = unique("race");
        let q = Quota::new(5, 900);
        let now = 7_000_000;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let t = Throttle::new(store.clone());
                let k = k.clone();
                tokio::spawn(async move { t.acquire(&k, q, now).await })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(Ok(())) => allowed += 1,
                Ok(Err(_)) | Err(ThrottleError::Contention(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(allowed, 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_burst_then_one_per_interval_then_forgotten() {
        let g = Gcra::new(Quota::new(10, 900));
        let t = 1_000_000;
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(g.acquire(tat, t).unwrap());
        }
        // The 11th waits one interval (90 s).
        assert_eq!(g.acquire(tat, t), Err(90));
        assert_eq!(g.acquire(tat, t + 30_000), Err(60));
        assert!(g.acquire(None, t).is_ok(), "other keys are untouched");
        tat = Some(g.acquire(tat, t + 90_000).unwrap());
        assert!(g.acquire(tat, t + 90_000).is_err());
        // Forgotten a quiet window later: refunding shows nothing left.
        assert_eq!(g.refund(tat.unwrap(), t + 90_000 + 900_000), None);
    }

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        conformance::run_all(Arc::new(MemoryThrottleStore::new(1_000))).await;
    }

    #[tokio::test]
    async fn refunds_give_attempts_back_and_drop_the_key() {
        let store = Arc::new(MemoryThrottleStore::new(100));
        let t = Throttle::new(store.clone());
        let q = Quota::new(2, 60);
        assert_eq!(t.acquire("k", q, 0).await.unwrap(), Ok(()));
        assert_eq!(t.acquire("k", q, 0).await.unwrap(), Ok(()));
        assert!(t.acquire("k", q, 0).await.unwrap().is_err());
        t.refund("k", q, 0).await.unwrap();
        assert_eq!(t.acquire("k", q, 0).await.unwrap(), Ok(()));
        t.refund("k", q, 0).await.unwrap();
        t.refund("k", q, 0).await.unwrap();
        assert!(store.is_empty(), "fully refunded keys are dropped");
        t.refund("never-seen", q, 0).await.unwrap();
    }

    #[tokio::test]
    async fn memory_is_bounded() {
        let store = Arc::new(MemoryThrottleStore::new(50));
        let t = Throttle::new(store.clone());
        let q = Quota::new(1, 60);
        for i in 0..1_000 {
            assert!(t.acquire(&format!("k{i}"), q, 0).await.unwrap().is_ok());
            assert!(store.len() <= 50);
        }
        // The newest keys are still limited.
        assert!(t.acquire("k999", q, 0).await.unwrap().is_err());
        // Later, expired keys are swept rather than evicting live ones.
        assert!(t.acquire("late", q, 61_000).await.unwrap().is_ok());
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn zero_quota_is_off() {
        let store = Arc::new(MemoryThrottleStore::new(10));
        let t = Throttle::new(store.clone());
        for _ in 0..100 {
            assert!(t.acquire("k", Quota::new(0, 60), 0).await.unwrap().is_ok());
        }
        assert!(store.is_empty());
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
