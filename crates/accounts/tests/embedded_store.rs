//! The conformance suite against the embedded (redb) backend, plus what only
//! it promises: data survives closing and reopening the directory.

mod conformance;

use std::sync::Arc;

use tincan_accounts::{EmbeddedStore, Preferences, StoredUser, Stores, User};

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    conformance::run(&stores).await;
}

#[tokio::test]
async fn embedded_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let user = StoredUser {
        user: User {
            id: "u-1".into(),
            username: "Grace".into(),
            display_name: "Grace Hopper".into(),
        },
        password_hash: "$argon2id$x".into(),
        created_at_ms: 5,
    };
    {
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let stores = Stores::from_backend(store);
        stores.users.create_user(&user).await.unwrap();
        stores
            .preferences
            .put_preferences(
                "u-1",
                &Preferences {
                    auto_gain_control: false,
                    ..Preferences::default()
                },
            )
            .await
            .unwrap();
    }
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    assert_eq!(
        stores.users.user_by_username("grace").await.unwrap(),
        Some(user)
    );
    let prefs = stores
        .preferences
        .preferences("u-1")
        .await
        .unwrap()
        .unwrap();
    assert!(!prefs.auto_gain_control);
}
