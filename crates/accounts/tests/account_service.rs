//! The account service end to end on the embedded store: register, login,
//! refresh rotation and reuse detection, logout, and login timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tincan_accounts::{
    AccountError, AccountService, EmbeddedStore, PasswordParams, PreferencesPatch, Stores,
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
        .register("Ada", "correct horse battery", " Ada Lovelace ", NOW)
        .await
        .unwrap();
    assert_eq!(user.display_name, "Ada Lovelace");
    assert!(matches!(
        svc.register("ADA", "another password", "Imposter", NOW)
            .await,
        Err(AccountError::UsernameTaken)
    ));
    assert!(matches!(
        svc.register("bad name", "whatever123", "X", NOW).await,
        Err(AccountError::Invalid(_))
    ));

    let pair = svc
        .login("ada", "correct horse battery", NOW)
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
        svc.login("ada", "wrong horse battery", NOW).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(matches!(
        svc.login("nobody", "correct horse battery", NOW).await,
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
        .login("Ada", "correct horse battery", NOW)
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
        .login("Ada", "correct horse battery", NOW)
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
    svc.register("timing", "correct horse battery", "T", NOW)
        .await
        .unwrap();
    // Interleave the two cases so changes in machine load hit both alike.
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    // Warm up once.
    let _ = svc.login("timing", "x", NOW).await;
    for _ in 0..5 {
        for (user, times) in [("timing", &mut wrong), ("no-such-user", &mut unknown)] {
            let t = Instant::now();
            let r = svc.login(user, "wrong horse battery", NOW).await;
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
