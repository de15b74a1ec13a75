//! The account service end to end on the embedded store: register, login,
//! refresh rotation and reuse detection, logout, and login timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tincan_accounts::{
    AccountError, AccountEvents, AccountOptions, AccountService, AuthLimits, EmbeddedStore,
    PasswordParams, PreferencesPatch, Quota, Stores,
};
use tincan_token::TokenKeys;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const NOW: u64 = 1_700_000_000_000;

fn service(dir: &std::path::Path, params: PasswordParams) -> AccountService {
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir).unwrap()));
    AccountService::new(stores, TokenKeys::new(SECRET, 900).unwrap(), params, 3600).unwrap()
}

#[tokio::test]
async fn register_login_refresh_logout() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), PasswordParams::insecure_fast());
    let user = svc
        .register("Ada", "correct horse battery", " Ada Lovelace ", None, NOW)
        .await
        .unwrap();
    assert_eq!(user.display_name, "Ada Lovelace");
    assert!(matches!(
        svc.register("ADA", "another password", "Imposter", None, NOW)
            .await,
        Err(AccountError::UsernameTaken)
    ));
    assert!(matches!(
        svc.register("bad name", "whatever123", "X", None, NOW)
            .await,
        Err(AccountError::Invalid(_))
    ));

    let pair = svc
        .login("ada", "correct horse battery", None, NOW)
        .await
        .unwrap();
    assert_eq!(pair.user, user);
    assert_eq!(pair.expires_in, 900);
    let claims = svc.tokens().verify(&pair.access_token, NOW / 1000).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.name.as_str()),
        (user.id.as_str(), "Ada Lovelace")
    );
    assert!(matches!(
        svc.login("ada", "wrong horse battery", None, NOW).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(matches!(
        svc.login("nobody", "correct horse battery", None, NOW)
            .await,
        Err(AccountError::InvalidCredentials)
    ));

    // Rotation: the new token works, the old one no longer does.
    let next = svc.refresh(&pair.refresh_token, NOW + 1_000).await.unwrap();
    assert_ne!(next.refresh_token, pair.refresh_token);
    let third = svc.refresh(&next.refresh_token, NOW + 2_000).await.unwrap();

    // Reuse of a rotated token revokes the session: even the newest token dies.
    assert!(matches!(
        svc.refresh(&pair.refresh_token, NOW + 3_000).await,
        Err(AccountError::InvalidRefreshToken)
    ));
    assert!(matches!(
        svc.refresh(&third.refresh_token, NOW + 4_000).await,
        Err(AccountError::InvalidRefreshToken)
    ));

    // Logout revokes; logging out twice or with junk is fine.
    let pair = svc
        .login("Ada", "correct horse battery", None, NOW)
        .await
        .unwrap();
    svc.logout(&pair.refresh_token).await.unwrap();
    svc.logout(&pair.refresh_token).await.unwrap();
    svc.logout("junk").await.unwrap();
    assert!(matches!(
        svc.refresh(&pair.refresh_token, NOW + 5_000).await,
        Err(AccountError::InvalidRefreshToken)
    ));

    // Refresh tokens expire (3600 s here).
    let pair = svc
        .login("Ada", "correct horse battery", None, NOW)
        .await
        .unwrap();
    assert!(matches!(
        svc.refresh(&pair.refresh_token, NOW + 3_600_000).await,
        Err(AccountError::InvalidRefreshToken)
    ));

    let prefs = svc
        .update_preferences(
            &user.id,
            &PreferencesPatch {
                noise_suppression: Some(false),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(!prefs.noise_suppression && prefs.echo_cancellation);
    assert_eq!(svc.preferences(&user.id).await.unwrap(), prefs);
}

/// Wrong password and unknown user do the same argon2 work, with the real
/// (default) parameters: their median times must be close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_take_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), PasswordParams::default());
    svc.register("timing", "correct horse battery", "T", None, NOW)
        .await
        .unwrap();
    // Interleave the two cases so changes in machine load hit both alike.
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    // Warm up once.
    let _ = svc.login("timing", "x", None, NOW).await;
    for _ in 0..5 {
        for (user, times) in [("timing", &mut wrong), ("no-such-user", &mut unknown)] {
            let t = Instant::now();
            let r = svc.login(user, "wrong horse battery", None, NOW).await;
            times.push(t.elapsed());
            assert!(matches!(r, Err(AccountError::InvalidCredentials)));
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (wrong, unknown) = (median(&mut wrong), median(&mut unknown));
    let ratio = wrong.as_secs_f64() / unknown.as_secs_f64();
    eprintln!("wrong password {wrong:?}, unknown user {unknown:?}, ratio {ratio:.2}");
    assert!(
        (0.6..1.67).contains(&ratio),
        "wrong {wrong:?} vs unknown {unknown:?}"
    );
}

fn ip(s: &str) -> Option<std::net::IpAddr> {
    Some(s.parse().unwrap())
}

/// Failed logins are limited per username and per address, on the caller's
/// clock; a right password costs nothing; other users are untouched.
#[tokio::test]
async fn failed_logins_are_limited_per_user_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let svc = AccountService::with_options(
        stores,
        TokenKeys::new(SECRET, 900).unwrap(),
        AccountOptions {
            password: PasswordParams::insecure_fast(),
            limits: AuthLimits {
                failed_logins_per_user: Quota::new(3, 60),
                failed_logins_per_addr: Quota::new(5, 60),
                registrations_per_addr: Quota::new(4, 3600),
                ..AuthLimits::default()
            },
            ..AccountOptions::default()
        },
    )
    .unwrap();
    for name in ["victim", "bystander"] {
        svc.register(name, "correct horse battery", name, ip("10.0.0.9"), NOW)
            .await
            .unwrap();
    }
    // Right passwords never count.
    for _ in 0..10 {
        svc.login("victim", "correct horse battery", ip("10.0.0.1"), NOW)
            .await
            .unwrap();
    }
    for i in 0..3 {
        let from = ip(&format!("10.0.1.{i}"));
        assert!(matches!(
            svc.login("victim", "guess", from, NOW).await,
            Err(AccountError::InvalidCredentials)
        ));
    }
    // The 4th guess, from anywhere, in any case, is refused before hashing;
    // even the right password waits (the attacker cannot tell).
    for (name, pw) in [("victim", "guess"), ("VICTIM", "correct horse battery")] {
        match svc.login(name, pw, ip("10.0.2.1"), NOW).await {
            Err(AccountError::RateLimited { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 20)
            }
            other => panic!("{other:?}"),
        }
    }
    svc.login("bystander", "correct horse battery", ip("10.0.2.1"), NOW)
        .await
        .unwrap();
    // One interval (60 s / 3) later, one more try.
    svc.login("victim", "correct horse battery", None, NOW + 20_000)
        .await
        .unwrap();

    // Per address: 5 failures over many usernames, then that address waits;
    // another address does not.
    for i in 0..5 {
        let r = svc
            .login(&format!("nobody{i}"), "guess", ip("192.0.2.7"), NOW)
            .await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)), "{r:?}");
    }
    assert!(matches!(
        svc.login("bystander", "x", ip("192.0.2.7"), NOW).await,
        Err(AccountError::RateLimited { .. })
    ));
    svc.login("bystander", "correct horse battery", ip("192.0.2.8"), NOW)
        .await
        .unwrap();

    // Registrations per address: 2 made above from 10.0.0.9, 2 more allowed.
    for name in ["reg1", "reg2"] {
        svc.register(name, "correct horse battery", name, ip("10.0.0.9"), NOW)
            .await
            .unwrap();
    }
    assert!(matches!(
        svc.register("reg3", "correct horse battery", "r", ip("10.0.0.9"), NOW)
            .await,
        Err(AccountError::RateLimited { .. })
    ));
    svc.register("reg3", "correct horse battery", "r", ip("10.0.0.10"), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn password_change_keeps_this_session_and_revokes_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), PasswordParams::insecure_fast());
    let user = svc
        .register("mel", "correct horse battery", "Mel", None, NOW)
        .await
        .unwrap();
    let here = svc
        .login("mel", "correct horse battery", None, NOW)
        .await
        .unwrap();
    let there = svc
        .login("mel", "correct horse battery", None, NOW)
        .await
        .unwrap();
    let sid = svc
        .tokens()
        .verify(&here.access_token, NOW / 1000)
        .unwrap()
        .sid
        .expect("session tokens name their session");

    let r = svc
        .change_password(&user.id, Some(&sid), "wrong", "new password!", NOW)
        .await;
    assert!(matches!(r, Err(AccountError::InvalidCredentials)), "{r:?}");
    let r = svc
        .change_password(&user.id, Some(&sid), "correct horse battery", "short", NOW)
        .await;
    match r {
        Err(AccountError::Invalid(e)) => assert_eq!(e.field, "newPassword"),
        other => panic!("{other:?}"),
    }
    svc.change_password(
        &user.id,
        Some(&sid),
        "correct horse battery",
        "new password!",
        NOW,
    )
    .await
    .unwrap();

    assert!(svc.refresh(&here.refresh_token, NOW + 1).await.is_ok());
    assert!(matches!(
        svc.refresh(&there.refresh_token, NOW + 1).await,
        Err(AccountError::InvalidRefreshToken)
    ));
    assert!(matches!(
        svc.login("mel", "correct horse battery", None, NOW).await,
        Err(AccountError::InvalidCredentials)
    ));
    svc.login("mel", "new password!", None, NOW).await.unwrap();
}

struct Recorder(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl AccountEvents for Recorder {
    async fn account_deleted(&self, user_id: &str) {
        self.0.lock().unwrap().push(user_id.to_owned());
    }
}

#[tokio::test]
async fn deleting_an_account_removes_everything_and_tells_signaling() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder(std::sync::Mutex::new(Vec::new())));
    let svc = service(dir.path(), PasswordParams::insecure_fast()).with_events(recorder.clone());
    let user = svc
        .register("gone", "correct horse battery", "Gone", None, NOW)
        .await
        .unwrap();
    let keep = svc
        .register("stays", "correct horse battery", "Stays", None, NOW)
        .await
        .unwrap();
    let pair = svc
        .login("gone", "correct horse battery", None, NOW)
        .await
        .unwrap();
    for who in [&user.id, &keep.id] {
        svc.update_preferences(
            who,
            &PreferencesPatch {
                start_muted: Some(true),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
        let call = tincan_accounts::CallRecord {
            id: uuid_like(who),
            user_id: who.clone(),
            room: "r".into(),
            peer_id: format!("p-{who}"),
            started_at: 1,
            ended_at: None,
            media_path: None,
        };
        svc.stores().calls.start_call(&call).await.unwrap();
    }

    assert!(matches!(
        svc.delete_account(&user.id, "wrong", NOW).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(recorder.0.lock().unwrap().is_empty());
    svc.delete_account(&user.id, "correct horse battery", NOW)
        .await
        .unwrap();
    assert_eq!(
        recorder.0.lock().unwrap().as_slice(),
        std::slice::from_ref(&user.id)
    );

    assert!(matches!(
        svc.user(&user.id).await,
        Err(AccountError::UnknownUser)
    ));
    assert!(matches!(
        svc.refresh(&pair.refresh_token, NOW + 1).await,
        Err(AccountError::InvalidRefreshToken)
    ));
    assert!(svc.calls(&user.id, 10).await.unwrap().is_empty());
    assert_eq!(
        svc.stores()
            .preferences
            .preferences(&user.id)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        svc.delete_account(&user.id, "correct horse battery", NOW)
            .await,
        Err(AccountError::UnknownUser)
    ));
    // The other account is untouched, and the name is free again.
    assert_eq!(svc.calls(&keep.id, 10).await.unwrap().len(), 1);
    assert!(svc.preferences(&keep.id).await.unwrap().start_muted);
    svc.register("GONE", "correct horse battery", "New", None, NOW)
        .await
        .unwrap();
}

fn uuid_like(seed: &str) -> String {
    format!("call-{seed}")
}

/// Ten wrong guesses from strangers (each from an address of its own, as a
/// spread-out attack would be) do not lock the owner out from their usual
/// address: the tight bucket is per (user, address). The looser per-user
/// cap still stops a guesser who spreads over many addresses, and then
/// the owner waits too.
#[tokio::test]
async fn strangers_guesses_do_not_lock_the_owner_out_from_their_address() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let svc = AccountService::with_options(
        stores,
        TokenKeys::new(SECRET, 900).unwrap(),
        AccountOptions {
            password: PasswordParams::insecure_fast(),
            limits: AuthLimits::default(),
            ..AccountOptions::default()
        },
    )
    .unwrap();
    let pw = "correct horse battery";
    svc.register("owner", pw, "Owner", ip("10.9.9.9"), NOW)
        .await
        .unwrap();
    let home = ip("203.0.113.7");
    // Ten wrong guesses from ten strangers, then ten from one stranger.
    for i in 0..10 {
        let r = svc
            .login("owner", "guess", ip(&format!("198.51.100.{i}")), NOW)
            .await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)), "{r:?}");
    }
    for _ in 0..10 {
        let r = svc.login("owner", "guess", ip("198.51.100.200"), NOW).await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)), "{r:?}");
    }
    // That stranger is now stopped for this user...
    assert!(matches!(
        svc.login("owner", "guess", ip("198.51.100.200"), NOW).await,
        Err(AccountError::RateLimited { .. })
    ));
    // ...and the owner, from home, gets in, even after a typo of their own.
    assert!(matches!(
        svc.login("owner", "typo", home, NOW).await,
        Err(AccountError::InvalidCredentials)
    ));
    svc.login("owner", pw, home, NOW).await.unwrap();

    // Guesses spread over many more addresses reach the per-user cap (100
    // in all, 21 spent above): then the owner waits as well.
    for i in 0..79 {
        let from = ip(&format!("192.0.{}.{}", 2 + i / 200, i % 200));
        let r = svc.login("owner", "guess", from, NOW).await;
        assert!(
            matches!(r, Err(AccountError::InvalidCredentials)),
            "{i}: {r:?}"
        );
    }
    assert!(matches!(
        svc.login("owner", pw, home, NOW).await,
        Err(AccountError::RateLimited { .. })
    ));
}

/// Every revoked session, as `AccountEvents::sessions_revoked` hears it.
#[derive(Default)]
struct RevokedSessions(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl AccountEvents for RevokedSessions {
    async fn account_deleted(&self, _user_id: &str) {}
    async fn sessions_revoked(&self, _user_id: &str, session_ids: &[String]) {
        self.0.lock().unwrap().extend_from_slice(session_ids);
    }
}

#[tokio::test]
async fn revoked_sessions_are_told_by_id_on_a_password_change_and_on_refresh_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = Arc::new(RevokedSessions::default());
    let svc = service(dir.path(), PasswordParams::insecure_fast()).with_events(revoked.clone());
    let user = svc
        .register("rev", "correct horse battery", "Rev", None, NOW)
        .await
        .unwrap();
    let sid_of = |pair: &tincan_accounts::TokenPair| {
        svc.tokens()
            .verify(&pair.access_token, NOW / 1000)
            .unwrap()
            .sid
            .unwrap()
    };
    let login = || svc.login("rev", "correct horse battery", None, NOW);
    let (here, there) = (login().await.unwrap(), login().await.unwrap());
    svc.change_password(
        &user.id,
        Some(&sid_of(&here)),
        "correct horse battery",
        "new password!",
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(*revoked.0.lock().unwrap(), vec![sid_of(&there)]);

    // A rotated refresh token presented again revokes its session.
    revoked.0.lock().unwrap().clear();
    svc.refresh(&here.refresh_token, NOW + 1).await.unwrap();
    assert!(svc.refresh(&here.refresh_token, NOW + 2).await.is_err());
    assert_eq!(*revoked.0.lock().unwrap(), vec![sid_of(&here)]);
}
