//! The connection-store conformance suite, run against every backend: the
//! in-memory one, and DynamoDB on a moto server this test starts on loopback.

mod conformance;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tincan_store::testing::{self, MotoServer};
use tincan_store::{
    create_table, ConnectionStore, DynamoConnectionStore, MemoryConnectionStore, StoreError,
};

/// Upper bound on any one DynamoDB test, moto start-up included.
const TEST_BOUND: Duration = Duration::from_secs(120);

#[tokio::test]
async fn memory_backend_conforms() {
    conformance::run_all(&MemoryConnectionStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_never_overfills_a_room() {
    conformance::concurrent_joins_never_overfill(Arc::new(MemoryConnectionStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_resume_racing_expiry_has_one_winner() {
    conformance::resume_racing_expiry_has_one_winner(Arc::new(MemoryConnectionStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_backend_resume_racing_expiry_has_one_winner() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        conformance::resume_racing_expiry_has_one_winner(Arc::new(store)).await;
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_keeps_racing_a_resume_strand_nothing() {
    conformance::keeps_racing_a_resume_strand_nothing(Arc::new(MemoryConnectionStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_backend_keeps_racing_a_resume_strand_nothing() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        conformance::keeps_racing_a_resume_strand_nothing(Arc::new(store)).await;
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_shares_one_budget_and_caps_racing_connects() {
    let store: Arc<dyn ConnectionStore> = Arc::new(MemoryConnectionStore::new());
    conformance::concurrent_messages_share_one_budget(vec![store.clone(), store.clone()]).await;
    conformance::racing_connects_never_exceed_the_cap(vec![store.clone(), store]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_backend_shares_one_budget_and_caps_racing_connects() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, endpoint) = MotoServer::start().await.expect("moto_server starts");
        let table = testing::unique_table_name("shared");
        create_table(&testing::dynamo_client(&endpoint), &table)
            .await
            .expect("create table");
        // Three "containers": one table, nothing else shared.
        let stores: Vec<Arc<dyn ConnectionStore>> = (0..3)
            .map(|_| {
                let client = testing::dynamo_client(&endpoint);
                Arc::new(DynamoConnectionStore::new(client, table.clone()))
                    as Arc<dyn ConnectionStore>
            })
            .collect();
        conformance::concurrent_messages_share_one_budget(stores.clone()).await;
        conformance::racing_connects_never_exceed_the_cap(stores).await;
    })
    .await
    .expect("finished in time");
}

/// A moto server with a fresh connections table; the server dies with the
/// returned guard.
async fn dynamo_store() -> (MotoServer, DynamoConnectionStore) {
    let (moto, endpoint) = MotoServer::start().await.expect("moto_server starts");
    let client = testing::dynamo_client(&endpoint);
    let table = testing::unique_table_name("connections");
    create_table(&client, &table).await.expect("create table");
    // Creating it again is a no-op, as the local stack relies on.
    create_table(&client, &table)
        .await
        .expect("create table twice");
    (moto, DynamoConnectionStore::new(client, table))
}

#[tokio::test]
async fn dynamo_backend_conforms() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        conformance::run_all(&store).await;
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_backend_never_overfills_a_room() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        conformance::concurrent_joins_never_overfill(Arc::new(store)).await;
    })
    .await
    .expect("finished in time");
}

/// A store whose DynamoDB is down answers `Unavailable` within a few
/// seconds, both when the port refuses connections and when it accepts them
/// but never answers.
#[tokio::test]
async fn dynamo_down_is_unavailable_quickly() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // Accepts TCP connections (kernel backlog) but never reads or answers.
    let silent_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", silent_listener.local_addr().unwrap());

    for endpoint in [refused, silent] {
        let store = DynamoConnectionStore::new(testing::dynamo_client(&endpoint), "connections");
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(15), store.get("c1", 0))
            .await
            .expect("the SDK's own timeouts fire first");
        let elapsed = started.elapsed();
        match result {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.starts_with("DynamoDB GetItem"), "{message}");
            }
            other => panic!("{endpoint}: expected Unavailable, got {other:?}"),
        }
        assert!(
            elapsed < Duration::from_secs(8),
            "{endpoint}: took {elapsed:?}"
        );
    }
    drop(silent_listener);
}

/// A deleted-user marker refuses that user's new connections (in the same
/// write), until it expires; other users and existing records are untouched,
/// and the marker is no connection (`connections_of` never sees it).
#[tokio::test]
async fn dynamo_backend_refuses_a_deleted_users_connections() {
    use tincan_store::ConnectionRecord;
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        let now_ms = 1_900_000_000_000;
        let now = now_ms / 1000;
        store
            .put(&ConnectionRecord::new("c-old", "eve", "Eve", now_ms), 0)
            .await
            .unwrap();
        store.mark_user_deleted("eve", now + 900).await.unwrap();

        let refused = store
            .put(&ConnectionRecord::new("c-new", "eve", "Eve", now_ms + 1), 0)
            .await;
        assert!(
            matches!(&refused, Err(StoreError::UserDeleted(user)) if user == "eve"),
            "{refused:?}"
        );
        assert!(store.get("c-new", now).await.unwrap().is_none());
        store
            .put(&ConnectionRecord::new("c-bob", "bob", "Bob", now_ms), 0)
            .await
            .expect("another user connects");
        let eves = store.connections_of("eve", now).await.unwrap();
        assert_eq!(
            eves.iter()
                .map(|r| r.connection_id.as_str())
                .collect::<Vec<_>>(),
            ["c-old"]
        );

        // Past the marker's life (every token of the account expired), the
        // same user id may connect again.
        let later_ms = (now + 901) * 1000;
        store
            .put(&ConnectionRecord::new("c-later", "eve", "Eve", later_ms), 0)
            .await
            .expect("the marker expired");
    })
    .await
    .expect("finished in time");
}

/// A revoked-session marker refuses new connections opened under that
/// session (in the same write), until it expires; the same user's other
/// sessions, and tokens that name none, still connect; the session is kept
/// on the connection record.
#[tokio::test]
async fn dynamo_backend_refuses_a_revoked_sessions_connections() {
    use tincan_store::ConnectionRecord;
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        let now_ms = 1_900_000_000_000;
        let now = now_ms / 1000;
        let under = |id: &str, sid: Option<&str>, at_ms: u64| {
            ConnectionRecord::new(id, "eve", "Eve", at_ms).with_session(sid.map(str::to_owned))
        };
        store
            .put(&under("c-old", Some("s1"), now_ms), 0)
            .await
            .unwrap();
        store.mark_session_revoked("s1", now + 900).await.unwrap();

        let refused = store.put(&under("c-new", Some("s1"), now_ms + 1), 0).await;
        assert!(
            matches!(&refused, Err(StoreError::SessionRevoked(sid)) if sid == "s1"),
            "{refused:?}"
        );
        assert!(store.get("c-new", now).await.unwrap().is_none());
        store
            .put(&under("c-s2", Some("s2"), now_ms), 0)
            .await
            .expect("another session connects");
        store
            .put(&under("c-none", None, now_ms), 0)
            .await
            .expect("a token naming no session connects");
        let old = store.get("c-old", now).await.unwrap().unwrap();
        assert_eq!(old.session_id.as_deref(), Some("s1"));

        // Past the marker's life the session's tokens have all expired.
        store
            .put(&under("c-later", Some("s1"), (now + 901) * 1000), 0)
            .await
            .expect("the marker expired");
    })
    .await
    .expect("finished in time");
}

/// The room item's TTL follows the `now` each call is given, never the
/// wall clock: a join, a mute and a departure far in the future each push
/// it to that time plus a connection's lifetime.
#[tokio::test]
async fn dynamo_room_items_live_from_the_callers_now() {
    use tincan_signaling::{Member, Peer, Seat};
    use tincan_store::{ConnectionRecord, CONNECTION_TTL_SECS};

    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, endpoint) = MotoServer::start().await.expect("moto starts");
        let client = testing::dynamo_client(&endpoint);
        let table = testing::unique_table_name("room-ttl");
        create_table(&client, &table).await.expect("create table");
        let store = DynamoConnectionStore::new(client.clone(), table.clone());
        let room_ttl = || async {
            let out = client
                .get_item()
                .table_name(&table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("room#ttl".into()),
                )
                .consistent_read(true)
                .send()
                .await
                .expect("get the room item");
            let item = out.item().expect("a room item");
            item["expiresAt"]
                .as_n()
                .expect("a number")
                .parse::<u64>()
                .unwrap()
        };
        // Year 2096: far from any wall clock this test runs on.
        let at_ms = 4_000_000_000_000;
        store
            .put(&ConnectionRecord::new("ttl-1", "u1", "Ada", at_ms), 0)
            .await
            .unwrap();
        let member = Member {
            peer: Peer {
                peer_id: "p1".into(),
                user_id: "u1".into(),
                display_name: "Ada".into(),
                muted: false,
                listen_only: false,
            },
            connection_id: Some("ttl-1".into()),
            resume_until_ms: None,
            resume_hash: "h".into(),
            joined_at_ms: at_ms,
            sfu: false,
        };
        store
            .join("ttl-1", "ttl", &member, 8, at_ms / 1000)
            .await
            .unwrap();
        assert_eq!(room_ttl().await, at_ms / 1000 + CONNECTION_TTL_SECS);
        let seat = Seat {
            peer_id: "p1".into(),
            room: "ttl".into(),
        };
        let later_ms = at_ms + 600_000;
        store
            .set_muted("ttl-1", &seat, true, later_ms)
            .await
            .unwrap()
            .expect("muted");
        assert_eq!(room_ttl().await, later_ms / 1000 + CONNECTION_TTL_SECS);
        let last_ms = later_ms + 600_000;
        store
            .leave("ttl-1", &seat, last_ms)
            .await
            .unwrap()
            .expect("left");
        assert_eq!(room_ttl().await, last_ms / 1000 + CONNECTION_TTL_SECS);
    })
    .await
    .expect("finished in time");
}
