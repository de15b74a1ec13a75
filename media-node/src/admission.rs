//! The front door: every datagram or TCP frame from a TURN client passes
//! through [`Admission::inspect`] before the webrtc-rs TURN server sees it.
//!
//! It does what the `turn` crate does not:
//! - nonces that cost no memory: unauthenticated requests get 401 with a
//!   stateless nonce (see [`crate::nonce`]) from here, and only requests
//!   that carry a valid one and good credentials reach the crate, re-signed
//!   with the crate's own nonce (see [`crate::rewrite`]);
//! - wrong, expired and foreign credentials get 401 Unauthorized (the crate
//!   answers 400), counted by reason;
//! - CreatePermission and ChannelBind to a denied peer get 403 Forbidden and
//!   Send indications to one are dropped ([`PeerFilter`]), so the crate never
//!   holds a permission for a denied address;
//! - new allocations get 403 while the node drains, and 486 when the user
//!   or the client address holds too many;
//! - what is neither STUN nor ChannelData is dropped.
//!
//! No IO and no clock: the caller passes the packet, its source and `now`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use stun::attributes::{
    ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME,
    ATTR_XOR_PEER_ADDRESS,
};
use stun::error_code::{
    ErrorCode, ErrorCodeAttribute, CODE_ALLOC_QUOTA_REACHED, CODE_BAD_REQUEST, CODE_FORBIDDEN,
    CODE_STALE_NONCE, CODE_UNAUTHORIZED,
};
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND,
};
use stun::textattrs::TextAttribute;
use tincan_turn_credentials::{parse_username, TurnSecret};
use tokio::sync::Notify;
use turn::proto::peeraddr::PeerAddress;

use crate::metrics::{AuthFailure, Metrics};
use crate::nonce::NonceKey;
use crate::peer_filter::PeerFilter;
use crate::rewrite;

const STUN_HEADER: usize = 20;
/// The lifetime the TURN server grants when a request names none.
const DEFAULT_LIFETIME_SECS: u32 = 600;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Who holds an allocation: the user of its credential and the client's IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) user: String,
    pub(crate) ip: IpAddr,
}

/// What to do with one inbound packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the TURN server as it is (ChannelData, Binding, Send).
    Pass,
    /// Hand these bytes to the TURN server instead: an authenticated
    /// request by `username`, re-signed with the crate's nonce; `owner` is
    /// set for an Allocate.
    Forward {
        packet: Vec<u8>,
        username: String,
        owner: Option<Owner>,
    },
    /// Answer with these bytes and drop the packet.
    Reply(Vec<u8>),
    /// Drop it silently.
    Drop,
}

/// Limits and policy of one node's front door.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) secret: TurnSecret,
    pub(crate) realm: String,
    /// Live allocations per user; 0 for no limit.
    pub(crate) max_per_user: u32,
    /// Live allocations per client IP; 0 for no limit.
    pub(crate) max_per_ip: u32,
    /// Longest allocation lifetime granted, in seconds (the crate's own cap
    /// is 3600).
    pub(crate) max_lifetime_secs: u32,
    pub(crate) peers: PeerFilter,
    pub(crate) nonce_ttl_secs: u64,
}

#[derive(Debug, Default)]
struct Owners {
    users: HashMap<String, u32>,
    ips: HashMap<IpAddr, u32>,
}

/// The nonce the crate issued to the node itself, used on every request
/// the front door passes on; the previous one is kept to retire it.
#[derive(Debug, Default)]
struct CrateNonces {
    current: Option<String>,
    previous: Option<String>,
}

/// Credentials, drain state and allocation counts, shared by every listener
/// of one node.
#[derive(Debug)]
pub(crate) struct Admission {
    policy: Policy,
    nonces: NonceKey,
    draining: Arc<AtomicBool>,
    owners: Mutex<Owners>,
    crate_nonces: RwLock<CrateNonces>,
    pub(crate) metrics: Arc<Metrics>,
    /// Woken whenever an allocation ends.
    pub(crate) released: Notify,
    /// Woken whenever the crate's nonce changes.
    pub(crate) crate_nonce_learned: Notify,
}

impl Admission {
    pub(crate) fn new(policy: Policy, metrics: Arc<Metrics>) -> Self {
        let nonces = NonceKey::random(policy.nonce_ttl_secs);
        Self {
            policy,
            nonces,
            draining: Arc::new(AtomicBool::new(false)),
            owners: Mutex::new(Owners::default()),
            crate_nonces: RwLock::new(CrateNonces::default()),
            metrics,
            released: Notify::new(),
            crate_nonce_learned: Notify::new(),
        }
    }

    pub(crate) fn realm(&self) -> &str {
        &self.policy.realm
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.store(1, Ordering::Relaxed);
    }

    /// The drain flag, for the SFU to read.
    pub(crate) fn draining_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.draining)
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
        Ok(self.key_unchecked(username, realm))
    }

    /// The long-term key for `username`, expired or not: for the crate's
    /// own check of requests this door has already let through (or makes
    /// itself, such as deallocating a closed TCP connection's allocation
    /// after its credential expired).
    pub(crate) fn key_unchecked(&self, username: &str, realm: &str) -> Vec<u8> {
        let password = self.policy.secret.password_for(username);
        MessageIntegrity::new_long_term_integrity(username.to_owned(), realm.to_owned(), password).0
    }

    /// The crate's nonce to sign forwarded requests with, once learned.
    pub(crate) fn crate_nonce(&self) -> Option<String> {
        self.crate_nonces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
    }

    /// The crate's nonce before the current one, to retire.
    pub(crate) fn previous_crate_nonce(&self) -> Option<String> {
        self.crate_nonces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .previous
            .clone()
    }

    /// The crate answered one of the node's own probes with `nonce`.
    pub(crate) fn learn_crate_nonce(&self, nonce: String) {
        {
            let mut nonces = self
                .crate_nonces
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if nonces.current.as_deref() == Some(nonce.as_str()) {
                return;
            }
            nonces.previous = nonces.current.replace(nonce);
        }
        self.crate_nonce_learned.notify_waiters();
    }

    /// Decides the fate of one packet from the client at `from`.
    pub(crate) fn inspect(&self, packet: &[u8], from: SocketAddr, now: u64) -> Verdict {
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
        // Port 0 is the node's own address for its requests to the crate.
        if from.port() == 0 {
            return self.malformed();
        }
        let mut m = Message::new();
        m.raw = packet.to_vec();
        if m.decode().is_err() {
            return self.malformed();
        }
        let method = m.typ.method;
        if m.typ.class == CLASS_INDICATION && method == METHOD_SEND {
            return self.inspect_send(&m);
        }
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
            return self.challenge(&m, CODE_UNAUTHORIZED, from, now);
        }
        let (Ok(username), Ok(realm), Ok(nonce)) = (
            TextAttribute::get_from_as(&m, ATTR_USERNAME),
            TextAttribute::get_from_as(&m, ATTR_REALM),
            TextAttribute::get_from_as(&m, ATTR_NONCE),
        ) else {
            return error_reply(&m, CODE_BAD_REQUEST, &[]);
        };
        if !self.nonces.check(&nonce.text, from, now) {
            return self.challenge(&m, CODE_STALE_NONCE, from, now);
        }
        let checked = self
            .key_for(&username.text, &self.policy.realm, now)
            .and_then(|key| {
                MessageIntegrity(key.clone())
                    .check(&mut m)
                    .map_err(|_| AuthFailure::BadIntegrity)?;
                if realm.text == self.policy.realm {
                    Ok(key)
                } else {
                    Err(AuthFailure::BadIntegrity)
                }
            });
        let key = match checked {
            Ok(key) => key,
            Err(why) => {
                self.metrics.auth_failure(why);
                tracing::debug!(?why, username = %username.text, "TURN credential refused");
                return self.challenge(&m, CODE_UNAUTHORIZED, from, now);
            }
        };
        let mut owner = None;
        match method {
            METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND if self.names_denied_peer(&m) => {
                self.metrics.peer_denials.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, username = %username.text, "TURN peer denied");
                return error_reply(&m, CODE_FORBIDDEN, &[]);
            }
            METHOD_ALLOCATE => match self.admit_allocation(&m, &username.text, from) {
                Ok(o) => owner = Some(o),
                Err(refusal) => return refusal,
            },
            _ => {}
        }
        let lifetime = match method {
            METHOD_ALLOCATE | METHOD_REFRESH => self.capped_lifetime(&m),
            _ => None,
        };
        let Some(crate_nonce) = self.crate_nonce() else {
            // Only before the node has finished starting; the client
            // retransmits.
            return Verdict::Drop;
        };
        match rewrite::resign(&m, &key, &crate_nonce, lifetime) {
            Some(packet) => Verdict::Forward {
                packet,
                username: username.text,
                owner,
            },
            None => self.malformed(),
        }
    }

    /// A Send indication to a denied peer is dropped; the crate checks the
    /// rest (allocation, permission).
    fn inspect_send(&self, m: &Message) -> Verdict {
        let mut peer = PeerAddress::default();
        if peer.get_from(m).is_ok() && self.policy.peers.is_denied(peer.ip) {
            self.metrics.peer_denials.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        }
        Verdict::Pass
    }

    /// Whether any XOR-PEER-ADDRESS of `m` is denied.
    fn names_denied_peer(&self, m: &Message) -> bool {
        m.attributes
            .0
            .iter()
            .filter(|attr| attr.typ == ATTR_XOR_PEER_ADDRESS)
            .any(|attr| {
                // Decode each one on its own (the XOR key is the cookie and
                // the transaction id).
                let mut one = Message::new();
                one.transaction_id = m.transaction_id;
                one.write_header();
                one.add(ATTR_XOR_PEER_ADDRESS, &attr.value);
                let mut peer = PeerAddress::default();
                // One that does not decode is refused by the crate (400).
                peer.get_from(&one).is_ok() && self.policy.peers.is_denied(peer.ip)
            })
    }

    /// The owner of an Allocate, or the 486 refusal when the user or the
    /// client address holds its quota already.
    fn admit_allocation(
        &self,
        m: &Message,
        username: &str,
        from: SocketAddr,
    ) -> Result<Owner, Verdict> {
        let user = match parse_username(username) {
            Ok((_, user)) => user.to_owned(),
            Err(_) => return Err(self.malformed()),
        };
        let (by_user, by_ip) = {
            let owners = self.owners();
            (
                owners.users.get(&user).copied().unwrap_or(0),
                owners.ips.get(&from.ip()).copied().unwrap_or(0),
            )
        };
        let limit = |max: u32, held: u32| max > 0 && held >= max;
        if limit(self.policy.max_per_user, by_user) {
            self.metrics
                .quota_rejections
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%user, "TURN allocation quota reached");
            return Err(error_reply(m, CODE_ALLOC_QUOTA_REACHED, &[]));
        }
        if limit(self.policy.max_per_ip, by_ip) {
            self.metrics
                .ip_quota_rejections
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = %from.ip(), "TURN per-address allocation quota reached");
            return Err(error_reply(m, CODE_ALLOC_QUOTA_REACHED, &[]));
        }
        Ok(Owner {
            user,
            ip: from.ip(),
        })
    }

    /// LIFETIME capped at our maximum, when the request asks for more (or
    /// for the crate's 600 s default, above our maximum). A zero lifetime
    /// (deallocate) is left alone.
    fn capped_lifetime(&self, m: &Message) -> Option<u32> {
        let requested = match m.get(ATTR_LIFETIME) {
            Ok(v) => u32::from_be_bytes(v.get(..4)?.try_into().ok()?),
            Err(_) => DEFAULT_LIFETIME_SECS,
        };
        // The crate grants only lifetimes below 3600 s (else its 600 s
        // default).
        let cap = self.policy.max_lifetime_secs.min(3599);
        (requested != 0 && requested > cap).then_some(cap)
    }

    /// 401 or 438 with our realm and a fresh nonce for `from`.
    fn challenge(&self, m: &Message, code: ErrorCode, from: SocketAddr, now: u64) -> Verdict {
        self.metrics
            .nonce_challenges
            .fetch_add(1, Ordering::Relaxed);
        let realm = TextAttribute::new(ATTR_REALM, self.policy.realm.clone());
        let nonce = TextAttribute::new(ATTR_NONCE, self.nonces.issue(from, now));
        error_reply(m, code, &[&realm, &nonce])
    }

    fn malformed(&self) -> Verdict {
        self.metrics
            .malformed_packets
            .fetch_add(1, Ordering::Relaxed);
        Verdict::Drop
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        // The maps stay consistent even if a holder panicked.
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An allocation (of `owner`, if known) got its relay socket.
    pub(crate) fn acquire(&self, owner: Option<&Owner>) {
        self.metrics.allocations.fetch_add(1, Ordering::Relaxed);
        if let Some(owner) = owner {
            let mut owners = self.owners();
            *owners.users.entry(owner.user.clone()).or_insert(0) += 1;
            *owners.ips.entry(owner.ip).or_insert(0) += 1;
        }
    }

    /// The allocation from a matching [`Admission::acquire`] ended.
    pub(crate) fn release(&self, owner: Option<&Owner>) {
        self.metrics.allocations.fetch_sub(1, Ordering::Relaxed);
        if let Some(owner) = owner {
            let mut owners = self.owners();
            decrement(&mut owners.users, &owner.user);
            decrement(&mut owners.ips, &owner.ip);
        }
        self.released.notify_waiters();
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

fn error_reply(request: &Message, code: ErrorCode, extra: &[&dyn Setter]) -> Verdict {
    let typ = MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE);
    let error = ErrorCodeAttribute {
        code,
        reason: Vec::new(),
    };
    let head: [&dyn Setter; 3] = [&request.transaction_id, &typ, &error];
    let mut msg = Message::new();
    msg.write_header();
    for setter in head.into_iter().chain(extra.iter().copied()) {
        if setter.add_to(&mut msg).is_err() {
            return Verdict::Drop;
        }
    }
    Verdict::Reply(msg.raw)
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
