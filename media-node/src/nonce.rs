//! Stateless TURN nonces: a nonce is its own expiry plus a MAC of that
//! expiry and the client's transport address under a key drawn at random
//! when the process starts. Issuing one stores nothing, so a flood of
//! unauthenticated requests costs no memory; checking one needs only the
//! key. A nonce is good for the address it was given to, until its expiry
//! (then the client gets 438 Stale Nonce and a fresh one). Restarting the
//! node invalidates every nonce, which clients recover from the same way.

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept in a nonce (128 bits).
const MAC_LEN: usize = 16;

/// Issues and checks nonces. No IO and no clock: the caller passes `now`.
pub(crate) struct NonceKey {
    key: [u8; 32],
    ttl_secs: u64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl NonceKey {
    /// A fresh random key; nonces live `ttl_secs`.
    pub(crate) fn random(ttl_secs: u64) -> Self {
        Self::with_key(rand::random(), ttl_secs)
    }

    pub(crate) fn with_key(key: [u8; 32], ttl_secs: u64) -> Self {
        Self { key, ttl_secs }
    }

    /// A nonce for `client`, valid from `now` for the TTL:
    /// `<expiry in hex>-<base64url MAC>`, 30-odd characters of
    /// `[0-9a-zA-Z_-]`.
    pub(crate) fn issue(&self, client: SocketAddr, now: u64) -> String {
        let expiry = now.saturating_add(self.ttl_secs);
        format!("{expiry:x}-{}", B64.encode(self.mac(expiry, client)))
    }

    /// Whether `nonce` was issued by this key to `client` and is unexpired
    /// at `now`.
    pub(crate) fn check(&self, nonce: &str, client: SocketAddr, now: u64) -> bool {
        let Some((expiry, mac)) = nonce.split_once('-') else {
            return false;
        };
        // Lowercase hex only, so that one nonce has one spelling.
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if expiry.is_empty() || expiry.len() > 16 || !expiry.bytes().all(lower_hex) {
            return false;
        }
        let Ok(expiry) = u64::from_str_radix(expiry, 16) else {
            return false;
        };
        if now >= expiry {
            return false;
        }
        let Ok(given) = B64.decode(mac) else {
            return false;
        };
        // Constant time, through the MAC's own comparison.
        self.hmac(expiry, client)
            .verify_truncated_left(&given)
            .is_ok()
            && given.len() == MAC_LEN
    }

    fn mac(&self, expiry: u64, client: SocketAddr) -> [u8; MAC_LEN] {
        let full = self.hmac(expiry, client).finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn hmac(&self, expiry: u64, client: SocketAddr) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(&expiry.to_be_bytes());
        match client.ip() {
            std::net::IpAddr::V4(ip) => mac.update(&ip.octets()),
            std::net::IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&client.port().to_be_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_nonce_is_good_for_its_client_until_it_expires() {
        let key = NonceKey::with_key([7; 32], 600);
        let alice = addr("198.51.100.1:5000");
        let nonce = key.issue(alice, 1_000);
        assert!(nonce.len() < 40, "{nonce}");
        assert!(nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(key.check(&nonce, alice, 1_000));
        assert!(key.check(&nonce, alice, 1_599));
        assert!(!key.check(&nonce, alice, 1_600), "expired");
        assert!(!key.check(&nonce, addr("198.51.100.1:5001"), 1_000));
        assert!(!key.check(&nonce, addr("198.51.100.2:5000"), 1_000));
        assert!(!NonceKey::with_key([8; 32], 600).check(&nonce, alice, 1_000));
    }

    #[test]
    fn forged_and_garbled_nonces_fail() {
        let key = NonceKey::with_key([7; 32], 600);
        let client = addr("[2001:db8::1]:3478");
        let nonce = key.issue(client, 1_000);
        let (expiry, mac) = nonce.split_once('-').expect("two parts");
        // A later expiry with the old MAC.
        let stretched = format!("{:x}-{mac}", u64::from_str_radix(expiry, 16).unwrap() + 1);
        assert!(!key.check(&stretched, client, 1_000));
        // A truncated MAC.
        assert!(!key.check(&format!("{expiry}-{}", &mac[..4]), client, 1_000));
        for bad in ["", "-", "x-y", "ffffffffffffffffff-AAAA", "abc", "12-!!!!"] {
            assert!(!key.check(bad, client, 0), "{bad}");
        }
    }
}
