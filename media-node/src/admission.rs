//! The front door: every datagram or TCP frame from a TURN client passes
//! through [`Admission::inspect`] before the webrtc-rs TURN server sees it.
//!
//! It does what the `turn` crate does not: it refuses wrong, expired and
//! foreign credentials with 401 Unauthorized (the crate answers 400), refuses
//! new allocations while the node drains (403) or when a user holds too many
//! (486), counts auth failures, and drops what is neither STUN nor
//! ChannelData before it reaches the crate. No IO and no clock: the caller
//! passes the packet and `now`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use stun::attributes::{
    ATTR_FINGERPRINT, ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME,
};
use stun::error_code::{
    ErrorCode, ErrorCodeAttribute, CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, CODE_UNAUTHORIZED,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, MessageType, Setter, CLASS_ERROR_RESPONSE, CLASS_REQUEST, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};
use stun::textattrs::TextAttribute;
use tincan_turn_credentials::{parse_username, TurnSecret};
use tokio::sync::Notify;

use crate::metrics::{AuthFailure, Metrics};

const STUN_HEADER: usize = 20;
/// The lifetime the TURN server grants when a request names none.
const DEFAULT_LIFETIME_SECS: u32 = 600;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// What to do with one inbound packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the TURN server.
    Pass,
    /// Hand it to the TURN server: an authenticated Allocate by `user`.
    PassAllocate { user: String },
    /// Hand these bytes to the TURN server instead (the request re-signed
    /// with its LIFETIME capped), with the Allocate's user if any.
    Rewrite {
        packet: Vec<u8>,
        user: Option<String>,
    },
    /// Answer with these bytes and drop the packet.
    Reply(Vec<u8>),
    /// Drop it silently.
    Drop,
}

/// Credentials, drain state and per-user allocation counts, shared by every
/// listener of one node.
#[derive(Debug)]
pub(crate) struct Admission {
    secret: TurnSecret,
    realm: String,
    max_per_user: u32,
    /// Longest allocation lifetime granted, in seconds (the crate's own cap
    /// is 3600).
    max_lifetime_secs: u32,
    draining: AtomicBool,
    per_user: Mutex<HashMap<String, u32>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Woken whenever an allocation ends.
    pub(crate) released: Notify,
}

impl Admission {
    pub(crate) fn new(
        secret: TurnSecret,
        realm: String,
        max_per_user: u32,
        max_lifetime_secs: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            secret,
            realm,
            max_per_user,
            max_lifetime_secs,
            draining: AtomicBool::new(false),
            per_user: Mutex::new(HashMap::new()),
            metrics,
            released: Notify::new(),
        }
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.store(1, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The long-term key MD5(username:realm:password) for a REST-API
    /// username, if it is well formed and not expired at `now`.
    pub(crate) fn key_for(
        &self,
        username: &str,
        realm: &str,
        now: u64,
    ) -> Result<Vec<u8>, AuthFailure> {
        let (expiry, _user) = parse_username(username).map_err(|_| AuthFailure::Malformed)?;
        if now >= expiry {
            return Err(AuthFailure::Expired);
        }
        let password = self.secret.password_for(username);
        Ok(MessageIntegrity::new_long_term_integrity(
            username.to_owned(),
            realm.to_owned(),
            password,
        )
        .0)
    }

    /// Decides the fate of one packet from a client.
    pub(crate) fn inspect(&self, packet: &[u8], now: u64) -> Verdict {
        let Some(&first) = packet.first() else {
            return self.malformed();
        };
        match first >> 6 {
            // ChannelData (channel numbers 0x4000..=0x7FFF): the hot path,
            // checked by the server against the sender's allocation.
            1 => return Verdict::Pass,
            0 if packet.len() >= STUN_HEADER && packet[4..8] == MAGIC_COOKIE => {}
            _ => return self.malformed(),
        }
        let mut m = Message::new();
        m.raw = packet.to_vec();
        if m.decode().is_err() {
            return self.malformed();
        }
        let method = m.typ.method;
        let authenticated = [
            METHOD_ALLOCATE,
            METHOD_REFRESH,
            METHOD_CREATE_PERMISSION,
            METHOD_CHANNEL_BIND,
        ];
        if m.typ.class != CLASS_REQUEST || !authenticated.contains(&method) {
            return Verdict::Pass;
        }
        if method == METHOD_ALLOCATE && self.is_draining() {
            self.metrics
                .drain_rejections
                .fetch_add(1, Ordering::Relaxed);
            return error_reply(&m, CODE_FORBIDDEN, &[]);
        }
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            // The server answers 401 with a fresh NONCE and our REALM.
            return Verdict::Pass;
        }
        let (Ok(username), Ok(realm), Ok(nonce)) = (
            TextAttribute::get_from_as(&m, ATTR_USERNAME),
            TextAttribute::get_from_as(&m, ATTR_REALM),
            TextAttribute::get_from_as(&m, ATTR_NONCE),
        ) else {
            // Incomplete: the server answers 400 Bad Request.
            return Verdict::Pass;
        };
        let key = self.key_for(&username.text, &self.realm, now);
        let checked = key
            .clone()
            .and_then(|key| {
                MessageIntegrity(key)
                    .check(&mut m)
                    .map_err(|_| AuthFailure::BadIntegrity)
            })
            .and_then(|()| {
                if realm.text == self.realm {
                    Ok(())
                } else {
                    Err(AuthFailure::BadIntegrity)
                }
            });
        if let Err(why) = checked {
            self.metrics.auth_failure(why);
            tracing::debug!(?why, username = %username.text, "TURN credential refused");
            let our_realm = TextAttribute::new(ATTR_REALM, self.realm.clone());
            return error_reply(
                &m,
                CODE_UNAUTHORIZED,
                &[Box::new(our_realm), Box::new(nonce)],
            );
        }
        let rewritten = match (&key, method == METHOD_ALLOCATE || method == METHOD_REFRESH) {
            (Ok(key), true) => self.cap_lifetime(&m, key),
            _ => None,
        };
        if method != METHOD_ALLOCATE {
            return match rewritten {
                Some(packet) => Verdict::Rewrite { packet, user: None },
                None => Verdict::Pass,
            };
        }
        let user = match parse_username(&username.text) {
            Ok((_, user)) => user.to_owned(),
            Err(_) => return self.malformed(),
        };
        if self.max_per_user > 0 && self.allocations_of(&user) >= self.max_per_user {
            self.metrics
                .quota_rejections
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%user, "TURN allocation quota reached");
            return error_reply(&m, CODE_ALLOC_QUOTA_REACHED, &[]);
        }
        match rewritten {
            Some(packet) => Verdict::Rewrite {
                packet,
                user: Some(user),
            },
            None => Verdict::PassAllocate { user },
        }
    }

    /// The request re-signed with LIFETIME capped at our maximum, when it
    /// asks for more (or for the crate's 600 s default, above our maximum).
    /// A zero lifetime (deallocate) is left alone.
    fn cap_lifetime(&self, m: &Message, key: &[u8]) -> Option<Vec<u8>> {
        let requested = match m.get(ATTR_LIFETIME) {
            Ok(v) => u32::from_be_bytes(v.get(..4)?.try_into().ok()?),
            Err(_) => DEFAULT_LIFETIME_SECS,
        };
        // The crate grants only lifetimes below 3600 s (else its 600 s
        // default).
        let cap = self.max_lifetime_secs.min(3599);
        if requested == 0 || requested <= cap {
            return None;
        }
        let mut out = Message::new();
        out.typ = m.typ;
        out.transaction_id = m.transaction_id;
        out.write_header();
        let mut had_lifetime = false;
        for attr in &m.attributes.0 {
            match attr.typ {
                ATTR_MESSAGE_INTEGRITY => break,
                ATTR_LIFETIME => {
                    had_lifetime = true;
                    out.add(ATTR_LIFETIME, &cap.to_be_bytes());
                }
                typ => out.add(typ, &attr.value),
            }
        }
        if !had_lifetime {
            out.add(ATTR_LIFETIME, &cap.to_be_bytes());
        }
        MessageIntegrity(key.to_vec()).add_to(&mut out).ok()?;
        if m.contains(ATTR_FINGERPRINT) {
            FINGERPRINT.add_to(&mut out).ok()?;
        }
        Some(out.raw)
    }

    fn malformed(&self) -> Verdict {
        self.metrics
            .malformed_packets
            .fetch_add(1, Ordering::Relaxed);
        Verdict::Drop
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // The map stays consistent even if a holder panicked.
        self.per_user.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn allocations_of(&self, user: &str) -> u32 {
        self.users().get(user).copied().unwrap_or(0)
    }

    /// An allocation for `user` (if known) got its relay socket.
    pub(crate) fn acquire(&self, user: Option<&str>) {
        self.metrics.allocations.fetch_add(1, Ordering::Relaxed);
        if let Some(user) = user {
            *self.users().entry(user.to_owned()).or_insert(0) += 1;
        }
    }

    /// The allocation from a matching [`Admission::acquire`] ended.
    pub(crate) fn release(&self, user: Option<&str>) {
        self.metrics.allocations.fetch_sub(1, Ordering::Relaxed);
        if let Some(user) = user {
            let mut users = self.users();
            if let Some(n) = users.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    users.remove(user);
                }
            }
        }
        self.released.notify_waiters();
    }
}

fn error_reply(request: &Message, code: ErrorCode, extra: &[Box<dyn Setter>]) -> Verdict {
    let typ = MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE);
    let error = ErrorCodeAttribute {
        code,
        reason: Vec::new(),
    };
    let head: [&dyn Setter; 3] = [&request.transaction_id, &typ, &error];
    let mut msg = Message::new();
    msg.write_header();
    for setter in head.into_iter().chain(extra.iter().map(|s| s.as_ref())) {
        if setter.add_to(&mut msg).is_err() {
            return Verdict::Drop;
        }
    }
    Verdict::Reply(msg.raw)
}

#[cfg(test)]
mod tests {
    //! Bounded random ("fuzz-style") checks of everything the front door
    //! parses itself: STUN headers, attributes and REST-API usernames.

    use rand::{Rng, SeedableRng};
    use stun::agent::TransactionId;
    use stun::message::Setter;
    use stun::textattrs::TextAttribute;

    use super::*;

    fn admission() -> Admission {
        Admission::new(
            TurnSecret::new("fuzz"),
            "tincan".into(),
            2,
            3600,
            Arc::new(Metrics::default()),
        )
    }

    fn allocate(username: &str, password: &str) -> Vec<u8> {
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
            Box::new(TextAttribute::new(ATTR_REALM, "tincan".into())),
            Box::new(TextAttribute::new(ATTR_NONCE, "n0nce".into())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                username.into(),
                "tincan".into(),
                password.into(),
            )),
        ];
        let mut m = Message::new();
        m.build(&setters).expect("valid message");
        m.raw
    }

    fn code_of(verdict: &Verdict) -> Option<u16> {
        let Verdict::Reply(raw) = verdict else {
            return None;
        };
        let mut m = Message::new();
        m.raw = raw.clone();
        m.decode().ok()?;
        let mut err = ErrorCodeAttribute::default();
        stun::message::Getter::get_from(&mut err, &m).ok()?;
        Some(err.code.0)
    }

    #[test]
    fn good_bad_and_expired_credentials() {
        let adm = admission();
        let cred = TurnSecret::new("fuzz").mint("u1", 1000, 60);
        let verdict = adm.inspect(&allocate(&cred.username, &cred.password), 1000);
        assert_eq!(verdict, Verdict::PassAllocate { user: "u1".into() });
        assert_eq!(
            code_of(&adm.inspect(&allocate(&cred.username, "x"), 1000)),
            Some(401)
        );
        assert_eq!(
            code_of(&adm.inspect(&allocate(&cred.username, &cred.password), 1060)),
            Some(401)
        );
        let snap = adm.metrics.snapshot();
        assert_eq!(
            (snap.auth_failures_bad_integrity, snap.auth_failures_expired),
            (1, 1)
        );
        adm.set_draining();
        assert_eq!(
            code_of(&adm.inspect(&allocate(&cred.username, &cred.password), 1000)),
            Some(403)
        );
    }

    #[test]
    fn random_bytes_never_panic_nor_allocate() {
        let adm = admission();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let len = rng.random_range(0..200);
            let mut p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if p.len() >= 8 && rng.random_bool(0.5) {
                // Look like STUN, to get past the first checks.
                p[0] &= 0x3f;
                p[4..8].copy_from_slice(&MAGIC_COOKIE);
            }
            let verdict = adm.inspect(&p, 1);
            assert!(!matches!(verdict, Verdict::PassAllocate { .. }), "{p:?}");
        }
    }

    #[test]
    fn mutated_allocates_never_panic_and_only_exact_ones_pass() {
        let adm = admission();
        let cred = TurnSecret::new("fuzz").mint("victim", 1000, 60);
        let valid = allocate(&cred.username, &cred.password);
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..20_000 {
            let mut p = valid.clone();
            match rng.random_range(0..3) {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let at = rng.random_range(0..p.len());
                        p[at] = rng.random();
                    }
                }
                1 => p.truncate(rng.random_range(0..p.len())),
                _ => {
                    let at = rng.random_range(20..p.len());
                    p.insert(at, rng.random());
                }
            }
            if let Verdict::PassAllocate { user } = adm.inspect(&p, 1000) {
                // Only a mutation outside the integrity-protected part (the
                // transaction id is covered too) may still pass.
                assert_eq!(user, "victim");
            }
        }
    }

    #[test]
    fn random_usernames_never_panic() {
        let adm = admission();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet: Vec<char> = "0123456789:abc\u{0}\u{e9}\u{1F600}-".chars().collect();
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let name: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            match adm.key_for(&name, "tincan", 5) {
                Ok(key) => {
                    assert_eq!(key.len(), 16);
                    let (expiry, _) = parse_username(&name).expect("accepted names parse");
                    assert!(expiry > 5);
                }
                Err(AuthFailure::Malformed) => assert!(parse_username(&name).is_err()),
                Err(_) => {}
            }
        }
    }
}
