//! What one participant receives, slot by slot, inside the measurement
//! window; and the run's totals.

use crate::payload::Tag;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a slot assignment must have held before a packet that disagrees
/// with it counts as a mismatch: the node switches a slot and then announces
/// it, so the first packets of a new speaker may beat the event.
const ASSIGNMENT_GRACE_US: u64 = 300_000;

/// The measurement window, in microseconds since the epoch; 0 until set.
#[derive(Debug, Default)]
pub(crate) struct Window {
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Window {
    pub(crate) fn set(&self, start_us: u64, end_us: u64) {
        self.end_us.store(end_us, Ordering::Relaxed);
        self.start_us.store(start_us, Ordering::Release);
    }

    pub(crate) fn contains(&self, t_us: u64) -> bool {
        let start = self.start_us.load(Ordering::Acquire);
        start != 0 && t_us >= start && t_us < self.end_us.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default, Clone)]
struct SlotStats {
    packets: u64,
    /// Extended sequence numbers seen in the window: lowest and highest.
    first_ext: Option<i64>,
    highest_ext: i64,
    seen: bool,
    last_seq: u16,
    last_ext: i64,
    /// Who the server says this slot carries, and since when.
    assigned: Option<u32>,
    assigned_at_us: u64,
    /// Whether the server announces assignments for this slot at all.
    announced: bool,
}

/// One participant's receive counters.
/// One received RTP packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub(crate) slot: usize,
    pub(crate) seq: u16,
    /// RTP header and payload.
    pub(crate) bytes: usize,
    pub(crate) tag: Option<Tag>,
    pub(crate) now_us: u64,
    pub(crate) in_window: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Receiver {
    /// The participant's own index.
    me: u32,
    slots: Vec<SlotStats>,
    pub(crate) bytes: u64,
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) mismatches: u64,
    pub(crate) self_packets: u64,
    /// Senders from this index on are muted: none of their packets should
    /// reach anyone.
    muted_from: u32,
    pub(crate) muted_packets: u64,
    pub(crate) untagged: u64,
    pub(crate) speaker_events: u64,
}

impl Receiver {
    pub(crate) fn new(me: u32, slots: usize) -> Self {
        Self {
            me,
            muted_from: u32::MAX,
            slots: vec![SlotStats::default(); slots],
            ..Self::default()
        }
    }

    /// Packets from senders `from` on are from muted participants.
    pub(crate) fn muted_from(mut self, from: u32) -> Self {
        self.muted_from = from;
        self
    }

    /// Declares what `slot` carries (`None`: nothing), from an
    /// `active-speakers` event or a fixed subscription.
    pub(crate) fn assign(&mut self, slot: usize, sender: Option<u32>, now_us: u64) {
        if let Some(s) = self.slots.get_mut(slot) {
            if !s.announced || s.assigned != sender {
                s.assigned_at_us = now_us;
            }
            s.assigned = sender;
            s.announced = true;
        }
    }

    /// Counts one RTP packet of `bytes` bytes received on `slot`.
    pub(crate) fn packet(&mut self, a: Arrival) {
        let Arrival {
            slot,
            seq,
            bytes,
            tag,
            now_us,
            in_window,
        } = a;
        let me = self.me;
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        // Extend the sequence number even outside the window, so wraps are
        // followed across its edges.
        let ext = if !s.seen {
            s.seen = true;
            i64::from(seq)
        } else {
            s.last_ext + i64::from(seq.wrapping_sub(s.last_seq) as i16)
        };
        s.last_seq = seq;
        s.last_ext = ext;
        if !in_window {
            return;
        }
        s.packets += 1;
        match s.first_ext {
            None => {
                s.first_ext = Some(ext);
                s.highest_ext = ext;
            }
            Some(first) => {
                s.first_ext = Some(first.min(ext));
                s.highest_ext = s.highest_ext.max(ext);
            }
        }
        self.bytes += bytes as u64;
        match tag {
            None => self.untagged += 1,
            Some(tag) => {
                let latency = now_us.saturating_sub(tag.sent_us);
                self.latencies_us
                    .push(u32::try_from(latency).unwrap_or(u32::MAX));
                if tag.sender == me {
                    self.self_packets += 1;
                }
                if tag.sender >= self.muted_from {
                    self.muted_packets += 1;
                }
                if s.announced
                    && s.assigned != Some(tag.sender)
                    && now_us.saturating_sub(s.assigned_at_us) > ASSIGNMENT_GRACE_US
                {
                    if self.mismatches < 3 {
                        tracing::debug!(
                            me,
                            slot,
                            sender = tag.sender,
                            assigned = ?s.assigned,
                            "packet disagrees with the slot's assignment"
                        );
                    }
                    self.mismatches += 1;
                }
            }
        }
    }

    /// Packets received in the window and packets the sequence numbers say
    /// were sent in it.
    pub(crate) fn received_and_expected(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |(got, want), s| {
            let span = s
                .first_ext
                .map(|first| (s.highest_ext - first + 1) as u64)
                .unwrap_or(0);
            (got + s.packets, want + span.max(s.packets))
        })
    }
}

/// The p-th percentile (0..=100) of sorted values, nearest rank.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(
        slot: usize,
        seq: u16,
        bytes: usize,
        tag: Option<Tag>,
        now_us: u64,
        in_window: bool,
    ) -> Arrival {
        Arrival {
            slot,
            seq,
            bytes,
            tag,
            now_us,
            in_window,
        }
    }

    fn tag(sender: u32, sent_us: u64) -> Option<Tag> {
        Some(Tag {
            sender,
            seq: 0,
            sent_us,
        })
    }

    #[test]
    fn loss_comes_from_the_sequence_gaps_across_a_wrap() {
        let mut r = Receiver::new(9, 1);
        for seq in [65_533u16, 65_534, 0, 1, 3] {
            r.packet(arrival(0, seq, 100, tag(1, 0), 1, true));
        }
        // 65533..=3 is 7 numbers, 5 arrived.
        assert_eq!(r.received_and_expected(), (5, 7));
        assert_eq!(r.bytes, 500);
    }

    #[test]
    fn packets_outside_the_window_are_not_counted() {
        let mut r = Receiver::new(9, 1);
        r.packet(arrival(0, 10, 100, tag(1, 0), 1, false));
        r.packet(arrival(0, 11, 100, tag(1, 0), 1, true));
        assert_eq!(r.received_and_expected(), (1, 1));
        assert_eq!(r.latencies_us.len(), 1);
    }

    #[test]
    fn a_packet_disagreeing_with_a_settled_assignment_is_a_mismatch() {
        let mut r = Receiver::new(9, 2);
        r.assign(0, Some(1), 0);
        r.assign(1, None, 0);
        let later = ASSIGNMENT_GRACE_US + 1;
        r.packet(arrival(0, 1, 10, tag(1, 0), later, true));
        r.packet(arrival(0, 2, 10, tag(2, 0), later, true));
        r.packet(arrival(1, 1, 10, tag(3, 0), later, true));
        assert_eq!(r.mismatches, 2);
        // Right after a change, the new speaker's packets are fine.
        r.assign(0, Some(2), later);
        r.packet(arrival(0, 3, 10, tag(2, 0), later + 1, true));
        r.packet(arrival(0, 4, 10, tag(1, 0), later + 1, true));
        assert_eq!(r.mismatches, 2);
    }

    #[test]
    fn own_packets_and_untagged_packets_are_counted() {
        let mut r = Receiver::new(4, 1);
        r.packet(arrival(0, 1, 10, tag(4, 0), 1, true));
        r.packet(arrival(0, 2, 10, None, 1, true));
        assert_eq!((r.self_packets, r.untagged), (1, 1));
    }

    #[test]
    fn packets_of_muted_senders_are_counted() {
        let mut r = Receiver::new(0, 1).muted_from(5);
        r.packet(arrival(0, 1, 10, tag(4, 0), 1, true));
        r.packet(arrival(0, 2, 10, tag(5, 0), 1, true));
        r.packet(arrival(0, 3, 10, tag(6, 0), 1, true));
        assert_eq!(r.muted_packets, 2);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
