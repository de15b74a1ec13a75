//! The conformance suite against the MongoDB backend: a SecantusDB server the
//! test starts itself, or the server at `MONGODB_URI` when that is set (a
//! real MongoDB or Atlas; the test uses a fresh database and drops it).

mod conformance;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use tincan_accounts::secantus::Secantus;
use tincan_accounts::{MongoConfig, MongoStore, StoreError, Stores};

/// The server to test against; `None` (and a guard) when we started it.
fn server() -> (String, Option<Secantus>) {
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => (uri, None),
        _ => {
            let s = Secantus::start().expect("start secantusd-py (run tests/setup.sh)");
            (s.uri(), Some(s))
        }
    }
}

fn config(uri: &str) -> MongoConfig {
    let mut c = MongoConfig::new(uri);
    c.database = format!(
        "tincan_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_conforms() {
    let (uri, _guard) = server();
    let config = config(&uri);
    let store = MongoStore::connect(&config).await.unwrap();
    let stores = Stores::from_backend(Arc::new(store));
    tokio::time::timeout(Duration::from_secs(120), conformance::run(&stores))
        .await
        .expect("suite finished in time");

    // The indexes the backend promises: unique usernames, TTL on sessions.
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = client.database(&config.database);
    let users = db.collection::<mongodb::bson::Document>("users");
    let names = users.list_index_names().await.unwrap();
    assert!(
        names.iter().any(|n| n.contains("usernameLower")),
        "{names:?}"
    );
    let mut cursor = db
        .collection::<mongodb::bson::Document>("auth_sessions")
        .list_indexes()
        .await
        .unwrap();
    let mut ttl = false;
    while cursor.advance().await.unwrap() {
        let index = cursor.deserialize_current().unwrap();
        ttl |= index.options.and_then(|o| o.expire_after) == Some(Duration::ZERO);
    }
    assert!(ttl, "auth_sessions has a TTL index");
    let stored = db
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(stored.get_str("usernameLower").is_ok());
    db.drop().await.unwrap();
}

#[tokio::test]
async fn unreachable_mongo_answers_unavailable_fast() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(&format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true"
    ));
    config.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let store = MongoStore::connect(&config).await.expect("connect is lazy");
    let stores = Stores::from_backend(Arc::new(store));
    let err = stores.users.user_by_id("x").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Password change and account deletion through the service, on MongoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_and_deletion_on_mongo() {
    use tincan_accounts::{AccountError, AccountService, PasswordParams, PreferencesPatch};
    let (uri, _guard) = server();
    let config = config(&uri);
    let stores = Stores::from_backend(Arc::new(MongoStore::connect(&config).await.unwrap()));
    let svc = AccountService::new(
        stores,
        tincan_token::TokenKeys::new(b"mongo-test-secret-mongo-test-secret!", 900).unwrap(),
        PasswordParams::insecure_fast(),
        3600,
    )
    .unwrap();
    let now = 1_700_000_000_000;
    tokio::time::timeout(Duration::from_secs(120), async {
        let user = svc
            .register("Mona", "correct horse battery", "Mona", None, now)
            .await
            .unwrap();
        let here = svc
            .login("mona", "correct horse battery", None, now)
            .await
            .unwrap();
        let there = svc
            .login("mona", "correct horse battery", None, now)
            .await
            .unwrap();
        let sid = svc
            .tokens()
            .verify(&here.access_token, now / 1000)
            .unwrap()
            .sid;
        svc.change_password(
            &user.id,
            sid.as_deref(),
            "correct horse battery",
            "a new passphrase",
            now,
        )
        .await
        .unwrap();
        assert!(svc.refresh(&here.refresh_token, now + 1).await.is_ok());
        assert!(matches!(
            svc.refresh(&there.refresh_token, now + 1).await,
            Err(AccountError::InvalidRefreshToken)
        ));
        svc.update_preferences(
            &user.id,
            &PreferencesPatch {
                start_muted: Some(true),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            svc.delete_account(&user.id, "correct horse battery", now)
                .await,
            Err(AccountError::InvalidCredentials)
        ));
        svc.delete_account(&user.id, "a new passphrase", now)
            .await
            .unwrap();
        assert!(matches!(
            svc.user(&user.id).await,
            Err(AccountError::UnknownUser)
        ));
        assert_eq!(
            svc.stores()
                .preferences
                .preferences(&user.id)
                .await
                .unwrap(),
            None
        );
        svc.register("MONA", "correct horse battery", "Again", None, now)
            .await
            .unwrap();
    })
    .await
    .expect("finished in time");
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    client.database(&config.database).drop().await.unwrap();
}
