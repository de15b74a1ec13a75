//! Which node serves a room.

use crate::NodeRecord;

/// The least-loaded node that is alive and active at `now`, or `None`.
///
/// Nodes above [`crate::CPU_HOT_PERCENT`] come last; then the lowest
/// [`crate::NodeLoad::score`], then the lowest CPU; ties go to the smallest id
/// so every signaling instance picks the same node from the same list.
pub fn pick_node(nodes: &[NodeRecord], now: u64) -> Option<&NodeRecord> {
    nodes.iter().filter(|n| n.is_available(now)).min_by(|a, b| {
        let (la, lb) = (&a.info.load, &b.info.load);
        la.is_hot()
            .cmp(&lb.is_hot())
            .then(la.score().cmp(&lb.score()))
            .then(la.cpu_percent.total_cmp(&lb.cpu_percent))
            .then(a.info.id.cmp(&b.info.id))
    })
}

/// The node for a room currently on `current` (if any): it stays there while
/// that node is alive and active, so everyone in a call relays through one
/// node; otherwise (new room, node gone silent or draining) it moves to
/// [`pick_node`]'s choice. Returns `None` when no node is available.
pub fn place_room<'a>(
    current: Option<&str>,
    nodes: &'a [NodeRecord],
    now: u64,
) -> Option<&'a NodeRecord> {
    current
        .and_then(|id| nodes.iter().find(|n| n.info.id == id))
        .filter(|n| n.is_available(now))
        .or_else(|| pick_node(nodes, now))
}
