//! Password hashing: argon2id with the OWASP-recommended parameters
//! (19 MiB, 2 passes, 1 lane) by default, on a bounded pool of worker
//! threads.
//!
//! Each worker owns one argon2 memory buffer, allocated on its first job and
//! reused for every hash after it (`hash_password_into_with_memory`), so the
//! allocator never sees a 19 MiB request per login: memory is
//! `workers x 19 MiB` however many logins arrive at once. Jobs wait in a
//! bounded queue; when it is full, [`AccountError::Busy`] is returned at
//! once (the API answers 503 `busy` with `Retry-After`), so a flood costs
//! neither memory nor unbounded latency.
//!
//! Verifying a login for an unknown user checks the password against a dummy
//! hash with the same parameters, so "no such user" and "wrong password" take
//! the same time.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::error::AccountError;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 accepts; for tests only.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// How many hashes run at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPoolConfig {
    /// Worker threads, each hashing one password at a time with its own
    /// reused memory buffer (`TINCAN_HASH_WORKERS`, default: the number of
    /// cores).
    pub workers: usize,
    /// Hashes that may wait for a worker (`TINCAN_HASH_QUEUE`, default 16
    /// per worker); beyond this, [`AccountError::Busy`].
    pub queue: usize,
}

/// Queued hashes per worker by default.
pub const DEFAULT_QUEUE_PER_WORKER: usize = 16;

impl Default for HashPoolConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            workers,
            queue: workers * DEFAULT_QUEUE_PER_WORKER,
        }
    }
}

/// Seconds a client told "busy" should wait before trying again.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Salt length in bytes.
const SALT_LEN: usize = 16;
/// Hash output length in bytes (argon2's default).
const OUTPUT_LEN: usize = 32;

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, AccountError>>,
    },
    Verify {
        password: String,
        /// `None`: spend the time on the dummy hash and answer false.
        hash: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

impl Job {
    fn abandoned(&self) -> bool {
        match self {
            Job::Hash { reply, .. } => reply.is_closed(),
            Job::Verify { reply, .. } => reply.is_closed(),
        }
    }
}

struct Shared {
    jobs: mpsc::Sender<Job>,
}

/// Hashes and verifies passwords on a bounded pool of worker threads. Clones
/// share the pool; the workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

fn hashing_err(e: impl std::fmt::Display) -> AccountError {
    AccountError::Hashing(e.to_string())
}

/// One worker's argon2 memory, grown to the largest cost it has seen and
/// then reused.
#[derive(Default)]
struct Memory {
    blocks: Vec<Block>,
}

impl Memory {
    fn for_params(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        &mut self.blocks[..needed]
    }
}

/// argon2id of `password` with `salt` into `out`, in `memory`.
fn compute(
    params: &Params,
    algorithm: Algorithm,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), argon2::Error> {
    let argon = Argon2::new(algorithm, version, params.clone());
    argon.hash_password_into_with_memory(password, salt, out, memory.for_params(params))
}

/// A fresh PHC string for `password`.
fn hash_phc(params: &Params, password: &[u8], memory: &mut Memory) -> Result<String, AccountError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    compute(
        params,
        Algorithm::Argon2id,
        Version::V0x13,
        password,
        &salt,
        &mut out,
        memory,
    )
    .map_err(hashing_err)?;
    let salt = SaltString::encode_b64(&salt).map_err(hashing_err)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hashing_err)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(hashing_err)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, computed in `memory`.
/// Anything unparsable, or with a memory cost above 4 x `max_kib`
/// (not something we wrote), never matches.
fn verify_phc(phc: &str, password: &[u8], max_kib: u32, memory: &mut Memory) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .ok()?;
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > max_kib.saturating_mul(4) {
        return None;
    }
    let expected = parsed.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
    let mut out = vec![0u8; expected.len()];
    compute(
        &params, algorithm, version, password, salt, &mut out, memory,
    )
    .ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

fn worker(shared_rx: Arc<Mutex<mpsc::Receiver<Job>>>, params: Params, dummy_salt: [u8; SALT_LEN]) {
    let mut memory = Memory::default();
    loop {
        // One worker waits on the queue at a time; the others wait for the
        // lock. Either way they sleep.
        let job = shared_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        let Some(job) = job else { return };
        if job.abandoned() {
            // The request went away while queued: nobody will read the answer.
            continue;
        }
        // A panic in argon2 must not take the worker (and its buffer) away.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_phc(&params, password.as_bytes(), &mut memory));
            }
            Job::Verify {
                password,
                hash,
                reply,
            } => {
                let matched = match hash.as_deref() {
                    Some(phc) => verify_phc(phc, password.as_bytes(), params.m_cost(), &mut memory),
                    None => None,
                };
                let matched = match matched {
                    Some(m) => m,
                    None => {
                        // Unknown user or an unusable stored hash: spend the
                        // same time, then refuse.
                        let mut out = [0u8; OUTPUT_LEN];
                        let _ = compute(
                            &params,
                            Algorithm::Argon2id,
                            Version::V0x13,
                            password.as_bytes(),
                            &dummy_salt,
                            &mut out,
                            &mut memory,
                        );
                        false
                    }
                };
                let _ = reply.send(matched);
            }
        }));
        if outcome.is_err() {
            tracing::error!("password hashing worker recovered from a panic");
            memory = Memory::default();
        }
    }
}

impl Passwords {
    /// A hasher with `params` and the default pool (one worker per core).
    pub fn new(params: PasswordParams) -> Result<Self, AccountError> {
        Self::with_pool(params, HashPoolConfig::default())
    }

    /// A hasher with `params` on a pool shaped by `pool`; fails if argon2
    /// refuses the parameters.
    pub fn with_pool(params: PasswordParams, pool: HashPoolConfig) -> Result<Self, AccountError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(hashing_err)?;
        let workers = pool.workers.max(1);
        let (jobs, rx) = mpsc::channel(pool.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut dummy_salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut dummy_salt);
        for i in 0..workers {
            let (rx, params) = (rx.clone(), params.clone());
            std::thread::Builder::new()
                .name(format!("tincan-hash-{i}"))
                .spawn(move || worker(rx, params, dummy_salt))
                .map_err(hashing_err)?;
        }
        Ok(Self {
            shared: Arc::new(Shared { jobs }),
        })
    }

    fn submit(&self, job: Job) -> Result<(), AccountError> {
        self.shared.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AccountError::Busy {
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            },
            mpsc::error::TrySendError::Closed(_) => hashing_err("hashing workers stopped"),
        })
    }

    /// The PHC string of a fresh argon2id hash of `password`;
    /// [`AccountError::Busy`] if the queue is full.
    pub async fn hash(&self, password: String) -> Result<String, AccountError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        rx.await.map_err(hashing_err)?
    }

    /// Whether `password` matches `hash`. With `hash == None` (unknown user)
    /// checks against the dummy hash, taking the same time, and returns
    /// false. [`AccountError::Busy`] if the queue is full.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, AccountError> {
        let known = hash.is_some();
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Verify {
            password,
            hash,
            reply,
        })?;
        let matched = rx.await.map_err(hashing_err)?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[tokio::test]
    async fn hash_verifies_and_is_argon2id() {
        let p = Passwords::new(PasswordParams::insecure_fast()).unwrap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{h}");
        assert!(p
            .verify("correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!p.verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
        assert!(!p
            .verify("x".into(), Some("not a hash".into()))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crate() {
        let p = Passwords::new(PasswordParams::insecure_fast()).unwrap();
        // Ours verifies with the reference API...
        let ours = p.hash("pässwörd".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password("pässwörd".as_bytes(), &parsed)
            .is_ok());
        // ...and hashes stored by the reference API (older rows, other
        // costs, argon2i) verify with ours.
        let params = Params::new(16, 2, 1, None).unwrap();
        for alg in [Algorithm::Argon2id, Algorithm::Argon2i] {
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            let theirs = Argon2::new(alg, Version::V0x13, params.clone())
                .hash_password(b"legacy", &salt)
                .unwrap()
                .to_string();
            assert!(p
                .verify("legacy".into(), Some(theirs.clone()))
                .await
                .unwrap());
            assert!(!p.verify("legacy!".into(), Some(theirs)).await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_full_queue_is_busy_not_unbounded() {
        // One worker, one slot: of many concurrent hashes with real cost,
        // some must be refused at once, and every answer is Ok or Busy.
        let p = Passwords::with_pool(
            PasswordParams {
                memory_kib: 4096,
                iterations: 2,
                parallelism: 1,
            },
            HashPoolConfig {
                workers: 1,
                queue: 1,
            },
        )
        .unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move { p.hash(format!("pw{i}")).await }));
        }
        let (mut ok, mut busy) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(AccountError::Busy { retry_after_secs }) => {
                    assert!(retry_after_secs >= 1);
                    busy += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(ok >= 1 && busy >= 1, "ok {ok} busy {busy}");
        // Once the flood is over it answers again.
        assert!(p.hash("after".into()).await.is_ok());
    }

    #[tokio::test]
    async fn abandoned_jobs_are_skipped() {
        let p = Passwords::with_pool(
            PasswordParams {
                memory_kib: 8192,
                iterations: 3,
                parallelism: 1,
            },
            HashPoolConfig {
                workers: 1,
                queue: 8,
            },
        )
        .unwrap();
        // Queue several and drop them at once; the pool is free again soon
        // after the one already running.
        for i in 0..8 {
            let fut = p.hash(format!("pw{i}"));
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), fut).await;
        }
        assert!(p.hash("next".into()).await.is_ok());
    }

    #[test]
    fn absurd_stored_costs_never_match() {
        let mut memory = Memory::default();
        let huge = "$argon2id$v=19$m=4000000,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert_eq!(verify_phc(huge, b"x", 8, &mut memory), None);
        assert!(memory.blocks.is_empty(), "nothing allocated");
    }

    #[test]
    fn default_params_are_owasp() {
        let d = PasswordParams::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19456, 2, 1));
        let pool = HashPoolConfig::default();
        assert!(pool.workers >= 1);
        assert_eq!(pool.queue, pool.workers * DEFAULT_QUEUE_PER_WORKER);
    }
}
