//! Password hashing: argon2id with the OWASP-recommended parameters
//! (19 MiB, 2 passes, 1 lane) by default.
//!
//! Hashing is CPU- and memory-heavy, so it runs on the blocking pool behind a
//! semaphore (a burst of logins queues instead of allocating 19 MiB each at
//! once). Verifying a login for an unknown user checks the password against a
//! dummy hash made with the same parameters, so "no such user" and "wrong
//! password" take the same time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use tokio::sync::Semaphore;

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

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    dummy_hash: Arc<str>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

fn hash_with(argon: &Argon2<'_>, password: &[u8]) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hashing(e.to_string()))?;
    argon
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

impl Passwords {
    /// A hasher with `params`; fails if argon2 refuses them.
    pub fn new(params: PasswordParams) -> Result<Self, AccountError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut dummy = [0u8; 24];
        rand::rng().fill_bytes(&mut dummy);
        let dummy_hash = hash_with(&argon, &dummy)?.into();
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            argon,
            dummy_hash,
            permits: Arc::new(Semaphore::new(lanes.max(2))),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || f(&argon))
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))
    }

    /// The PHC string of a fresh argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, AccountError> {
        self.blocking(move |argon| hash_with(argon, password.as_bytes()))
            .await?
    }

    /// Whether `password` matches `hash`. With `hash == None` (unknown user)
    /// checks against the dummy hash, taking the same time, and returns false.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, AccountError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .blocking(move |argon| {
                // A stored hash that does not parse never matches; still spend
                // the time on the dummy so the answer takes as long.
                match PasswordHash::new(&hash) {
                    Ok(parsed) => argon.verify_password(password.as_bytes(), &parsed).is_ok(),
                    Err(_) => false,
                }
            })
            .await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_is_argon2id() {
        let p = Passwords::new(PasswordParams::insecure_fast()).unwrap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$"));
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

    #[test]
    fn default_params_are_owasp() {
        let d = PasswordParams::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19456, 2, 1));
    }
}
