//! A media node checks whatever username and password a TURN client sends.
//! `parse_username` reads any string as `expiry:userId` or refuses it as
//! malformed; `verify` never panics and accepts a username/password pair
//! only if the password is ours for exactly that username, before its
//! expiry: a minted credential with any character changed is refused.

use proptest::prelude::*;
use proptest::test_runner::Config;
use tincan_turn_credentials::{parse_username, CredentialError, TurnSecret};

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
        proptest::string::string_regex(&format!("[0-9:a-z+/=-]{{0,{max}}}"))
            .expect("a valid regex"),
    ]
    .boxed()
}

/// A username: anything, or `digits:anything` with the digits bent.
fn username() -> BoxedStrategy<String> {
    let expiry = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{0,24}",
        "[-+ 0-9a-f]{0,6}",
    ];
    prop_oneof![
        text(64),
        (expiry, text(32)).prop_map(|(e, u)| format!("{e}:{u}")),
    ]
    .boxed()
}

fn secret() -> TurnSecret {
    TurnSecret::new("proptest-turn-secret")
}

/// One change to a string, character-wise.
fn changed(s: &str, i: usize, c: char, how: u8) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let len = chars.len();
    match how % 3 {
        0 if len > 0 => chars[i % len] = c,
        1 if len > 0 => {
            chars.remove(i % len);
        }
        _ => chars.insert(i % (len + 1), c),
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(budget(2048))]

    #[test]
    fn any_username_parses_as_expiry_and_user_or_is_malformed(username in username()) {
        let model = username.split_once(':').and_then(|(e, u)| {
            let digits = !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| e.parse::<u64>().ok()).flatten().map(|e| (e, u))
        });
        match parse_username(&username) {
            Ok(parsed) => prop_assert_eq!(Some(parsed), model),
            Err(err) => {
                prop_assert_eq!(err, CredentialError::Malformed);
                prop_assert_eq!(model, None);
            }
        }
    }

    #[test]
    fn any_pair_is_accepted_only_with_our_password(
        username in username(),
        password in text(40),
        now in any::<u64>(),
    ) {
        let secret = secret();
        match secret.verify(&username, &password, now) {
            Ok(user) => {
                prop_assert_eq!(&password, &secret.password_for(&username));
                let (expiry, parsed_user) = parse_username(&username)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(now < expiry);
                prop_assert_eq!(user, parsed_user);
            }
            Err(CredentialError::Malformed) => prop_assert!(parse_username(&username).is_err()),
            Err(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(budget(1024))]

    #[test]
    fn minted_credentials_with_a_character_changed_are_refused(
        user in text(32),
        now in any::<u64>(),
        ttl in 1u64..100_000,
        i in any::<usize>(),
        c in prop_oneof![any::<char>(), proptest::sample::select(vec!['0', '9', ':', '=', '+', '/', 'A'])],
        how in any::<u8>(),
        in_username in any::<bool>(),
    ) {
        let secret = secret();
        let cred = secret.mint(&user, now, ttl);
        let at = now.min(cred.expires_at.saturating_sub(1));
        if cred.expires_at > now {
            prop_assert_eq!(secret.verify(&cred.username, &cred.password, at), Ok(user.as_str()));
        }
        let (username, password) = if in_username {
            (changed(&cred.username, i, c, how), cred.password.clone())
        } else {
            (cred.username.clone(), changed(&cred.password, i, c, how))
        };
        prop_assume!(username != cred.username || password != cred.password);
        let refused = secret.verify(&username, &password, at);
        prop_assert!(
            matches!(refused, Err(CredentialError::BadPassword | CredentialError::Malformed)),
            "{username:?} / {password:?} gave {refused:?}"
        );
    }
}
