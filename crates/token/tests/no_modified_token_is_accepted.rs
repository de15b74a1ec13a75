//! `TokenKeys::verify` sees whatever a client puts in `?token=` or a bearer
//! header. Whatever the string, it answers without panicking; no string but
//! a token we issued is accepted: not garbage, not a JWT-shaped forgery, and
//! not one of our own tokens with a bit flipped, a piece cut off or its
//! segments swapped or spliced from another of our tokens. A token signed
//! with our key is accepted only with the claims the protocol requires.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use tincan_token::{AccessClaims, TokenError, TokenKeys, ACCESS_TOKEN_TYPE};

const SECRET: &[u8] = b"proptest-secret-proptest-secret-0123";
const TTL: u64 = 900;

fn keys() -> TokenKeys {
    TokenKeys::new(SECRET, TTL).expect("a long enough secret")
}

/// A fixed, small budget, and no failure files written.
fn budget(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter),
        proptest::string::string_regex(&format!("[A-Za-z0-9_.=-]{{0,{max}}}"))
            .expect("a valid regex"),
    ]
    .boxed()
}

/// Realistic clocks: seconds since the epoch up to the year 36812.
fn now() -> impl Strategy<Value = u64> {
    0u64..(1 << 40)
}

fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..96).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
        text(40),
    ]
    .boxed()
}

/// A header naming any algorithm, `none` and HS256 included.
fn header() -> BoxedStrategy<String> {
    prop_oneof![
        proptest::sample::select(vec![
            "none", "HS256", "HS384", "HS512", "RS256", "ES256", ""
        ])
        .prop_map(|alg| URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string())),
        segment(),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text(16).prop_map(Value::String),
        Just(Value::from(ACCESS_TOKEN_TYPE)),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((claim_name(), inner), 0..6)
                .prop_map(|f| Value::Object(Map::from_iter(f))),
        ]
    })
    .boxed()
}

fn claim_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(vec!["sub", "name", "iat", "exp", "typ", "aud", "nbf", "iss"])
            .prop_map(str::to_owned),
        1 => text(8),
    ]
    .boxed()
}

/// One change to a token's text.
#[derive(Debug, Clone)]
enum Change {
    /// Flip one of the low 7 bits of a byte (the text stays ASCII).
    FlipBit(usize, u8),
    Truncate(usize),
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    SwapSegments(usize, usize),
    /// Replace segment `n` with the same segment of another of our tokens.
    Splice(usize),
    Append(String),
}

fn change() -> impl Strategy<Value = Change> {
    let ch = prop_oneof![
        proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                .chars()
                .collect::<Vec<_>>()
        ),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..7).prop_map(|(i, b)| Change::FlipBit(i, b)),
        any::<usize>().prop_map(Change::Truncate),
        any::<usize>().prop_map(Change::Delete),
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Change::Insert(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Change::Replace(i, c)),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Change::SwapSegments(a, b)),
        (0usize..3).prop_map(Change::Splice),
        prop_oneof![
            Just(".".to_owned()),
            Just("=".to_owned()),
            Just("==".to_owned()),
            text(8)
        ]
        .prop_map(Change::Append),
    ]
}

fn apply(token: &str, other: &str, change: Change) -> String {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match change {
        Change::FlipBit(i, bit) => {
            let mut bytes = token.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = at(i, bytes.len());
                // Only ASCII bytes: flipping a low bit keeps them ASCII.
                if bytes[i].is_ascii() {
                    bytes[i] ^= 1 << bit;
                }
            }
            String::from_utf8(bytes).unwrap_or_else(|_| token.to_owned())
        }
        Change::Truncate(i) => token.chars().take(at(i, token.chars().count())).collect(),
        Change::Delete(i) => {
            let mut chars: Vec<char> = token.chars().collect();
            if !chars.is_empty() {
                chars.remove(at(i, chars.len()));
            }
            chars.into_iter().collect()
        }
        Change::Insert(i, c) => {
            let mut chars: Vec<char> = token.chars().collect();
            chars.insert(at(i, chars.len() + 1), c);
            chars.into_iter().collect()
        }
        Change::Replace(i, c) => {
            let mut chars: Vec<char> = token.chars().collect();
            if !chars.is_empty() {
                let i = at(i, chars.len());
                chars[i] = c;
            }
            chars.into_iter().collect()
        }
        Change::SwapSegments(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if a < parts.len() && b < parts.len() {
                parts.swap(a, b);
            }
            parts.join(".")
        }
        Change::Splice(n) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if let (Some(slot), Some(theirs)) = (parts.get_mut(n), other.split('.').nth(n)) {
                *slot = theirs;
            }
            parts.join(".")
        }
        Change::Append(tail) => format!("{token}{tail}"),
    }
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn any_string_is_refused(token in text(300), now in now()) {
        prop_assert_eq!(keys().verify(&token, now), Err(TokenError::Invalid));
    }

    #[test]
    fn jwt_shaped_forgeries_are_refused(
        header in header(),
        payload in segment(),
        signature in segment(),
        now in now(),
    ) {
        let token = format!("{header}.{payload}.{signature}");
        prop_assert_eq!(keys().verify(&token, now), Err(TokenError::Invalid));
    }
}

proptest! {
    #![proptest_config(budget(512))]

    #[test]
    fn modified_tokens_are_refused(
        sub in text(24).prop_filter("a user id", |s| !s.is_empty()),
        name in text(24),
        issued in now(),
        changes in proptest::collection::vec(change(), 1..4),
    ) {
        let keys = keys();
        let token = keys.issue(&sub, &name, issued);
        // The unmodified token is accepted, with what it was issued for.
        let claims = keys.verify(&token, issued).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((claims.sub.as_str(), claims.name.as_str()), (sub.as_str(), name.as_str()));
        let other = keys.issue(&format!("other-{sub}"), "Mallory", issued + 1);
        let mut forged = token.clone();
        for change in changes {
            forged = apply(&forged, &other, change);
        }
        prop_assume!(forged != token && forged != other);
        prop_assert_eq!(keys.verify(&forged, issued), Err(TokenError::Invalid), "{}", forged);
    }

    /// Even signed with our key, a payload is accepted only as an access
    /// token with a user and an expiry still ahead.
    #[test]
    fn signed_payloads_are_accepted_only_as_access_tokens(
        base in (text(16), text(16), now(), now()),
        extra in proptest::collection::vec((claim_name(), json_value()), 0..4),
        drop in proptest::option::of(claim_name()),
        now in now(),
    ) {
        let (sub, name, iat, exp) = base;
        let mut claims = json!({"sub": sub, "name": name, "iat": iat, "exp": exp, "typ": "access"});
        let fields = claims.as_object_mut().expect("an object");
        for (k, v) in extra {
            fields.insert(k, v);
        }
        if let Some(k) = drop {
            fields.remove(&k);
        }
        tincan_token::install_hs256_crypto();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let model: Option<AccessClaims> = serde_json::from_value(claims.clone()).ok();
        match keys().verify(&token, now) {
            Ok(accepted) => {
                prop_assert_eq!(Some(&accepted), model.as_ref());
                prop_assert_eq!(accepted.typ.as_str(), ACCESS_TOKEN_TYPE);
                prop_assert!(!accepted.sub.is_empty());
                prop_assert!(now < accepted.exp);
            }
            Err(TokenError::Expired) => {
                let model = model.ok_or_else(|| TestCaseError::fail("expired but not claims"))?;
                prop_assert!(now >= model.exp);
            }
            Err(_) => {
                // Refusals are `Invalid` unless the claims were fine.
                if let Some(m) = model.filter(|m| m.typ == ACCESS_TOKEN_TYPE && !m.sub.is_empty()) {
                    // Valid claims refused: only for registered claims the
                    // JWT library checks itself (`aud`, `nbf`).
                    prop_assert!(
                        claims.get("aud").is_some() || claims.get("nbf").is_some(),
                        "refused {:?}", m
                    );
                }
            }
        }
    }
}
