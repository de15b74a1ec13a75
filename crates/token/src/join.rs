//! Join tokens: how an app that embeds calls lets its own users into a room
//! without Tincan accounts (`docs/embedding.md`).
//!
//! The app's backend holds an API key (an id and a secret) that the
//! deployer created for it, and mints a short-lived HS256 JWT per
//! participant:
//!
//! - header: `{"alg": "HS256", "typ": "JWT", "kid": "<api key id>"}`;
//! - claims: `aud` = `"tincan-join"`, `room`, `sub` (the app's own user
//!   id), `name` (display name), `grants` = `{"speak": true | false}`,
//!   `iat` and `exp` (seconds), with `exp - iat` at most
//!   [`MAX_JOIN_TOKEN_LIFETIME_SECS`].
//!
//! The audience keeps a join token from passing as an access token and an
//! access token (no `aud`, no `kid`) from passing as a join token.
//! Participants are namespaced by key ([`app_user_id`]), so an app's user
//! can never be taken for a Tincan account or another app's user.

use std::collections::HashMap;
use tincan_signaling::RoomId;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{install_hs256_crypto, MIN_SECRET_LEN};

/// The `aud` claim of every join token.
pub const JOIN_AUDIENCE: &str = "tincan-join";

/// Longest lifetime (`exp - iat`) a join token may claim, in seconds.
pub const MAX_JOIN_TOKEN_LIFETIME_SECS: u64 = 600;

/// How far in the future `iat` may be (clock skew between the app's
/// backend and us), in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// The user-id prefix of participants who joined with a join token.
pub const APP_USER_PREFIX: &str = "app:";

/// Longest API key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Longest `sub`, in bytes.
pub const MAX_SUBJECT_LEN: usize = 128;

/// Longest display name, in characters (at most 256 bytes), as for accounts.
pub const MAX_NAME_CHARS: usize = 64;

/// What the participant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinGrants {
    /// `true`: may speak (unmute, publish a microphone). `false`:
    /// listen-only.
    pub speak: bool,
}

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    /// Always [`JOIN_AUDIENCE`].
    pub aud: String,
    /// The one room the token lets its holder join.
    pub room: String,
    /// The participant's identity in the app (its own user id).
    pub sub: String,
    /// Display name shown to the room.
    pub name: String,
    /// What the participant may do.
    pub grants: JoinGrants,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

impl JoinClaims {
    /// Claims for `sub` (`name`) in `room`, issued at `now` and living
    /// `ttl_secs`.
    pub fn new(
        room: impl Into<String>,
        sub: impl Into<String>,
        name: impl Into<String>,
        grants: JoinGrants,
        now: u64,
        ttl_secs: u64,
    ) -> Self {
        Self {
            aud: JOIN_AUDIENCE.to_owned(),
            room: room.into(),
            sub: sub.into(),
            name: name.into(),
            grants,
            iat: now,
            exp: now.saturating_add(ttl_secs),
        }
    }
}

/// Who a verified join token lets in, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinIdentity {
    /// `app:<key id>:<sub>` ([`app_user_id`]).
    pub user_id: String,
    /// The display name, trimmed.
    pub display_name: String,
    /// The one room it may join.
    pub room: String,
    /// Whether it may speak.
    pub grants: JoinGrants,
}

/// Why a join token was refused, or API keys could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinTokenError {
    /// No API key has the token's `kid`.
    #[error("unknown API key")]
    UnknownKey,
    /// The token is past its `exp`.
    #[error("the join token has expired")]
    Expired,
    /// `exp - iat` is over [`MAX_JOIN_TOKEN_LIFETIME_SECS`].
    #[error("a join token may live at most {MAX_JOIN_TOKEN_LIFETIME_SECS} s")]
    TooLong,
    /// Not a well-formed join token signed with its key (bad signature,
    /// wrong audience, missing or malformed claims, `iat` in the future).
    #[error("the join token is invalid")]
    Invalid,
    /// An API key secret shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("API key `{0}`: the secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret(String),
    /// An API key id outside `[A-Za-z0-9_-]{1,64}`.
    #[error("an API key id is 1-{MAX_KEY_ID_LEN} of A-Z, a-z, 0-9, '_' and '-'")]
    BadKeyId,
    /// The API key list is not `id:secret[,id:secret...]`, or names an id twice.
    #[error("API keys are `id:secret` pairs separated by commas, each id once")]
    MalformedKeys,
}

/// The user id of participant `sub` of the app holding key `key_id`.
/// Tincan account ids never contain `:`, so these never collide with them.
pub fn app_user_id(key_id: &str, sub: &str) -> String {
    format!("{APP_USER_PREFIX}{key_id}:{sub}")
}

/// Whether `user_id` is an app participant's (not a Tincan account's).
pub fn is_app_user(user_id: &str) -> bool {
    user_id.starts_with(APP_USER_PREFIX)
}

/// Whether `token` is shaped as a join token (its header names a `kid`),
/// so `$connect` knows which verifier to ask. Says nothing about validity.
pub fn is_join_token(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.kid.is_some())
}

/// Signs `claims` with API key `key_id` / `secret`: the helper a Rust
/// backend mints join tokens with. Refuses claims Tincan would refuse
/// (lifetime over the maximum, an empty `sub`, a bad room).
pub fn mint(key_id: &str, secret: &[u8], claims: &JoinClaims) -> Result<String, JoinTokenError> {
    check_key(key_id, secret)?;
    if claims.exp.saturating_sub(claims.iat) > MAX_JOIN_TOKEN_LIFETIME_SECS {
        return Err(JoinTokenError::TooLong);
    }
    check_claims(claims)?;
    install_hs256_crypto();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
        .map_err(|_| JoinTokenError::Invalid)
}

fn check_key(id: &str, secret: &[u8]) -> Result<(), JoinTokenError> {
    let id_ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(JoinTokenError::BadKeyId);
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(JoinTokenError::WeakSecret(id.to_owned()));
    }
    Ok(())
}

/// The room, subject and name rules; [`JoinTokenError::Invalid`] if broken.
fn check_claims(claims: &JoinClaims) -> Result<(), JoinTokenError> {
    let room_ok = RoomId::is_valid(&claims.room);
    let sub_ok = !claims.sub.is_empty()
        && claims.sub.len() <= MAX_SUBJECT_LEN
        && !claims.sub.chars().any(char::is_control);
    let name = claims.name.trim();
    let name_ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.len() <= 256
        && !name.chars().any(char::is_control);
    if claims.aud == JOIN_AUDIENCE && room_ok && sub_ok && name_ok {
        Ok(())
    } else {
        Err(JoinTokenError::Invalid)
    }
}

/// The API keys `$connect` accepts join tokens from.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: never print a secret.
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("ApiKeys").field("ids", &ids).finish()
    }
}

impl ApiKeys {
    /// No keys: every join token is refused.
    pub fn none() -> Self {
        Self::default()
    }

    /// Keys from `id:secret` pairs (`TINCAN_API_KEYS`), separated by
    /// commas; blank entries are skipped. Each id is `[A-Za-z0-9_-]{1,64}`,
    /// each secret at least [`MIN_SECRET_LEN`] bytes.
    pub fn parse(list: &str) -> Result<Self, JoinTokenError> {
        let mut keys = Self::none();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry.split_once(':').ok_or(JoinTokenError::MalformedKeys)?;
            keys.add(id, secret.as_bytes())?;
        }
        Ok(keys)
    }

    /// Adds key `id` with `secret`.
    pub fn add(&mut self, id: &str, secret: &[u8]) -> Result<(), JoinTokenError> {
        check_key(id, secret)?;
        if self.keys.contains_key(id) {
            return Err(JoinTokenError::MalformedKeys);
        }
        install_hs256_crypto();
        self.keys
            .insert(id.to_owned(), DecodingKey::from_secret(secret));
        Ok(())
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Who `token` lets in at `now` (seconds), if it is a valid join token
    /// signed with one of these keys.
    pub fn verify(&self, token: &str, now: u64) -> Result<JoinIdentity, JoinTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JoinTokenError::Invalid)?;
        let kid = header.kid.ok_or(JoinTokenError::Invalid)?;
        let key = self.keys.get(&kid).ok_or(JoinTokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_audience(&[JOIN_AUDIENCE]);
        validation.set_required_spec_claims(&["aud", "exp", "iat", "sub"]);
        let claims = jsonwebtoken::decode::<JoinClaims>(token, key, &validation)
            .map_err(|_| JoinTokenError::Invalid)?
            .claims;
        check_claims(&claims)?;
        if claims.exp <= claims.iat || claims.iat > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(JoinTokenError::Invalid);
        }
        if claims.exp - claims.iat > MAX_JOIN_TOKEN_LIFETIME_SECS {
            return Err(JoinTokenError::TooLong);
        }
        if now >= claims.exp {
            return Err(JoinTokenError::Expired);
        }
        Ok(JoinIdentity {
            user_id: app_user_id(&kid, &claims.sub),
            display_name: claims.name.trim().to_owned(),
            room: claims.room,
            grants: claims.grants,
        })
    }
}

#[cfg(test)]
mod tests;
