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

#[cfg(unix)]
#[test]
fn the_store_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    drop(EmbeddedStore::open(&data).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join(tincan_accounts::EMBEDDED_FILE)), 0o600);
    assert_eq!(mode(&data), 0o700);
    // An existing, too open file is narrowed on open.
    let file = data.join(tincan_accounts::EMBEDDED_FILE);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(EmbeddedStore::open(&data).unwrap());
    assert_eq!(mode(&file), 0o600);
}
