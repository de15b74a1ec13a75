use super::*;
use crate::TokenKeys;

const SECRET: &[u8] = b"app-one-secret-app-one-secret-xx";
const NOW: u64 = 1_800_000_000;

fn keys() -> ApiKeys {
    ApiKeys::parse(&format!(
        "app1:{},app2:{}",
        std::str::from_utf8(SECRET).unwrap(),
        "another-apps-secret-another-apps"
    ))
    .unwrap()
}

fn claims(ttl: u64) -> JoinClaims {
    JoinClaims::new(
        "standup",
        "user-42",
        " Ada ",
        JoinGrants { speak: true },
        NOW,
        ttl,
    )
}

fn sign(kid: Option<&str>, secret: &[u8], claims: &impl Serialize) -> String {
    install_hs256_crypto();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[test]
fn a_minted_token_verifies_as_a_namespaced_participant() {
    let token = mint("app1", SECRET, &claims(300)).unwrap();
    assert!(is_join_token(&token));
    let who = keys().verify(&token, NOW + 1).unwrap();
    assert_eq!(who.user_id, "app:app1:user-42");
    assert!(is_app_user(&who.user_id));
    assert_eq!(who.display_name, "Ada");
    assert_eq!(who.room, "standup");
    assert_eq!(who.grants, JoinGrants { speak: true });
    let listen = JoinClaims {
        grants: JoinGrants { speak: false },
        ..claims(300)
    };
    let who = keys()
        .verify(&mint("app1", SECRET, &listen).unwrap(), NOW)
        .unwrap();
    assert!(!who.grants.speak);
}

#[test]
fn a_forged_signature_is_refused() {
    let token = sign(
        Some("app1"),
        b"not-the-secret-not-the-secret-xx",
        &claims(300),
    );
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
    // A payload swapped under a real signature.
    let real = mint("app1", SECRET, &claims(300)).unwrap();
    let other = JoinClaims {
        room: "boardroom".into(),
        ..claims(300)
    };
    let forged_payload = mint("app1", SECRET, &other).unwrap();
    let mut parts: Vec<&str> = real.split('.').collect();
    parts[1] = forged_payload.split('.').nth(1).unwrap();
    assert_eq!(
        keys().verify(&parts.join("."), NOW),
        Err(JoinTokenError::Invalid)
    );
}

#[test]
fn another_apps_key_does_not_sign_for_this_one() {
    let token = mint("app2", SECRET, &claims(300)).unwrap();
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
}

#[test]
fn an_unknown_kid_is_refused() {
    let token = mint("app9", SECRET, &claims(300)).unwrap();
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::UnknownKey));
    assert_eq!(
        ApiKeys::none().verify(&token, NOW),
        Err(JoinTokenError::UnknownKey)
    );
}

#[test]
fn an_expired_token_is_refused() {
    let token = mint("app1", SECRET, &claims(300)).unwrap();
    assert!(keys().verify(&token, NOW + 299).is_ok());
    assert_eq!(
        keys().verify(&token, NOW + 300),
        Err(JoinTokenError::Expired)
    );
}

#[test]
fn a_token_living_too_long_is_refused() {
    let ok = mint("app1", SECRET, &claims(MAX_JOIN_TOKEN_LIFETIME_SECS)).unwrap();
    assert!(keys().verify(&ok, NOW).is_ok());
    let long = claims(MAX_JOIN_TOKEN_LIFETIME_SECS + 1);
    assert_eq!(mint("app1", SECRET, &long), Err(JoinTokenError::TooLong));
    let token = sign(Some("app1"), SECRET, &long);
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::TooLong));
    // Issued far in the future (a way round the cap): refused.
    let future = JoinClaims::new(
        "standup",
        "u",
        "Ada",
        JoinGrants { speak: true },
        NOW + 3600,
        600,
    );
    let token = sign(Some("app1"), SECRET, &future);
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
}

#[test]
fn a_wrong_or_missing_audience_is_refused() {
    let wrong = JoinClaims {
        aud: "tincan-access".into(),
        ..claims(300)
    };
    let token = sign(Some("app1"), SECRET, &wrong);
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
    let mut no_aud = serde_json::to_value(claims(300)).unwrap();
    no_aud.as_object_mut().unwrap().remove("aud");
    let token = sign(Some("app1"), SECRET, &no_aud);
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
}

#[test]
fn an_access_token_never_passes_as_a_join_token() {
    // Even under the same secret, and with a kid added.
    let access = TokenKeys::new(SECRET, 300).unwrap();
    let token = access.issue("u1", "Ada", NOW);
    assert!(!is_join_token(&token));
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
    let claims = access.verify(&token, NOW).unwrap();
    let with_kid = sign(Some("app1"), SECRET, &claims);
    assert_eq!(keys().verify(&with_kid, NOW), Err(JoinTokenError::Invalid));
}

#[test]
fn a_join_token_never_passes_as_an_access_token() {
    let access = TokenKeys::new(SECRET, 300).unwrap();
    let token = mint("app1", SECRET, &claims(300)).unwrap();
    assert!(access.verify(&token, NOW).is_err());
    // Not even with the access token's `typ` added.
    let mut value = serde_json::to_value(claims(300)).unwrap();
    value["typ"] = "access".into();
    let token = sign(Some("app1"), SECRET, &value);
    assert!(access.verify(&token, NOW).is_err());
}

#[test]
fn malformed_claims_are_refused() {
    let bad = [
        JoinClaims {
            room: "no spaces".into(),
            ..claims(300)
        },
        JoinClaims {
            sub: String::new(),
            ..claims(300)
        },
        JoinClaims {
            sub: "x".repeat(MAX_SUBJECT_LEN + 1),
            ..claims(300)
        },
        JoinClaims {
            name: "  ".into(),
            ..claims(300)
        },
        JoinClaims {
            name: "bell\u{7}".into(),
            ..claims(300)
        },
    ];
    for claims in bad {
        assert_eq!(
            mint("app1", SECRET, &claims),
            Err(JoinTokenError::Invalid),
            "{claims:?}"
        );
        let token = sign(Some("app1"), SECRET, &claims);
        assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
    }
    // Grants must say whether the holder may speak.
    let mut value = serde_json::to_value(claims(300)).unwrap();
    value["grants"] = serde_json::json!({});
    let token = sign(Some("app1"), SECRET, &value);
    assert_eq!(keys().verify(&token, NOW), Err(JoinTokenError::Invalid));
    assert_eq!(keys().verify("garbage", NOW), Err(JoinTokenError::Invalid));
}

#[test]
fn api_key_lists_parse_or_say_why_not() {
    assert!(ApiKeys::parse("").unwrap().is_empty());
    assert_eq!(keys().len(), 2);
    let secret = "s".repeat(MIN_SECRET_LEN);
    assert_eq!(
        ApiKeys::parse(&format!(" a:{secret} , ,b_c-1:{secret}"))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        ApiKeys::parse("nocolon").unwrap_err(),
        JoinTokenError::MalformedKeys
    );
    assert_eq!(
        ApiKeys::parse(&format!("a:{secret},a:{secret}")).unwrap_err(),
        JoinTokenError::MalformedKeys
    );
    assert_eq!(
        ApiKeys::parse("a:short").unwrap_err(),
        JoinTokenError::WeakSecret("a".into())
    );
    assert_eq!(
        ApiKeys::parse(&format!("a.b:{secret}")).unwrap_err(),
        JoinTokenError::BadKeyId
    );
    // Debug never shows a secret.
    let shown = format!("{:?}", keys());
    assert!(
        shown.contains("app1") && !shown.contains("secret"),
        "{shown}"
    );
}
