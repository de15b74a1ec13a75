//! STUN messages the front door writes for the `turn` crate: client
//! requests re-signed with the crate's own nonce (and a capped lifetime),
//! and the few requests the node makes on its own behalf.
//!
//! Why re-sign: the crate keeps a table of the nonces it has issued and
//! refuses any other. Clients only ever see our stateless nonces (see
//! [`crate::nonce`]); once the front door has checked a request, it swaps
//! the client's nonce for one nonce the crate issued to the node itself and
//! signs the request again with the same long-term key. The crate's table
//! so holds one or two entries, whatever clients send.

use std::time::Duration;

use stun::agent::TransactionId;
use stun::attributes::{
    ATTR_FINGERPRINT, ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Setter, CLASS_REQUEST, METHOD_ALLOCATE, METHOD_REFRESH};
use stun::textattrs::TextAttribute;
use turn::proto::lifetime::Lifetime;

/// `m` with its NONCE replaced by `nonce`, LIFETIME set to `lifetime` if
/// given, then MESSAGE-INTEGRITY under `key` (and FINGERPRINT if `m` had
/// one). Attributes after MESSAGE-INTEGRITY are dropped, as a server ignores
/// them anyway.
pub(crate) fn resign(
    m: &Message,
    key: &[u8],
    nonce: &str,
    lifetime: Option<u32>,
) -> Option<Vec<u8>> {
    let mut out = Message::new();
    out.typ = m.typ;
    out.transaction_id = m.transaction_id;
    out.write_header();
    let mut had_lifetime = false;
    for attr in &m.attributes.0 {
        match attr.typ {
            ATTR_MESSAGE_INTEGRITY => break,
            ATTR_NONCE => out.add(ATTR_NONCE, nonce.as_bytes()),
            ATTR_LIFETIME if lifetime.is_some() => {
                had_lifetime = true;
                out.add(ATTR_LIFETIME, &lifetime?.to_be_bytes());
            }
            typ => out.add(typ, &attr.value),
        }
    }
    if let (Some(lifetime), false) = (lifetime, had_lifetime) {
        out.add(ATTR_LIFETIME, &lifetime.to_be_bytes());
    }
    MessageIntegrity(key.to_vec()).add_to(&mut out).ok()?;
    if m.contains(ATTR_FINGERPRINT) {
        FINGERPRINT.add_to(&mut out).ok()?;
    }
    Some(out.raw)
}

/// An Allocate without credentials: the crate answers 401 with a fresh
/// nonce of its own.
pub(crate) fn nonce_probe() -> Vec<u8> {
    build(&[
        &TransactionId::new(),
        &MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST),
    ])
    .unwrap_or_default()
}

/// An Allocate carrying the crate nonce `old` and a MESSAGE-INTEGRITY (under
/// a throwaway key): once `old` has outlived the crate's nonce lifetime the
/// crate forgets it and answers 438 with a fresh nonce, so rotating nonces
/// this way keeps its table from growing.
pub(crate) fn stale_probe(old: &str) -> Vec<u8> {
    let throwaway = MessageIntegrity(rand::random::<[u8; 16]>().to_vec());
    build(&[
        &TransactionId::new(),
        &MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST),
        &TextAttribute::new(ATTR_NONCE, old.to_owned()),
        &throwaway,
    ])
    .unwrap_or_default()
}

/// A Refresh with LIFETIME 0 (deallocate), signed for `username`.
pub(crate) fn deallocate(username: &str, realm: &str, key: &[u8], nonce: &str) -> Option<Vec<u8>> {
    build(&[
        &TransactionId::new(),
        &MessageType::new(METHOD_REFRESH, CLASS_REQUEST),
        &Lifetime(Duration::ZERO),
        &TextAttribute::new(ATTR_USERNAME, username.to_owned()),
        &TextAttribute::new(ATTR_REALM, realm.to_owned()),
        &TextAttribute::new(ATTR_NONCE, nonce.to_owned()),
        &MessageIntegrity(key.to_vec()),
    ])
}

fn build(setters: &[&dyn Setter]) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.write_header();
    for setter in setters {
        setter.add_to(&mut m).ok()?;
    }
    Some(m.raw)
}

/// The NONCE of a STUN message, if it is one and has one.
pub(crate) fn nonce_of(raw: &[u8]) -> Option<String> {
    let mut m = Message::new();
    m.raw = raw.to_vec();
    m.decode().ok()?;
    TextAttribute::get_from_as(&m, ATTR_NONCE)
        .ok()
        .map(|n| n.text)
}
