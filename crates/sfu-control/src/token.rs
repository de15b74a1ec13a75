//! The control token: an HS256 JWT for one room and one peer.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tincan_turn_credentials::TurnSecret;

/// The label the signing key is derived under from the TURN secret.
pub const KEY_LABEL: &str = "tincan-sfu-control-v1";
/// The token's audience (`aud`).
pub const AUDIENCE: &str = "tincan-sfu";
/// Longest lifetime accepted, `exp - iat`, seconds.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 60;
/// Lifetime [`mint`] gives.
pub const TOKEN_LIFETIME_SECS: u64 = 30;
/// Clock skew tolerated between the signaling side and the node, seconds.
pub const LEEWAY_SECS: u64 = 5;

/// What a control token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    /// The room the bearer may act on.
    pub room: String,
    /// The peer id the bearer may act as.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    /// Whether the token is good for `room` and `peer`.
    pub fn authorizes(&self, room: &str, peer: &str) -> bool {
        self.room == room && self.sub == peer
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Not a token we signed (forged, garbled, another secret, another
    /// audience, or an over-long lifetime): 401.
    #[error("invalid control token")]
    Invalid,
    /// Expired, or issued in the future: 401.
    #[error("control token expired")]
    Expired,
    /// A good token for another room or peer: 403.
    #[error("control token is for another room or peer")]
    WrongTarget,
}

impl ControlError {
    /// The HTTP status the node answers with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::Invalid | ControlError::Expired => 401,
            ControlError::WrongTarget => 403,
        }
    }
}

fn key(secret: &TurnSecret) -> [u8; 32] {
    secret.derive_key(KEY_LABEL)
}

/// A token for `peer` in `room`, issued at `now`, good for
/// [`TOKEN_LIFETIME_SECS`].
pub fn mint(secret: &TurnSecret, room: &str, peer: &str, now: u64) -> String {
    let claims = Claims {
        aud: AUDIENCE.to_owned(),
        room: room.to_owned(),
        sub: peer.to_owned(),
        iat: now,
        exp: now.saturating_add(TOKEN_LIFETIME_SECS),
    };
    tincan_token::install_hs256_crypto();
    // HS256 signing of a plain struct cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&key(secret)),
    )
    .unwrap_or_default()
}

/// The claims of a token signed with `secret`'s control key, for our
/// audience, alive at `now` (give or take [`LEEWAY_SECS`]) and living no
/// longer than [`MAX_TOKEN_LIFETIME_SECS`].
pub fn verify(secret: &TurnSecret, token: &str, now: u64) -> Result<Claims, ControlError> {
    tincan_token::install_hs256_crypto();
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the caller's clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["aud", "exp", "iat", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key(secret)), &validation)
            .map_err(|_| ControlError::Invalid)?;
    let claims = data.claims;
    if claims.aud != AUDIENCE
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

/// [`verify`], and the token must name `room` and `peer`.
pub fn verify_for(
    secret: &TurnSecret,
    token: &str,
    room: &str,
    peer: &str,
    now: u64,
) -> Result<Claims, ControlError> {
    let claims = verify(secret, token, now)?;
    if !claims.authorizes(room, peer) {
        return Err(ControlError::WrongTarget);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn secret() -> TurnSecret {
        TurnSecret::new("0123456789abcdef0123456789abcdef")
    }

    fn sign(claims: &serde_json::Value, key: &[u8]) -> String {
        tincan_token::install_hs256_crypto();
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(key),
        )
        .unwrap()
    }

    #[test]
    fn minted_token_verifies_for_its_room_and_peer() {
        let token = mint(&secret(), "room1", "peer1", 1_000);
        let claims = verify_for(&secret(), &token, "room1", "peer1", 1_010).unwrap();
        assert_eq!(claims.room, "room1");
        assert_eq!(claims.sub, "peer1");
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.exp, 1_000 + TOKEN_LIFETIME_SECS);
    }

    #[test]
    fn token_for_another_room_or_peer_is_forbidden() {
        let token = mint(&secret(), "room1", "peer1", 1_000);
        assert_eq!(
            verify_for(&secret(), &token, "room2", "peer1", 1_000),
            Err(ControlError::WrongTarget)
        );
        assert_eq!(
            verify_for(&secret(), &token, "room1", "peer2", 1_000),
            Err(ControlError::WrongTarget)
        );
        assert_eq!(ControlError::WrongTarget.status(), 403);
    }

    #[test]
    fn expired_and_future_tokens_are_refused_beyond_the_leeway() {
        let token = mint(&secret(), "r", "p", 1_000);
        let exp = 1_000 + TOKEN_LIFETIME_SECS;
        assert!(verify(&secret(), &token, exp + LEEWAY_SECS).is_ok());
        assert_eq!(
            verify(&secret(), &token, exp + LEEWAY_SECS + 1),
            Err(ControlError::Expired)
        );
        assert!(verify(&secret(), &token, 1_000 - LEEWAY_SECS).is_ok());
        assert_eq!(
            verify(&secret(), &token, 1_000 - LEEWAY_SECS - 1),
            Err(ControlError::Expired)
        );
        assert_eq!(ControlError::Expired.status(), 401);
    }

    #[test]
    fn forged_tokens_are_invalid() {
        // Another secret.
        let other = TurnSecret::new("another-secret-another-secret-xx");
        let token = mint(&other, "r", "p", 1_000);
        assert_eq!(verify(&secret(), &token, 1_000), Err(ControlError::Invalid));
        // Signed with the raw TURN secret instead of the derived key.
        let claims = serde_json::json!({
            "aud": AUDIENCE, "room": "r", "sub": "p", "iat": 1_000, "exp": 1_030
        });
        let raw = sign(&claims, b"0123456789abcdef0123456789abcdef");
        assert_eq!(verify(&secret(), &raw, 1_000), Err(ControlError::Invalid));
        // A payload swapped for another room's, keeping the signature.
        let good = mint(&secret(), "r", "p", 1_000);
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "aud": AUDIENCE, "room": "other", "sub": "p", "iat": 1_000, "exp": 1_030
            }))
            .unwrap(),
        );
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&secret(), &parts.join("."), 1_000),
            Err(ControlError::Invalid)
        );
        // alg none.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let none = format!("{header}.{}.", parts[1]);
        assert_eq!(verify(&secret(), &none, 1_000), Err(ControlError::Invalid));
        // Garbage.
        assert_eq!(verify(&secret(), "", 1_000), Err(ControlError::Invalid));
        assert_eq!(
            verify(&secret(), "a.b.c", 1_000),
            Err(ControlError::Invalid)
        );
        assert_eq!(ControlError::Invalid.status(), 401);
    }

    #[test]
    fn wrong_audience_or_long_lifetime_is_invalid() {
        let key = secret().derive_key(KEY_LABEL);
        let aud = sign(
            &serde_json::json!({
                "aud": "tincan-api", "room": "r", "sub": "p", "iat": 1_000, "exp": 1_030
            }),
            &key,
        );
        assert_eq!(verify(&secret(), &aud, 1_000), Err(ControlError::Invalid));
        let long = sign(
            &serde_json::json!({
                "aud": AUDIENCE, "room": "r", "sub": "p", "iat": 1_000, "exp": 1_061
            }),
            &key,
        );
        assert_eq!(verify(&secret(), &long, 1_000), Err(ControlError::Invalid));
        let no_iat = sign(
            &serde_json::json!({"aud": AUDIENCE, "room": "r", "sub": "p", "exp": 1_030}),
            &key,
        );
        assert_eq!(
            verify(&secret(), &no_iat, 1_000),
            Err(ControlError::Invalid)
        );
        let ok = sign(
            &serde_json::json!({
                "aud": AUDIENCE, "room": "r", "sub": "p", "iat": 1_000, "exp": 1_060
            }),
            &key,
        );
        assert!(verify(&secret(), &ok, 1_000).is_ok());
    }
}
