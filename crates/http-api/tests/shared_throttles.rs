//! The failed-login and registration throttles of the `http-api` Lambda,
//! kept in a DynamoDB table (moto here) and so shared by all its
//! containers: the throttle conformance suite on the DynamoDB store, and
//! two independent account services (two Lambda containers, each with its
//! own DynamoDB client) reaching the limit at the shared count.

use std::sync::Arc;

use tincan_accounts::rate_limit::conformance;
use tincan_accounts::{
    AccountError, AccountOptions, AccountService, AuthLimits, EmbeddedStore, PasswordParams, Quota,
    Stores, Throttle,
};
use tincan_http_api::DynamoThrottles;
use tincan_store::testing::{self, MotoServer};
use tincan_store::{create_throttle_table, DynamoThrottleStore};
use tincan_token::TokenKeys;

const NOW: u64 = 1_700_000_000_000;
const PW: &str = "correct horse battery";

/// A throttle over table `table` through a client of its own.
fn dynamo_throttle(endpoint: &str, table: &str) -> Throttle {
    let client = testing::dynamo_client(endpoint);
    Throttle::new(Arc::new(DynamoThrottles(DynamoThrottleStore::new(
        client, table,
    ))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_throttle_store_passes_the_conformance_suite() {
    let (_moto, endpoint) = MotoServer::start().await.unwrap();
    let client = testing::dynamo_client(&endpoint);
    let table = testing::unique_table_name("throttles");
    create_throttle_table(&client, &table).await.unwrap();
    conformance::run_all(Arc::new(DynamoThrottles(DynamoThrottleStore::new(
        client, table,
    ))))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_through_two_containers_hit_the_limit_at_the_shared_count() {
    let (_moto, endpoint) = MotoServer::start().await.unwrap();
    let table = testing::unique_table_name("throttles");
    create_throttle_table(&testing::dynamo_client(&endpoint), &table)
        .await
        .unwrap();
    // One account store (MongoDB in production), two containers.
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let options = AccountOptions {
        password: PasswordParams::insecure_fast(),
        limits: AuthLimits {
            failed_logins_per_user_addr: Quota::new(6, 900),
            registrations_per_addr: Quota::new(3, 3600),
            ..AuthLimits::default()
        },
        ..AccountOptions::default()
    };
    let container = || {
        AccountService::with_options(
            stores.clone(),
            TokenKeys::new(b"shared-throttles-test-secret-0123456789", 900).unwrap(),
            options,
        )
        .unwrap()
        .with_throttle(dynamo_throttle(&endpoint, &table))
    };
    let (a, b) = (container(), container());
    let from = Some("198.51.100.9".parse().unwrap());
    a.register("target", PW, "Target", from, NOW).await.unwrap();

    // Wrong passwords alternate between the containers: 6 in all are let
    // through (not 6 each), then both refuse, even the right password.
    let mut wrong = 0;
    for i in 0..12 {
        let svc = if i % 2 == 0 { &a } else { &b };
        match svc.login("target", "guess", from, NOW).await {
            Err(AccountError::InvalidCredentials) => wrong += 1,
            Err(AccountError::RateLimited { retry_after_secs }) => {
                assert!((1..=900).contains(&retry_after_secs))
            }
            other => panic!("attempt {i}: {other:?}"),
        }
    }
    assert_eq!(wrong, 6, "the limit is the shared count");
    for svc in [&a, &b] {
        assert!(matches!(
            svc.login("target", PW, from, NOW).await,
            Err(AccountError::RateLimited { .. })
        ));
    }
    // Another address is not limited by it; the right password is refunded.
    let home = Some("203.0.113.7".parse().unwrap());
    b.login("target", PW, home, NOW).await.unwrap();

    // Registrations per address, shared too: 1 above, 2 more, then none.
    b.register("second", PW, "S", from, NOW).await.unwrap();
    a.register("third", PW, "T", from, NOW).await.unwrap();
    for svc in [&a, &b] {
        assert!(matches!(
            svc.register("fourth", PW, "F", from, NOW).await,
            Err(AccountError::RateLimited { .. })
        ));
    }
}

#[tokio::test]
async fn an_unreachable_throttle_table_fails_closed_with_store_unavailable() {
    // Nothing listens on port 9 of loopback: the DynamoDB calls fail fast.
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_backend(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
    let svc = AccountService::with_options(
        stores,
        TokenKeys::new(b"shared-throttles-test-secret-0123456789", 900).unwrap(),
        AccountOptions {
            password: PasswordParams::insecure_fast(),
            ..AccountOptions::default()
        },
    )
    .unwrap()
    .with_throttle(dynamo_throttle("http://127.0.0.1:9", "nowhere"));
    let r = svc
        .login("someone", PW, Some("198.51.100.1".parse().unwrap()), NOW)
        .await;
    assert!(
        matches!(
            r,
            Err(AccountError::Store(
                tincan_accounts::StoreError::Unavailable(_)
            ))
        ),
        "{r:?}"
    );
}
