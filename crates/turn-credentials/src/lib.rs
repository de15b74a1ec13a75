//! TURN credentials by the TURN REST API scheme
//! (draft-uberti-behave-turn-rest): the username is `expiry:userId` (expiry in
//! seconds since the Unix epoch) and the password is the base64 HMAC-SHA1 of
//! the username under a secret shared by the signaling side, which mints
//! credentials, and the media nodes, which check them. No per-user state is
//! stored anywhere: a node verifies a credential from the secret alone, and a
//! credential dies by itself at its expiry.
//!
//! The caller passes `now`; this crate reads no clock.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use tincan_signaling::IceServer;

type HmacSha1 = Hmac<Sha1>;

/// Default lifetime of a credential, in seconds.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The username is not `expiry:userId` with a numeric expiry.
    #[error("malformed TURN username")]
    Malformed,
    /// The expiry is in the past.
    #[error("TURN credential expired")]
    Expired,
    /// The password does not match the username under our secret.
    #[error("TURN credential does not match")]
    BadPassword,
}

/// Mints and checks credentials with one shared secret.
#[derive(Clone)]
pub struct TurnSecret {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

/// A minted credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `expiry:userId`.
    pub username: String,
    /// base64 HMAC-SHA1 of `username`.
    pub password: String,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
}

impl TurnSecret {
    /// A secret from raw bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The secret's length in bytes (media nodes require at least 32).
    pub fn len(&self) -> usize {
        self.secret.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }

    /// The password for `username`: base64(HMAC-SHA1(secret, username)).
    pub fn password_for(&self, username: &str) -> String {
        BASE64.encode(self.mac(username).finalize().into_bytes())
    }

    /// A credential for `user_id`, valid from `now` for `ttl_secs`.
    pub fn mint(&self, user_id: &str, now: u64, ttl_secs: u64) -> TurnCredential {
        let expires_at = now.saturating_add(ttl_secs);
        let username = format!("{expires_at}:{user_id}");
        let password = self.password_for(&username);
        TurnCredential {
            username,
            password,
            expires_at,
        }
    }

    /// Checks `password` for `username` at `now`; returns the user id.
    pub fn verify<'a>(
        &self,
        username: &'a str,
        password: &str,
        now: u64,
    ) -> Result<&'a str, CredentialError> {
        let (expiry, user_id) = parse_username(username)?;
        let given = BASE64
            .decode(password)
            .map_err(|_| CredentialError::BadPassword)?;
        // Constant-time comparison through the MAC's own verify.
        self.mac(username)
            .verify_slice(&given)
            .map_err(|_| CredentialError::BadPassword)?;
        if now >= expiry {
            return Err(CredentialError::Expired);
        }
        Ok(user_id)
    }

    /// A key for another purpose, derived from the secret:
    /// HMAC-SHA256(secret, `label`). The raw secret is never used for
    /// anything but TURN credentials; each other use names its own label
    /// (e.g. `tincan-sfu-control-v1` for the SFU control API).
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, username: &str) -> HmacSha1 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha1::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        mac.update(username.as_bytes());
        mac
    }
}

/// Splits `expiry:userId` (the user id may itself contain `:`).
pub fn parse_username(username: &str) -> Result<(u64, &str), CredentialError> {
    let (expiry, user_id) = username.split_once(':').ok_or(CredentialError::Malformed)?;
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CredentialError::Malformed);
    }
    let expiry = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    Ok((expiry, user_id))
}

/// `iceServers` for one media node: STUN plus TURN over UDP and TCP, all with
/// the same credential. `host_port` is the node's advertised `host:port`.
pub fn ice_servers(host_port: &str, credential: &TurnCredential) -> Vec<IceServer> {
    ice_servers_with_tls(host_port, None, credential)
}

/// Same, plus `turns:host:port?transport=tcp` (TURN over TLS) when the node
/// serves TLS at `tls_host_port`. The TLS name must match the node's
/// certificate, so `tls_host_port` is usually a DNS name, e.g.
/// `turn.example.com:443`.
pub fn ice_servers_with_tls(
    host_port: &str,
    tls_host_port: Option<&str>,
    credential: &TurnCredential,
) -> Vec<IceServer> {
    let mut servers = vec![
        IceServer {
            urls: vec![format!("stun:{host_port}")],
            username: None,
            credential: None,
        },
        IceServer {
            urls: vec![
                format!("turn:{host_port}?transport=udp"),
                format!("turn:{host_port}?transport=tcp"),
            ],
            username: Some(credential.username.clone()),
            credential: Some(credential.password.clone()),
        },
    ];
    if let (Some(tls), Some(turn)) = (tls_host_port, servers.get_mut(1)) {
        turn.urls.push(format!("turns:{tls}?transport=tcp"));
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_depend_on_secret_and_label() {
        let a = TurnSecret::new("s3cret");
        let b = TurnSecret::new("other");
        let key = a.derive_key("tincan-sfu-control-v1");
        assert_eq!(key, a.derive_key("tincan-sfu-control-v1"));
        assert_ne!(key, a.derive_key("another-purpose"));
        assert_ne!(key, b.derive_key("tincan-sfu-control-v1"));
        assert_ne!(&key[..], b"s3cret");
    }

    #[test]
    fn minted_credential_verifies_until_expiry() {
        let secret = TurnSecret::new("s3cret");
        let cred = secret.mint("user-1", 1_000, 60);
        assert_eq!(cred.username, "1060:user-1");
        assert_eq!(
            secret.verify(&cred.username, &cred.password, 1_059),
            Ok("user-1")
        );
        assert_eq!(
            secret.verify(&cred.username, &cred.password, 1_060),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn turns_is_advertised_only_with_tls() {
        let cred = TurnSecret::new("s").mint("u", 0, 60);
        let urls = |servers: Vec<IceServer>| -> Vec<String> {
            servers.into_iter().flat_map(|s| s.urls).collect()
        };
        let plain = urls(ice_servers("203.0.113.5:3478", &cred));
        assert!(plain.iter().all(|u| !u.starts_with("turns:")), "{plain:?}");
        let tls = urls(ice_servers_with_tls(
            "203.0.113.5:3478",
            Some("turn.example.com:443"),
            &cred,
        ));
        assert_eq!(
            tls,
            [
                "stun:203.0.113.5:3478",
                "turn:203.0.113.5:3478?transport=udp",
                "turn:203.0.113.5:3478?transport=tcp",
                "turns:turn.example.com:443?transport=tcp",
            ]
        );
    }

    #[test]
    fn password_matches_the_rest_api_scheme() {
        // base64(HMAC-SHA1("secret", "1:u")), computed independently with
        // `printf 1:u | openssl dgst -sha1 -hmac secret -binary | base64`.
        let secret = TurnSecret::new("secret");
        assert_eq!(secret.password_for("1:u"), "KUHD1CkWw8p55pIgHmyFn2XyOzY=");
    }

    #[test]
    fn forged_and_foreign_credentials_are_refused() {
        let ours = TurnSecret::new("ours");
        let theirs = TurnSecret::new("theirs");
        let cred = theirs.mint("u", 0, 100);
        assert_eq!(
            ours.verify(&cred.username, &cred.password, 1),
            Err(CredentialError::BadPassword)
        );
        let cred = ours.mint("u", 0, 100);
        let stretched = cred.username.replace("100:", "99999:");
        assert_eq!(
            ours.verify(&stretched, &cred.password, 1),
            Err(CredentialError::BadPassword)
        );
        assert_eq!(
            ours.verify("nocolon", "x", 1),
            Err(CredentialError::Malformed)
        );
        assert_eq!(ours.verify("-1:u", "x", 1), Err(CredentialError::Malformed));
        assert_eq!(
            ours.verify(&cred.username, "***", 1),
            Err(CredentialError::BadPassword)
        );
    }
}
