//! MongoDB going away and coming back: the API answers 503
//! `store-unavailable` fast while it is down, recovers by itself, and leaves
//! nothing half-written. The server is a SecantusDB process on disk that the
//! test kills and restarts on the same port.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use mongodb::bson::doc;
use tincan_accounts::secantus::Secantus;
use tincan_accounts::{MongoConfig, MongoStore, PasswordParams, Stores};
use tincan_http_api::router;

const PW: &str = "correct horse battery";
/// The most a request may take while the store is down.
const DOWN_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_down_gives_503_fast_then_recovers_with_nothing_half_written() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Secantus::start_on_disk(data.path()).expect("start secantusd-py");
    let mut config = MongoConfig::new(server.uri());
    config.database = "tincan_down_test".to_owned();
    config.timeout = Duration::from_millis(800);
    config.op_timeout = Duration::from_secs(3);
    let store = MongoStore::connect(&config).await.unwrap();
    let state = state(
        Stores::from_backend(Arc::new(store)),
        PasswordParams::insecure_fast(),
    );
    let app = router(state);

    tokio::time::timeout(Duration::from_secs(120), async {
        assert_eq!(
            register(&app, "before", PW, "Before").await.status,
            StatusCode::CREATED
        );
        let pair = login(&app, "before", PW).await;
        assert_eq!(pair.status, StatusCode::OK);
        let access = pair.json["accessToken"].as_str().unwrap().to_owned();

        server.stop();

        for attempt in [
            register(&app, "during", PW, "During").await,
            login(&app, "before", PW).await,
            send(&app, get("/me", Some(&access))).await,
        ] {
            assert_eq!(
                (attempt.status, attempt.code()),
                (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable")
            );
        }
        let t = Instant::now();
        let r = register(&app, "during", PW, "During").await;
        let took = t.elapsed();
        assert_eq!(r.code(), "store-unavailable");
        assert!(took < DOWN_BOUND, "503 took {took:?}");
        eprintln!("503 while down answered in {took:?}");
        // TURN credentials keep working on the token alone (calls keep
        // their relay through an outage).
        assert_eq!(
            send(&app, get("/turn-credentials", Some(&access)))
                .await
                .status,
            StatusCode::OK
        );

        server.restart().expect("restart secantusd-py");
        let t = Instant::now();
        loop {
            let r = send(&app, get("/me", Some(&access))).await;
            if r.status == StatusCode::OK {
                break;
            }
            assert_eq!(r.code(), "store-unavailable");
            assert!(t.elapsed() < Duration::from_secs(30), "did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("recovered {:?} after restart", t.elapsed());

        // Data from before survived; the refused registration left nothing.
        assert_eq!(login(&app, "before", PW).await.status, StatusCode::OK);
        assert_eq!(
            login(&app, "during", PW).await.code(),
            "invalid-credentials"
        );
        assert_eq!(
            register(&app, "during", PW, "During").await.status,
            StatusCode::CREATED
        );
        let client = mongodb::Client::with_uri_str(server.uri()).await.unwrap();
        let users = client
            .database("tincan_down_test")
            .collection::<mongodb::bson::Document>("users");
        assert_eq!(
            users
                .count_documents(doc! {"usernameLower": "during"})
                .await
                .unwrap(),
            1
        );
        assert_eq!(users.count_documents(doc! {}).await.unwrap(), 2);
    })
    .await
    .expect("test finished in time");
}
