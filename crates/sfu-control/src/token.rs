//! The control token: an HS256 JWT for exactly one request, used once.
//!
//! A token names the request's method, path and the SHA-256 of its body, so
//! a captured one cannot carry another offer, another peer or another verb;
//! it has a random id (`jti`) the node remembers until the token can no
//! longer be accepted ([`ReplayGuard`]), so it cannot be sent twice; and it
//! lives [`TOKEN_LIFETIME_SECS`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codes;

/// The token's audience (`aud`).
pub const AUDIENCE: &str = "tincan-sfu";
/// Lifetime [`mint`] gives, seconds: the client's whole-request timeout
/// ([`crate::DEFAULT_TIMEOUT`]); a token alive after its request has been
/// given up on would serve nobody but someone replaying it.
pub const TOKEN_LIFETIME_SECS: u64 = 5;
/// Longest lifetime the node accepts, `exp - iat`, seconds.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10;
/// Clock skew tolerated between the signaling side and the node, seconds.
pub const LEEWAY_SECS: u64 = 5;
/// The shortest control secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Token ids a node remembers at most (see [`ReplayGuard`]).
pub const REPLAY_GUARD_CAPACITY: usize = 16_384;
/// The longest `jti` accepted (a minted one has 22 characters).
const MAX_JTI_LEN: usize = 64;

/// The secret control tokens are signed with (`TINCAN_SFU_CONTROL_SECRET`),
/// shared by the signaling side and the media nodes and used for nothing
/// else. Never printed.
#[derive(Clone)]
pub struct ControlSecret(Arc<[u8]>);

impl std::fmt::Debug for ControlSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlSecret(..)")
    }
}

/// A control secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error(
        "the SFU control secret is {len} bytes; at least 32 are required \
         (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { len: usize },
}

impl ControlSecret {
    /// At least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        Ok(Self(secret.into()))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The request a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    /// `PUT`, `POST`, `DELETE`.
    pub method: &'a str,
    /// The URL path as sent, e.g. `/sfu/v1/rooms/r/peers/p`.
    pub path: &'a str,
    /// The body as sent (empty for none).
    pub body: &'a [u8],
}

/// What a control token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    /// The token's id: random, used once.
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    /// The request's method.
    pub htm: String,
    /// The request's path.
    pub htp: String,
    /// The SHA-256 of the request's body, base64url without padding.
    pub bsh: String,
}

/// The SHA-256 of `body`, base64url without padding (the `bsh` claim).
pub fn body_hash(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

impl Claims {
    /// Whether the token is for this method and path (the body is checked
    /// once read, [`Claims::check_body`]).
    pub fn check_target(&self, method: &str, path: &str) -> Result<(), ControlError> {
        if self.htm == method && self.htp == path {
            Ok(())
        } else {
            Err(ControlError::WrongRequest)
        }
    }

    /// Whether the token is for this body.
    pub fn check_body(&self, body: &[u8]) -> Result<(), ControlError> {
        if self.bsh == body_hash(body) {
            Ok(())
        } else {
            Err(ControlError::WrongRequest)
        }
    }

    /// Until when (seconds) the node might still accept this token, and so
    /// must remember its id.
    pub fn accepted_until(&self) -> u64 {
        self.exp.saturating_add(LEEWAY_SECS)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Missing, or not a token we signed (forged, garbled, another secret,
    /// another audience, an over-long lifetime): 401.
    #[error("missing or invalid control token")]
    Invalid,
    /// Expired, or issued in the future: 401.
    #[error("control token expired")]
    Expired,
    /// A token already used: 401.
    #[error("control token already used")]
    Replayed,
    /// A good token for another method, path or body: 403.
    #[error("control token is for another request")]
    WrongRequest,
    /// The node remembers as many live token ids as it may; it refuses
    /// rather than forget one that could then be replayed: 503, retry.
    #[error("too many control tokens in flight")]
    TooManyTokens,
}

impl ControlError {
    /// The HTTP status the node answers with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::Invalid | ControlError::Expired | ControlError::Replayed => 401,
            ControlError::WrongRequest => 403,
            ControlError::TooManyTokens => 503,
        }
    }

    /// The API error code (the `code` of [`crate::ErrorBody`]).
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Invalid | ControlError::Expired => codes::UNAUTHORIZED,
            ControlError::Replayed => codes::REPLAYED,
            ControlError::WrongRequest => codes::FORBIDDEN,
            ControlError::TooManyTokens => codes::BUSY,
        }
    }
}

/// A token for `request`, issued at `now`, good for [`TOKEN_LIFETIME_SECS`],
/// with a fresh random id.
pub fn mint(secret: &ControlSecret, request: &RequestTarget<'_>, now: u64) -> String {
    let claims = Claims {
        aud: AUDIENCE.to_owned(),
        jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        iat: now,
        exp: now.saturating_add(TOKEN_LIFETIME_SECS),
        htm: request.method.to_owned(),
        htp: request.path.to_owned(),
        bsh: body_hash(request.body),
    };
    tincan_token::install_hs256_crypto();
    // HS256 signing of a plain struct cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.bytes()),
    )
    .unwrap_or_default()
}

/// The claims of a token signed with `secret`, for our audience, alive at
/// `now` (give or take [`LEEWAY_SECS`]) and living no longer than
/// [`MAX_TOKEN_LIFETIME_SECS`]. Says nothing of the request or of reuse:
/// see [`verify_request`] and [`ReplayGuard`].
pub fn verify(secret: &ControlSecret, token: &str, now: u64) -> Result<Claims, ControlError> {
    tincan_token::install_hs256_crypto();
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the caller's clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["aud", "exp", "iat", "jti"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.bytes()),
        &validation,
    )
    .map_err(|_| ControlError::Invalid)?;
    let claims = data.claims;
    if claims.aud != AUDIENCE
        || claims.jti.is_empty()
        || claims.jti.len() > MAX_JTI_LEN
        || claims.exp < claims.iat
        || claims.exp - claims.iat > MAX_TOKEN_LIFETIME_SECS
    {
        return Err(ControlError::Invalid);
    }
    if now > claims.exp.saturating_add(LEEWAY_SECS) || claims.iat > now.saturating_add(LEEWAY_SECS)
    {
        return Err(ControlError::Expired);
    }
    Ok(claims)
}

/// [`verify`], and the token must be for `request`'s method, path and
/// body. Reuse is the [`ReplayGuard`]'s to refuse.
pub fn verify_request(
    secret: &ControlSecret,
    token: &str,
    request: &RequestTarget<'_>,
    now: u64,
) -> Result<Claims, ControlError> {
    let claims = verify(secret, token, now)?;
    claims.check_target(request.method, request.path)?;
    claims.check_body(request.body)?;
    Ok(claims)
}

/// The ids of the tokens a node has accepted, each remembered until the
/// token expires (with the leeway): a second use is [`ControlError::Replayed`].
/// Bounded: when full of live ids it refuses new tokens
/// ([`ControlError::TooManyTokens`]) rather than forget one. IO-free: the
/// caller passes `now`.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    ids: std::collections::HashSet<String>,
    /// The same ids by the second after which they can be forgotten.
    by_expiry: std::collections::BTreeSet<(u64, String)>,
}

impl ReplayGuard {
    /// Remembers at most `capacity` live ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ids: Default::default(),
            by_expiry: Default::default(),
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Records the use of the token with `claims` at `now`, or refuses it:
    /// seen before, or no room to remember it.
    pub fn use_once(&mut self, claims: &Claims, now: u64) -> Result<(), ControlError> {
        while let Some((until, _)) = self.by_expiry.first() {
            if *until >= now {
                break;
            }
            if let Some((_, id)) = self.by_expiry.pop_first() {
                self.ids.remove(&id);
            }
        }
        if self.ids.contains(&claims.jti) {
            return Err(ControlError::Replayed);
        }
        if self.ids.len() >= self.capacity {
            return Err(ControlError::TooManyTokens);
        }
        self.ids.insert(claims.jti.clone());
        self.by_expiry
            .insert((claims.accepted_until(), claims.jti.clone()));
        Ok(())
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
