use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::*;

fn secret() -> ControlSecret {
    ControlSecret::new("0123456789abcdef0123456789abcdef").unwrap()
}

const PATH: &str = "/sfu/v1/rooms/r1/peers/p1";
const BODY: &[u8] = br#"{"offer":"v=0","muted":false}"#;

fn put() -> RequestTarget<'static> {
    RequestTarget {
        method: "PUT",
        path: PATH,
        body: BODY,
    }
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

fn claims_json(iat: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({
        "aud": AUDIENCE, "jti": "id-1", "iat": iat, "exp": exp,
        "htm": "PUT", "htp": PATH, "bsh": body_hash(BODY),
    })
}

#[test]
fn a_secret_has_at_least_32_bytes_and_is_never_printed() {
    assert_eq!(
        ControlSecret::new("short").unwrap_err(),
        SecretError::TooShort { len: 5 }
    );
    assert!(ControlSecret::new([7u8; 32].to_vec()).is_ok());
    assert_eq!(format!("{:?}", secret()), "ControlSecret(..)");
}

#[test]
fn a_minted_token_is_good_for_its_request_only() {
    let token = mint(&secret(), &put(), 1_000);
    let claims = verify_request(&secret(), &token, &put(), 1_002).unwrap();
    assert_eq!(claims.exp, 1_000 + TOKEN_LIFETIME_SECS);
    assert_eq!(claims.htm, "PUT");
    assert_eq!(claims.htp, PATH);
    assert_eq!(claims.jti.len(), 22);

    let other_body = RequestTarget {
        body: br#"{"offer":"v=0 mallory","muted":false}"#,
        ..put()
    };
    let other_path = RequestTarget {
        path: "/sfu/v1/rooms/r1/peers/p2",
        ..put()
    };
    let other_method = RequestTarget {
        method: "DELETE",
        body: b"",
        ..put()
    };
    let mute = RequestTarget {
        method: "POST",
        path: "/sfu/v1/rooms/r1/peers/p1/mute",
        body: br#"{"muted":true}"#,
    };
    for other in [other_body, other_path, other_method, mute] {
        let err = verify_request(&secret(), &token, &other, 1_000).unwrap_err();
        assert_eq!(err, ControlError::WrongRequest, "{other:?}");
        assert_eq!((err.status(), err.code()), (403, codes::FORBIDDEN));
    }
}

#[test]
fn two_tokens_for_one_request_have_different_ids() {
    let a = verify(&secret(), &mint(&secret(), &put(), 1_000), 1_000).unwrap();
    let b = verify(&secret(), &mint(&secret(), &put(), 1_000), 1_000).unwrap();
    assert_ne!(a.jti, b.jti);
}

#[test]
fn expired_and_future_tokens_are_refused_beyond_the_leeway() {
    let token = mint(&secret(), &put(), 1_000);
    let exp = 1_000 + TOKEN_LIFETIME_SECS;
    assert!(verify(&secret(), &token, exp + LEEWAY_SECS).is_ok());
    let err = verify(&secret(), &token, exp + LEEWAY_SECS + 1).unwrap_err();
    assert_eq!(err, ControlError::Expired);
    assert_eq!((err.status(), err.code()), (401, codes::UNAUTHORIZED));
    assert!(verify(&secret(), &token, 1_000 - LEEWAY_SECS).is_ok());
    assert_eq!(
        verify(&secret(), &token, 1_000 - LEEWAY_SECS - 1),
        Err(ControlError::Expired)
    );
}

#[test]
fn forged_tokens_are_invalid() {
    // Another secret.
    let other = ControlSecret::new("another-secret-another-secret-xx").unwrap();
    let token = mint(&other, &put(), 1_000);
    assert_eq!(verify(&secret(), &token, 1_000), Err(ControlError::Invalid));
    // A payload swapped for another request's, keeping the signature.
    let good = mint(&secret(), &put(), 1_000);
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut forged = claims_json(1_000, 1_005);
    forged["htp"] = "/sfu/v1/rooms/r1/peers/p2".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
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
fn wrong_audience_long_lifetime_or_missing_claims_are_invalid() {
    let key = b"0123456789abcdef0123456789abcdef";
    let mut aud = claims_json(1_000, 1_005);
    aud["aud"] = "tincan-api".into();
    assert_eq!(
        verify(&secret(), &sign(&aud, key), 1_000),
        Err(ControlError::Invalid)
    );
    let long = claims_json(1_000, 1_000 + MAX_TOKEN_LIFETIME_SECS + 1);
    assert_eq!(
        verify(&secret(), &sign(&long, key), 1_000),
        Err(ControlError::Invalid)
    );
    for claim in ["jti", "iat", "htm", "htp", "bsh"] {
        let mut missing = claims_json(1_000, 1_005);
        missing.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            verify(&secret(), &sign(&missing, key), 1_000),
            Err(ControlError::Invalid),
            "without {claim}"
        );
    }
    let mut long_id = claims_json(1_000, 1_005);
    long_id["jti"] = "x".repeat(65).into();
    assert_eq!(
        verify(&secret(), &sign(&long_id, key), 1_000),
        Err(ControlError::Invalid)
    );
    let ok = claims_json(1_000, 1_000 + MAX_TOKEN_LIFETIME_SECS);
    assert!(verify(&secret(), &sign(&ok, key), 1_000).is_ok());
}

#[test]
fn a_token_is_used_once_and_its_id_forgotten_only_when_it_cannot_be_accepted() {
    let mut guard = ReplayGuard::new(8);
    let token = mint(&secret(), &put(), 1_000);
    let claims = verify_request(&secret(), &token, &put(), 1_000).unwrap();
    assert_eq!(guard.use_once(&claims, 1_000), Ok(()));
    let err = guard.use_once(&claims, 1_001).unwrap_err();
    assert_eq!(err, ControlError::Replayed);
    assert_eq!((err.status(), err.code()), (401, codes::REPLAYED));
    // Still remembered at the last second verify accepts it...
    let last = claims.accepted_until();
    assert!(verify(&secret(), &token, last).is_ok());
    assert_eq!(guard.use_once(&claims, last), Err(ControlError::Replayed));
    // ...and forgotten only once verify refuses it anyway.
    assert_eq!(
        verify(&secret(), &token, last + 1),
        Err(ControlError::Expired)
    );
    let other = verify(&secret(), &mint(&secret(), &put(), last + 1), last + 1).unwrap();
    guard.use_once(&other, last + 1).unwrap();
    assert_eq!(guard.len(), 1, "the first id was dropped, the new one kept");
}

#[test]
fn a_full_guard_refuses_rather_than_forgets() {
    let mut guard = ReplayGuard::new(2);
    let tokens: Vec<Claims> = (0..3)
        .map(|_| verify(&secret(), &mint(&secret(), &put(), 1_000), 1_000).unwrap())
        .collect();
    guard.use_once(&tokens[0], 1_000).unwrap();
    guard.use_once(&tokens[1], 1_000).unwrap();
    let err = guard.use_once(&tokens[2], 1_000).unwrap_err();
    assert_eq!(err, ControlError::TooManyTokens);
    assert_eq!((err.status(), err.code()), (503, codes::BUSY));
    // The remembered ones are still refused as replays.
    assert_eq!(
        guard.use_once(&tokens[0], 1_001),
        Err(ControlError::Replayed)
    );
    // Once they expire there is room again.
    let later = tokens[0].accepted_until() + 1;
    guard.use_once(&tokens[2], later).unwrap();
    assert_eq!(guard.len(), 1);
}
