//! Visits a previous run left open.
//!
//! Signaling state lives in this process's memory: when the stack is killed
//! (kill -9, a crash, or a stop before the participants' resume grace ran
//! out), every visit still open in call history belongs to a participant
//! that is gone. On start, [`close_left_open`] closes each at the time it
//! was last seen. The stack writes the time it was last alive to
//! `data_dir/alive` every [`ALIVE_EVERY`] (and when it stops); a visit is
//! closed at that time, or at its own start if it started after it (or if
//! no such file exists), and never later than now.

use std::path::Path;
use std::time::Duration;

use tincan_accounts::{CallRecord, CallStore, StoreError};
use tracing::{info, warn};

/// How often a running stack notes that it is alive.
pub(crate) const ALIVE_EVERY: Duration = Duration::from_secs(10);
/// The file that holds the last time (ms since the epoch) the stack was
/// alive.
pub(crate) const ALIVE_FILE: &str = "alive";
/// Open visits closed per store round trip.
const PAGE: usize = 500;

/// The last time a previous run noted it was alive, if it did.
pub(crate) fn last_alive(data_dir: &Path) -> Option<u64> {
    std::fs::read_to_string(data_dir.join(ALIVE_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Notes that the stack is alive at `now_ms` (best effort: a failure is
/// logged, and a later restart closes visits at their start instead).
pub(crate) fn note_alive(data_dir: &Path, now_ms: u64) {
    let path = data_dir.join(ALIVE_FILE);
    let tmp = data_dir.join(format!("{ALIVE_FILE}.tmp"));
    let written =
        std::fs::write(&tmp, now_ms.to_string()).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(err) = written {
        warn!(path = %path.display(), error = %err, "could not note that the stack is alive");
    }
}

/// When a visit left open is closed: the previous run's last sign of life,
/// or the visit's start if that is later (or unknown), never after `now_ms`.
pub(crate) fn closing_time(record: &CallRecord, last_alive: Option<u64>, now_ms: u64) -> u64 {
    last_alive
        .map_or(record.started_at, |alive| alive.max(record.started_at))
        .min(now_ms)
}

/// Closes every visit that started before `now_ms` and is still open (see
/// the module docs); returns how many it closed.
pub(crate) async fn close_left_open(
    calls: &dyn CallStore,
    last_alive: Option<u64>,
    now_ms: u64,
) -> Result<u64, StoreError> {
    let mut closed = 0;
    loop {
        let open = calls.open_calls(now_ms, PAGE).await?;
        if open.is_empty() {
            break;
        }
        let mut progressed = false;
        for record in &open {
            let at = closing_time(record, last_alive, now_ms);
            if calls
                .end_call(&record.peer_id, &record.room, at, None)
                .await?
            {
                closed += 1;
                progressed = true;
            }
        }
        if !progressed {
            // Listed but not closable (a record without its open marker):
            // nothing more this loop can do.
            warn!(left = open.len(), "open visits that could not be closed");
            break;
        }
    }
    if closed > 0 {
        info!(
            closed,
            ?last_alive,
            "closed visits a previous run left open"
        );
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tincan_accounts::EmbeddedStore;

    use super::*;

    fn visit(peer: &str, started_at: u64) -> CallRecord {
        CallRecord {
            id: format!("{peer}:lobby:{started_at}"),
            user_id: "u".into(),
            room: "lobby".into(),
            peer_id: peer.into(),
            started_at,
            ended_at: None,
            media_path: None,
        }
    }

    #[test]
    fn closing_time_is_the_last_sign_of_life_bounded_by_start_and_now() {
        let v = visit("p", 1_000);
        assert_eq!(closing_time(&v, None, 5_000), 1_000, "no sign: its start");
        assert_eq!(closing_time(&v, Some(3_000), 5_000), 3_000);
        assert_eq!(closing_time(&v, Some(500), 5_000), 1_000, "started after");
        assert_eq!(
            closing_time(&v, Some(9_000), 5_000),
            5_000,
            "never later than now"
        );
    }

    #[test]
    fn the_alive_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_alive(dir.path()), None);
        note_alive(dir.path(), 1_234);
        note_alive(dir.path(), 5_678);
        assert_eq!(last_alive(dir.path()), Some(5_678));
        std::fs::write(dir.path().join(ALIVE_FILE), "garbage").unwrap();
        assert_eq!(last_alive(dir.path()), None);
    }

    #[tokio::test]
    async fn visits_left_open_are_closed_at_the_last_sign_of_life() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let (early, late, now) = (visit("a", 1_000), visit("b", 8_000), 20_000);
        let mut done = visit("c", 2_000);
        done.ended_at = Some(2_500);
        let current = visit("d", 20_000);
        for r in [&early, &late, &done, &current] {
            store.start_call(r).await.unwrap();
        }
        assert_eq!(
            close_left_open(store.as_ref(), Some(6_000), now)
                .await
                .unwrap(),
            2
        );
        let calls = store.calls_for_user("u", 10).await.unwrap();
        let ended = |peer: &str| calls.iter().find(|r| r.peer_id == peer).unwrap().ended_at;
        assert_eq!(ended("a"), Some(6_000));
        assert_eq!(ended("b"), Some(8_000), "started after the last sign");
        assert_eq!(ended("c"), Some(2_500), "already closed: untouched");
        assert_eq!(ended("d"), None, "this run's own visit");
        assert_eq!(
            close_left_open(store.as_ref(), Some(6_000), now)
                .await
                .unwrap(),
            0
        );
    }
}
