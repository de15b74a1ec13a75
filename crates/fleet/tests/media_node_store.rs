//! The media-node store conformance suite against every backend: in memory,
//! and DynamoDB on a moto server this test starts on loopback.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use tincan_aws::testing::{self, MotoServer};
use tincan_fleet::{
    create_media_nodes_table, DynamoMediaNodeStore, FleetError, InMemoryMediaNodeStore,
    MediaNodeStore,
};

/// Upper bound on any one DynamoDB test, moto start-up included.
const TEST_BOUND: Duration = Duration::from_secs(120);

#[tokio::test]
async fn memory_backend_conforms() {
    conformance::run_all(&InMemoryMediaNodeStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_concurrent_placements_agree() {
    conformance::concurrent_placements_agree(Arc::new(InMemoryMediaNodeStore::new())).await;
}

/// A moto server with a fresh media-nodes table; the server dies with the
/// returned guard.
async fn dynamo_store() -> (MotoServer, DynamoMediaNodeStore) {
    let (moto, endpoint) = MotoServer::start().await.expect("moto starts");
    let client = testing::dynamo_client(&endpoint);
    let table = testing::unique_table_name("media-nodes");
    create_media_nodes_table(&client, &table)
        .await
        .expect("create table");
    create_media_nodes_table(&client, &table)
        .await
        .expect("creating it again is a no-op");
    (moto, DynamoMediaNodeStore::new(client, table))
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
async fn dynamo_backend_concurrent_placements_agree() {
    tokio::time::timeout(TEST_BOUND, async {
        let (_moto, store) = dynamo_store().await;
        conformance::concurrent_placements_agree(Arc::new(store)).await;
    })
    .await
    .expect("finished in time");
}

/// An item someone else put in the table does not hide the good nodes, and
/// a foreign room item is an error, not a panic.
#[tokio::test]
async fn dynamo_skips_corrupt_items() {
    use aws_sdk_dynamodb::types::AttributeValue;
    tokio::time::timeout(TEST_BOUND, async {
        let (moto, store) = dynamo_store().await;
        let client = testing::dynamo_client(moto.endpoint());
        store
            .heartbeat(conformance::node("good", 1, 1.0), 100, conformance::TTL)
            .await
            .expect("hb");
        // A "node" with nothing but a live expiry (moto cannot filter an S
        // `expiresAt` against a number, so only the room item gets that).
        for (pk, extra, expires) in [
            ("bad-node", "fleet", AttributeValue::N("999".into())),
            ("room#weird", "node", AttributeValue::S("never".into())),
        ] {
            client
                .put_item()
                .table_name(store.table())
                .item("nodeId", AttributeValue::S(pk.into()))
                .item(extra, AttributeValue::S("nodes".into()))
                .item("expiresAt", expires)
                .send()
                .await
                .expect("put foreign item");
        }
        let listed = store.list_alive(100).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].info.id, "good");
        assert!(matches!(
            store.room_node("weird", 100).await,
            Err(FleetError::Corrupt { .. })
        ));
    })
    .await
    .expect("finished in time");
}

/// DynamoDB down: a prompt backend error, not a hang.
#[tokio::test]
async fn dynamo_down_is_a_backend_error() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let store = DynamoMediaNodeStore::new(testing::dynamo_client(&refused), "media-nodes");
    let result = tokio::time::timeout(Duration::from_secs(15), store.list_alive(0))
        .await
        .expect("the SDK's own timeouts fire first");
    assert!(matches!(result, Err(FleetError::Backend(_))), "{result:?}");
}
