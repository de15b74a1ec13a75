//! The call log through a store that goes away, hangs, or loses answers, on
//! a paused clock.

use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::*;

/// A call store in memory that can be down (every call `Unavailable`), hang
/// (no answer), or apply a start and then report it failed.
#[derive(Default)]
struct FlakyStore {
    records: Mutex<Vec<CallRecord>>,
    down: AtomicBool,
    hang: AtomicBool,
    /// Starts to apply and then answer `Unavailable` for.
    lose_answers: AtomicUsize,
    calls: AtomicUsize,
}

impl FlakyStore {
    async fn gate(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("down".into()));
        }
        Ok(())
    }

    fn records(&self) -> Vec<CallRecord> {
        self.records.lock().unwrap().clone()
    }
}

#[async_trait]
impl CallStore for FlakyStore {
    async fn start_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.gate().await?;
        let mut records = self.records.lock().unwrap();
        if records.iter().any(|r| r.id == record.id) {
            return Err(StoreError::Duplicate);
        }
        records.push(record.clone());
        drop(records);
        let lose = self.lose_answers.load(Ordering::SeqCst);
        if lose > 0 {
            self.lose_answers.store(lose - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("answer lost".into()));
        }
        Ok(())
    }

    async fn end_call(
        &self,
        peer_id: &str,
        room: &str,
        ended_at_ms: u64,
        media_path: Option<StoredPath>,
    ) -> Result<bool, StoreError> {
        self.gate().await?;
        let mut records = self.records.lock().unwrap();
        let open = records
            .iter_mut()
            .find(|r| r.peer_id == peer_id && r.room == room && r.ended_at.is_none());
        Ok(open.is_some_and(|r| {
            r.ended_at = Some(ended_at_ms);
            r.media_path = media_path.or(r.media_path);
            true
        }))
    }

    async fn set_media_path(
        &self,
        peer_id: &str,
        room: &str,
        media_path: StoredPath,
    ) -> Result<bool, StoreError> {
        self.gate().await?;
        let mut records = self.records.lock().unwrap();
        let open = records
            .iter_mut()
            .find(|r| r.peer_id == peer_id && r.room == room && r.ended_at.is_none());
        Ok(open.is_some_and(|r| {
            r.media_path = Some(media_path);
            true
        }))
    }

    async fn calls_for_user(&self, _: &str, _: usize) -> Result<Vec<CallRecord>, StoreError> {
        unreachable!("the call log never reads")
    }

    async fn delete_calls_for_user(&self, _: &str) -> Result<u64, StoreError> {
        unreachable!("the call log never deletes")
    }

    async fn open_calls(&self, before: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.gate().await?;
        let records = self.records.lock().unwrap();
        let mut open: Vec<_> = records
            .iter()
            .filter(|r| r.ended_at.is_none() && r.started_at < before)
            .cloned()
            .collect();
        open.sort_by_key(|r| r.started_at);
        open.truncate(limit);
        Ok(open)
    }
}

fn peer(id: &str) -> Peer {
    Peer {
        peer_id: id.to_owned(),
        user_id: format!("user-{id}"),
        display_name: id.to_owned(),
        muted: false,
        listen_only: false,
    }
}

fn setup(capacity: usize) -> (Arc<FlakyStore>, AccountsCallLog) {
    let store = Arc::new(FlakyStore::default());
    let log = AccountsCallLog::with_capacity(store.clone(), capacity);
    (store, log)
}

/// Lets the retry task run until the queue is empty (or `limit` passes).
async fn settle(log: &AccountsCallLog, limit: Duration) {
    let until = tokio::time::Instant::now() + limit;
    while (log.pending() > 0 || log.inner.state().draining) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn writes_go_straight_through_while_the_store_answers() {
    let (store, log) = setup(10);
    log.joined(&peer("a"), "r", 1_000).await.unwrap();
    log.media_path(&peer("a"), "r", MediaPath::Relayed)
        .await
        .unwrap();
    log.left(&peer("a"), "r", 2_000).await.unwrap();
    assert_eq!(log.pending(), 0);
    let records = store.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ended_at, Some(2_000));
    assert_eq!(records[0].media_path, Some(StoredPath::Relayed));
}

#[tokio::test(start_paused = true)]
async fn an_outage_queues_the_writes_and_they_catch_up_in_order_once() {
    let (store, log) = setup(10);
    log.joined(&peer("a"), "r", 1_000).await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    // a leaves, b and c join, c leaves: all while the store is down.
    log.left(&peer("a"), "r", 2_000).await.unwrap();
    log.joined(&peer("b"), "r", 2_100).await.unwrap();
    log.joined(&peer("c"), "r", 2_200).await.unwrap();
    log.media_path(&peer("c"), "r", MediaPath::Direct)
        .await
        .unwrap();
    log.left(&peer("c"), "r", 2_300).await.unwrap();
    // c's visit folded into its queued start: three writes wait.
    assert_eq!(log.pending(), 3);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(store.records().len(), 1, "nothing written while down");

    store.down.store(false, Ordering::SeqCst);
    settle(&log, Duration::from_secs(10)).await;
    assert_eq!(log.pending(), 0);
    let mut records = store.records();
    records.sort_by_key(|r| r.started_at);
    let summary: Vec<_> = records
        .iter()
        .map(|r| (r.peer_id.as_str(), r.started_at, r.ended_at, r.media_path))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a", 1_000, Some(2_000), None),
            ("b", 2_100, None, None),
            ("c", 2_200, Some(2_300), Some(StoredPath::Direct)),
        ]
    );
    assert_eq!(log.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_start_whose_answer_was_lost_is_not_written_twice() {
    let (store, log) = setup(10);
    store.lose_answers.store(1, Ordering::SeqCst);
    log.joined(&peer("a"), "r", 1_000).await.unwrap();
    log.left(&peer("a"), "r", 2_000).await.unwrap();
    settle(&log, Duration::from_secs(10)).await;
    let records = store.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].ended_at, Some(2_000));
}

#[tokio::test(start_paused = true)]
async fn a_store_that_hangs_delays_a_join_by_the_inline_bound_only_once() {
    let (store, log) = setup(10);
    store.hang.store(true, Ordering::SeqCst);
    let t = tokio::time::Instant::now();
    log.joined(&peer("a"), "r", 1_000).await.unwrap();
    assert_eq!(t.elapsed(), INLINE_WRITE_BOUND);
    // The queue is busy now: later writes do not wait at all.
    let t = tokio::time::Instant::now();
    log.joined(&peer("b"), "r", 1_100).await.unwrap();
    log.left(&peer("b"), "r", 1_200).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
    store.hang.store(false, Ordering::SeqCst);
    settle(&log, Duration::from_secs(120)).await;
    assert_eq!(store.records().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts_the_newest_write() {
    let (store, log) = setup(2);
    store.down.store(true, Ordering::SeqCst);
    log.joined(&peer("a"), "r", 1).await.unwrap();
    log.joined(&peer("b"), "r", 2).await.unwrap();
    tokio::task::yield_now().await;
    let mut refused = 0;
    for (i, p) in ["c", "d", "e"].into_iter().enumerate() {
        if log.joined(&peer(p), "r", 3 + i as u64).await.is_err() {
            refused += 1;
        }
    }
    assert!(refused >= 1);
    assert_eq!(log.dropped(), refused);
    store.down.store(false, Ordering::SeqCst);
    settle(&log, Duration::from_secs(10)).await;
    assert_eq!(store.records().len() as u64, 5 - refused);
    assert!(store.calls.load(Ordering::SeqCst) > 0);
}
