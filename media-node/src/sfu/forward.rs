//! One receive slot's outgoing stream: whatever speaker fills it, the
//! subscriber sees one SSRC with continuous sequence numbers and
//! timestamps, so a change of speaker needs no renegotiation. IO-free.

use std::time::Instant;

/// Opus' RTP clock.
pub(crate) const CLOCK_RATE: u64 = 48_000;
/// The timestamp step assumed between two speakers (one 20 ms frame).
const MIN_GAP_SAMPLES: u32 = 960;

/// The rewriting state of one slot.
#[derive(Debug, Clone)]
pub(crate) struct SlotStream<K> {
    /// The slot track's SSRC.
    pub(crate) ssrc: u32,
    source: Option<K>,
    seq_offset: u16,
    ts_offset: u32,
    /// Last sequence number and timestamp sent, and when.
    last: Option<(u16, u32, Instant)>,
    /// The next packet starts a talk spurt (marker bit).
    switched: bool,
}

/// A packet's header fields after rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) ssrc: u32,
    pub(crate) sequence_number: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
}

impl<K: Copy + Eq> SlotStream<K> {
    pub(crate) fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
            switched: false,
        }
    }

    /// The speaker in this slot.
    pub(crate) fn source(&self) -> Option<K> {
        self.source
    }

    /// Puts `source` in the slot (or empties it); its first packet will be
    /// rebased onto the stream.
    pub(crate) fn set_source(&mut self, source: Option<K>) {
        if self.source != source {
            self.source = source;
            self.switched = true;
        }
    }

    /// Rewrites a packet of `from` (sequence number `seq`, timestamp `ts`,
    /// `marker`) arriving at `now`; `None` if `from` is not this slot's
    /// speaker.
    pub(crate) fn rewrite(
        &mut self,
        from: K,
        seq: u16,
        ts: u32,
        marker: bool,
        now: Instant,
    ) -> Option<Rewritten> {
        if self.source != Some(from) {
            return None;
        }
        let mut marker = marker;
        if self.switched {
            self.switched = false;
            marker = true;
            match self.last {
                Some((last_seq, last_ts, at)) => {
                    let elapsed = now.saturating_duration_since(at);
                    let samples = (elapsed.as_micros() as u64 * CLOCK_RATE / 1_000_000)
                        .min(u64::from(u32::MAX / 2)) as u32;
                    let next_ts = last_ts.wrapping_add(samples.max(MIN_GAP_SAMPLES));
                    self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(seq);
                    self.ts_offset = next_ts.wrapping_sub(ts);
                }
                None => {
                    // The first speaker: its own numbering from a random-free base.
                    self.seq_offset = 0;
                    self.ts_offset = 0;
                }
            }
        }
        let out = Rewritten {
            ssrc: self.ssrc,
            sequence_number: seq.wrapping_add(self.seq_offset),
            timestamp: ts.wrapping_add(self.ts_offset),
            marker,
        };
        // Track the newest packet sent (a late, reordered one does not
        // move the base back).
        let newer = self
            .last
            .is_none_or(|(last_seq, _, _)| out.sequence_number.wrapping_sub(last_seq) < 0x8000);
        if newer {
            self.last = Some((out.sequence_number, out.timestamp, now));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn other_speakers_are_not_forwarded() {
        let mut slot = SlotStream::new(7);
        let now = Instant::now();
        assert_eq!(slot.rewrite(1, 10, 100, false, now), None);
        slot.set_source(Some(1));
        assert_eq!(slot.rewrite(2, 10, 100, false, now), None);
        assert!(slot.rewrite(1, 10, 100, false, now).is_some());
    }

    #[test]
    fn switching_speaker_keeps_sequence_and_timestamps_continuous() {
        let start = Instant::now();
        let mut slot = SlotStream::new(7);
        slot.set_source(Some(1));
        let mut t = start;
        let mut last = None;
        for i in 0..5u16 {
            let out = slot
                .rewrite(
                    1,
                    65_534u16.wrapping_add(i),
                    1_000 + u32::from(i) * 960,
                    false,
                    t,
                )
                .unwrap();
            assert_eq!(out.ssrc, 7);
            assert_eq!(out.marker, i == 0);
            last = Some(out);
            t += Duration::from_millis(20);
        }
        let last = last.unwrap();
        // Speaker 2 takes over 100 ms later, with its own numbering.
        slot.set_source(Some(2));
        t += Duration::from_millis(80);
        let out = slot.rewrite(2, 500, 9_999_999, false, t).unwrap();
        assert_eq!(out.sequence_number, last.sequence_number.wrapping_add(1));
        assert_eq!(out.timestamp, last.timestamp.wrapping_add(100 * 48));
        assert!(out.marker);
        let next = slot
            .rewrite(
                2,
                501,
                9_999_999 + 960,
                false,
                t + Duration::from_millis(20),
            )
            .unwrap();
        assert_eq!(next.sequence_number, out.sequence_number.wrapping_add(1));
        assert_eq!(next.timestamp, out.timestamp.wrapping_add(960));
        assert!(!next.marker);
        // The old speaker's packets are dropped now.
        assert_eq!(slot.rewrite(1, 4, 5_800, false, t), None);
    }

    #[test]
    fn a_late_packet_keeps_its_place_without_moving_the_base() {
        let now = Instant::now();
        let mut slot = SlotStream::new(7);
        slot.set_source(Some(1));
        slot.rewrite(1, 10, 0, false, now).unwrap();
        slot.rewrite(1, 12, 1920, false, now).unwrap();
        let late = slot.rewrite(1, 11, 960, false, now).unwrap();
        assert_eq!(late.sequence_number, 11);
        slot.set_source(Some(2));
        let out = slot.rewrite(2, 0, 0, false, now).unwrap();
        assert_eq!(out.sequence_number, 13);
    }
}
