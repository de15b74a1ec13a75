//! Access tokens for Tincan.
//!
//! An access token is a short-lived JWT signed with HS256 and a secret shared
//! by everything that issues or checks tokens (the HTTP API issues them at
//! login; the WebSocket `$connect` handler checks them). It names the user and
//! carries the display name, so the signaling side never has to trust a name a
//! client claims. A `typ` claim keeps other token kinds (a refresh token, should
//! one ever be a JWT) from being accepted in its place.
//!
//! Join tokens, which apps that embed calls mint for their own users with an
//! API key, live in [`join`].
//!
//! The caller passes `now` (seconds since the Unix epoch): this crate reads no
//! clock, so expiry is tested without waiting.

mod hs256;
pub mod join;

pub use hs256::install_hs256_crypto;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `typ` claim of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "access";

/// Default lifetime of an access token, in seconds.
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 15 * 60;

/// Shortest secret we accept: HS256 is only as strong as its key.
pub const MIN_SECRET_LEN: usize = 32;

/// What an access token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: String,
    /// The user's display name at the time of issue.
    pub name: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Token kind; always [`ACCESS_TOKEN_TYPE`] for tokens this crate accepts.
    pub typ: String,
    /// The login session (refresh-token family) the token was issued for,
    /// if any: a password change keeps this session and revokes the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Why a token was not accepted, or a key could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the token secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// The token is past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// The token is not a valid access token signed with our secret.
    #[error("the token is invalid")]
    Invalid,
}

/// Issues and verifies access tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TokenKeys")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a shared secret, with tokens living `ttl_secs`.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        install_hs256_crypto();
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        })
    }

    /// Lifetime of the tokens these keys issue, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A signed access token for `user_id` / `display_name`, issued at `now`.
    pub fn issue(&self, user_id: &str, display_name: &str, now: u64) -> String {
        self.issue_claims(AccessClaims {
            sub: user_id.to_owned(),
            name: display_name.to_owned(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            sid: None,
        })
    }

    /// As [`TokenKeys::issue`], naming the login session `session_id`.
    pub fn issue_for_session(
        &self,
        user_id: &str,
        display_name: &str,
        session_id: &str,
        now: u64,
    ) -> String {
        self.issue_claims(AccessClaims {
            sub: user_id.to_owned(),
            name: display_name.to_owned(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            sid: Some(session_id.to_owned()),
        })
    }

    fn issue_claims(&self, claims: AccessClaims) -> String {
        // HS256 signing of a plain struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of a valid, unexpired access token at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // We check expiry ourselves against the caller's clock.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != ACCESS_TOKEN_TYPE || claims.sub.is_empty() {
            return Err(TokenError::Invalid);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, 900).unwrap()
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let token = keys().issue("u1", "Ada", 1_000);
        let claims = keys().verify(&token, 1_001).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.name, "Ada");
        assert_eq!(claims.exp, 1_900);
    }

    #[test]
    fn expired_token_is_refused() {
        let token = keys().issue("u1", "Ada", 1_000);
        assert_eq!(keys().verify(&token, 1_900), Err(TokenError::Expired));
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let other = TokenKeys::new(b"another-secret-another-secret-xx", 900).unwrap();
        let token = other.issue("u1", "Ada", 1_000);
        assert_eq!(keys().verify(&token, 1_001), Err(TokenError::Invalid));
    }

    #[test]
    fn tampered_token_is_refused() {
        let token = keys().issue("u1", "Ada", 1_000);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // Swap the payload for one claiming another user.
        let forged = keys().issue("admin", "Admin", 1_000);
        parts[1] = forged.split('.').nth(1).unwrap().to_owned();
        assert_eq!(
            keys().verify(&parts.join("."), 1_001),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn garbage_and_wrong_type_are_refused() {
        assert_eq!(keys().verify("not-a-jwt", 1), Err(TokenError::Invalid));
        let claims = AccessClaims {
            sub: "u1".into(),
            name: "Ada".into(),
            iat: 0,
            exp: 10_000,
            typ: "refresh".into(),
            sid: None,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(keys().verify(&token, 1), Err(TokenError::Invalid));
    }

    #[test]
    fn weak_secret_is_refused() {
        assert_eq!(
            TokenKeys::new(b"short", 900).unwrap_err(),
            TokenError::WeakSecret
        );
        assert_eq!(
            TokenKeys::new(&[b'x'; MIN_SECRET_LEN - 1], 900).unwrap_err(),
            TokenError::WeakSecret
        );
        assert!(TokenKeys::new(&[b'x'; MIN_SECRET_LEN], 900).is_ok());
        assert!(TokenError::WeakSecret.to_string().contains("32 bytes"));
    }

    #[test]
    fn session_tokens_name_their_session() {
        let token = keys().issue_for_session("u1", "Ada", "s-1", 1_000);
        let claims = keys().verify(&token, 1_001).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("s-1"));
        let plain = keys()
            .verify(&keys().issue("u1", "Ada", 1_000), 1_001)
            .unwrap();
        assert_eq!(plain.sid, None);
    }
}
