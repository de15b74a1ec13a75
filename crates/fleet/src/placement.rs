//! Placing a room on a node through the store, so that concurrent joiners
//! of one room agree.

use crate::selection::place_room;
use crate::{FleetError, MediaNodeStore, NodeRecord};

/// How long a room stays assigned to its node after the last join that
/// refreshed it: 2 hours. A call longer than that with no join in its second
/// hour may see its next joiner placed afresh; peers relayed by different
/// nodes still reach each other, only less cheaply.
pub const DEFAULT_ROOM_TTL_SECS: u64 = 2 * 3600;

/// Compare-and-set rounds before [`FleetError::Contention`]. A lost round
/// almost always means another joiner placed the room, and the next round
/// accepts its choice.
const MAX_ATTEMPTS: u32 = 5;

/// The node `room`'s peers relay through, placing the room if needed.
///
/// A room stays on its node while that node is alive and active; a new
/// room, or one whose node went silent or started draining, goes to the
/// least-loaded active node ([`place_room`]) and the choice is written with
/// [`MediaNodeStore::assign_room`]'s compare-and-set, so two signaling
/// instances placing the same room at once end up on one node. The
/// assignment is refreshed (another `ttl_secs`) once half its time is gone.
///
/// `Ok(None)` when no node is available.
pub async fn place(
    store: &dyn MediaNodeStore,
    room: &str,
    now: u64,
    ttl_secs: u64,
) -> Result<Option<NodeRecord>, FleetError> {
    let mut nodes = store.list_alive(now).await?;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Someone else wrote first, maybe naming a node that registered
            // after we listed: look again.
            nodes = store.list_alive(now).await?;
        }
        let current = store.room_node(room, now).await?;
        let current_id = current.as_ref().map(|a| a.node_id.as_str());
        let Some(chosen) = place_room(current_id, &nodes, now) else {
            return Ok(None);
        };
        let chosen_id = chosen.info.id.as_str();
        if let Some(assignment) = current.as_ref().filter(|a| a.node_id == chosen_id) {
            if assignment.expires_at.saturating_sub(now) < ttl_secs / 2 {
                // Losing this race is fine: whoever won wrote a fresh expiry.
                let refreshed = store
                    .assign_room(room, current_id, chosen_id, now, ttl_secs)
                    .await?;
                tracing::debug!(room, node = chosen_id, refreshed, "room assignment refresh");
            }
            return Ok(Some(chosen.clone()));
        }
        if store
            .assign_room(room, current_id, chosen_id, now, ttl_secs)
            .await?
        {
            tracing::info!(
                room,
                node = chosen_id,
                previous = current_id,
                load = chosen.info.load.score(),
                "room placed on media node"
            );
            return Ok(Some(chosen.clone()));
        }
        tracing::debug!(room, attempt, "room placement raced another writer");
    }
    tracing::warn!(
        room,
        attempts = MAX_ATTEMPTS,
        "gave up placing a contended room"
    );
    Err(FleetError::Contention(room.to_owned()))
}
