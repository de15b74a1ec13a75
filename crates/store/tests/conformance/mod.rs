//! Behaviour every `ConnectionStore` backend must show. Each check uses its own
//! ids and rooms, so one store instance serves the whole suite.

use std::sync::Arc;

use tincan_store::{ConnectionRecord, ConnectionStore, JoinOutcome};

const NOW_MS: u64 = 1_700_000_000_000;
const NOW: u64 = NOW_MS / 1000;

fn record(id: &str, connected_at_ms: u64) -> ConnectionRecord {
    ConnectionRecord::new(
        id,
        format!("user-{id}"),
        format!("Name {id}"),
        connected_at_ms,
    )
}

/// Runs every check against `store`.
pub(crate) async fn run_all(store: &dyn ConnectionStore) {
    put_get_remove_round_trip(store).await;
    expired_records_are_invisible(store).await;
    join_respects_capacity(store).await;
    join_of_unknown_connection_writes_nothing(store).await;
    leave_and_mute_update_membership(store).await;
    remove_clears_membership(store).await;
    moving_rooms_frees_the_old_seat(store).await;
    put_replaces_membership(store).await;
}

async fn put_get_remove_round_trip(store: &dyn ConnectionStore) {
    let mut rec = record("rt-1", NOW_MS);
    rec.display_name = "Zoë \"quoted\" 🎧".into();
    store.put(&rec).await.unwrap();
    assert_eq!(store.get("rt-1", NOW).await.unwrap(), Some(rec.clone()));
    assert_eq!(store.remove("rt-1").await.unwrap(), Some(rec));
    assert_eq!(store.get("rt-1", NOW).await.unwrap(), None);
    assert_eq!(store.remove("rt-1").await.unwrap(), None);
}

async fn expired_records_are_invisible(store: &dyn ConnectionStore) {
    let rec = record("exp-1", NOW_MS);
    store.put(&rec).await.unwrap();
    assert_eq!(
        store.join_room("exp-1", "exp-room", 4, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    let later = rec.expires_at;
    assert_eq!(store.get("exp-1", later).await.unwrap(), None);
    assert!(store
        .room_members("exp-room", later)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .join_room("exp-1", "exp-room", 4, later)
            .await
            .unwrap(),
        JoinOutcome::UnknownConnection
    );
    // An expired member does not hold a seat.
    let fresh = record("exp-2", later * 1000);
    store.put(&fresh).await.unwrap();
    assert_eq!(
        store
            .join_room("exp-2", "exp-room", 1, later)
            .await
            .unwrap(),
        JoinOutcome::Joined
    );
}

async fn join_respects_capacity(store: &dyn ConnectionStore) {
    for (i, id) in ["cap-1", "cap-2", "cap-3"].iter().enumerate() {
        store.put(&record(id, NOW_MS + i as u64)).await.unwrap();
    }
    assert_eq!(
        store.join_room("cap-1", "cap", 2, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    assert_eq!(
        store.join_room("cap-2", "cap", 2, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    assert_eq!(
        store.join_room("cap-3", "cap", 2, NOW).await.unwrap(),
        JoinOutcome::RoomFull
    );
    // Joining again when already in does not count yourself.
    assert_eq!(
        store.join_room("cap-2", "cap", 2, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    let members: Vec<String> = store
        .room_members("cap", NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.connection_id)
        .collect();
    assert_eq!(members, ["cap-1", "cap-2"]);
    assert_eq!(store.get("cap-3", NOW).await.unwrap().unwrap().room, None);
}

async fn join_of_unknown_connection_writes_nothing(store: &dyn ConnectionStore) {
    assert_eq!(
        store
            .join_room("nobody", "ghost-room", 4, NOW)
            .await
            .unwrap(),
        JoinOutcome::UnknownConnection
    );
    assert!(store
        .room_members("ghost-room", NOW)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.get("nobody", NOW).await.unwrap(), None);
}

async fn leave_and_mute_update_membership(store: &dyn ConnectionStore) {
    store.put(&record("lm-1", NOW_MS)).await.unwrap();
    store.put(&record("lm-2", NOW_MS + 1)).await.unwrap();
    store.join_room("lm-1", "lm", 4, NOW).await.unwrap();
    store.join_room("lm-2", "lm", 4, NOW).await.unwrap();
    store.set_muted("lm-2", true).await.unwrap();
    let members = store.room_members("lm", NOW).await.unwrap();
    assert!(members.iter().any(|r| r.connection_id == "lm-2" && r.muted));
    // Leaving another room is a no-op.
    store.leave_room("lm-1", "elsewhere").await.unwrap();
    assert_eq!(store.room_members("lm", NOW).await.unwrap().len(), 2);
    store.leave_room("lm-1", "lm").await.unwrap();
    let members = store.room_members("lm", NOW).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].connection_id, "lm-2");
    assert_eq!(store.get("lm-1", NOW).await.unwrap().unwrap().room, None);
    // Moving rooms frees the old seat.
    store.join_room("lm-2", "lm-other", 4, NOW).await.unwrap();
    store.leave_room("lm-2", "lm").await.unwrap();
    assert!(store.room_members("lm", NOW).await.unwrap().is_empty());
    assert_eq!(store.room_members("lm-other", NOW).await.unwrap().len(), 1);
    // Unknown ids are a no-op.
    store.set_muted("nobody", true).await.unwrap();
    store.leave_room("nobody", "lm").await.unwrap();
}

async fn remove_clears_membership(store: &dyn ConnectionStore) {
    store.put(&record("rm-1", NOW_MS)).await.unwrap();
    store.put(&record("rm-2", NOW_MS)).await.unwrap();
    store.join_room("rm-1", "rm", 1, NOW).await.unwrap();
    store.remove("rm-1").await.unwrap();
    assert!(store.room_members("rm", NOW).await.unwrap().is_empty());
    assert_eq!(
        store.join_room("rm-2", "rm", 1, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
}

async fn moving_rooms_frees_the_old_seat(store: &dyn ConnectionStore) {
    store.put(&record("mv-1", NOW_MS)).await.unwrap();
    store.put(&record("mv-2", NOW_MS + 1)).await.unwrap();
    assert_eq!(
        store.join_room("mv-1", "mv-a", 1, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    assert_eq!(
        store.join_room("mv-2", "mv-a", 1, NOW).await.unwrap(),
        JoinOutcome::RoomFull
    );
    assert_eq!(
        store.join_room("mv-1", "mv-b", 1, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    assert!(store.room_members("mv-a", NOW).await.unwrap().is_empty());
    assert_eq!(
        store.join_room("mv-2", "mv-a", 1, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
    let in_b: Vec<String> = store
        .room_members("mv-b", NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.connection_id)
        .collect();
    assert_eq!(in_b, ["mv-1"]);
}

async fn put_replaces_membership(store: &dyn ConnectionStore) {
    // A reconnect that reuses an id starts outside any room, and frees its seat.
    store.put(&record("pr-1", NOW_MS)).await.unwrap();
    store.put(&record("pr-2", NOW_MS)).await.unwrap();
    store.join_room("pr-1", "pr", 1, NOW).await.unwrap();
    store.put(&record("pr-1", NOW_MS + 5)).await.unwrap();
    assert!(store.room_members("pr", NOW).await.unwrap().is_empty());
    assert_eq!(store.get("pr-1", NOW).await.unwrap().unwrap().room, None);
    assert_eq!(
        store.join_room("pr-2", "pr", 1, NOW).await.unwrap(),
        JoinOutcome::Joined
    );
}

/// Many joiners race for the last seats: exactly `room_max` win.
pub(crate) async fn concurrent_joins_never_overfill(store: Arc<dyn ConnectionStore>) {
    let room_max = 3;
    let ids: Vec<String> = (0..10).map(|i| format!("race-{i}")).collect();
    for id in &ids {
        store.put(&record(id, NOW_MS)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for id in ids {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.join_room(&id, "race", room_max, NOW).await.unwrap()
        }));
    }
    let mut joined = 0;
    for task in tasks {
        if task.await.unwrap() == JoinOutcome::Joined {
            joined += 1;
        }
    }
    assert_eq!(joined, room_max);
    assert_eq!(
        store.room_members("race", NOW).await.unwrap().len(),
        room_max
    );
}
