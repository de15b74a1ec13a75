//! The connection-store conformance suite, run against every backend.

mod conformance;

use tincan_store::MemoryConnectionStore;

#[tokio::test]
async fn memory_backend_conforms() {
    conformance::run_all(&MemoryConnectionStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_never_overfills_a_room() {
    conformance::concurrent_joins_never_overfill(std::sync::Arc::new(MemoryConnectionStore::new()))
        .await;
}
