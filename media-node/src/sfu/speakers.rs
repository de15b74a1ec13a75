//! Who is speaking, and which speaker each subscriber hears in which slot:
//! IO-free, the caller passes `now`.
//!
//! Each publisher's RFC 6464 level is smoothed exponentially
//! ([`SMOOTHING`]); a publisher is a candidate while it has sent voice (a
//! level louder than [`VOICE_DBOV`]) within [`SILENCE_TIMEOUT`]. Each
//! subscriber's slots keep their speaker, even through a pause, until a
//! candidate needs the slot: a free slot takes the loudest candidate not
//! yet heard, then a slot whose speaker has gone quiet, and a slot whose
//! speaker still talks is taken over only by a candidate louder by
//! [`HYSTERESIS_DB`] than the quietest such occupant, so the assignment
//! does not flicker and a lone speaker's pauses (or DTX) never cut it off.
//! Muted and departed speakers are taken out by the caller.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Time constant of the level smoothing.
pub(crate) const SMOOTHING: Duration = Duration::from_millis(400);
/// Levels louder than this (in dBov, 0 loudest) count as voice.
pub(crate) const VOICE_DBOV: f32 = -70.0;
/// A publisher with no voice for this long is no longer a speaker.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(1);
/// How much louder a candidate must be to displace a slot's speaker.
pub(crate) const HYSTERESIS_DB: f32 = 6.0;
/// The silence level of RFC 6464.
pub(crate) const SILENCE_DBOV: f32 = -127.0;

/// One publisher's smoothed level.
#[derive(Debug, Clone)]
pub(crate) struct Level {
    smoothed: f32,
    last_packet: Option<Instant>,
    last_voice: Option<Instant>,
}

impl Default for Level {
    fn default() -> Self {
        Self {
            smoothed: SILENCE_DBOV,
            last_packet: None,
            last_voice: None,
        }
    }
}

impl Level {
    /// Feeds one packet's level: RFC 6464's 7-bit value, -dBov (0 loudest,
    /// 127 silence).
    pub(crate) fn observe(&mut self, minus_dbov: u8, now: Instant) {
        let dbov = -f32::from(minus_dbov.min(127));
        let dt = self.last_packet.map_or(Duration::from_millis(20), |t| {
            now.saturating_duration_since(t)
        });
        let alpha = 1.0 - (-dt.as_secs_f32() / SMOOTHING.as_secs_f32()).exp();
        self.smoothed += alpha * (dbov - self.smoothed);
        self.last_packet = Some(now);
        if dbov > VOICE_DBOV {
            self.last_voice = Some(now);
        }
    }

    /// Speaking lately.
    pub(crate) fn is_speaking(&self, now: Instant) -> bool {
        self.last_voice
            .is_some_and(|t| now.saturating_duration_since(t) < SILENCE_TIMEOUT)
    }

    /// The smoothed level in dBov (-127..=0).
    pub(crate) fn dbov(&self) -> f32 {
        self.smoothed
    }

    /// The smoothed level as the event reports it (-127..=0).
    pub(crate) fn reported(&self) -> i8 {
        self.smoothed.round().clamp(-127.0, 0.0) as i8
    }
}

/// Candidates, loudest first: `(publisher, level in dBov)`.
pub(crate) fn rank<K: Copy + Eq + Hash>(
    levels: &HashMap<K, Level>,
    eligible: impl Fn(K) -> bool,
    now: Instant,
) -> Vec<(K, f32)> {
    let mut ranked: Vec<(K, f32)> = levels
        .iter()
        .filter(|(k, l)| l.is_speaking(now) && eligible(**k))
        .map(|(k, l)| (*k, l.dbov()))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// Updates one subscriber's `slots` from the room's `ranked` candidates
/// (loudest first), never giving it `me`. True if anything changed.
pub(crate) fn assign<K: Copy + Eq>(slots: &mut [Option<K>], ranked: &[(K, f32)], me: K) -> bool {
    let level_of = |k: K| ranked.iter().find(|(c, _)| *c == k).map(|(_, l)| *l);
    let mut changed = false;
    for slot in slots.iter_mut() {
        if *slot == Some(me) {
            *slot = None;
            changed = true;
        }
    }
    for &(candidate, level) in ranked {
        if candidate == me || slots.contains(&Some(candidate)) {
            continue;
        }
        // A free slot first, then one whose speaker has gone quiet.
        let open = slots.iter().position(Option::is_none).or_else(|| {
            slots
                .iter()
                .position(|s| s.is_some_and(|k| level_of(k).is_none()))
        });
        if let Some(i) = open {
            slots[i] = Some(candidate);
            changed = true;
            continue;
        }
        // Displace the quietest occupant only if clearly louder.
        let quietest = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.and_then(|k| level_of(k).map(|l| (i, l))))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match quietest {
            Some((i, l)) if level > l + HYSTERESIS_DB => {
                slots[i] = Some(candidate);
                changed = true;
            }
            // Ranked loudest first: nobody after this one can do better.
            _ => break,
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(level: &mut Level, minus_dbov: u8, from: Instant, ms: u64) -> Instant {
        let mut t = from;
        for _ in 0..ms / 20 {
            t += Duration::from_millis(20);
            level.observe(minus_dbov, t);
        }
        t
    }

    #[test]
    fn level_smooths_towards_the_input_and_silence_ends_speaking() {
        let start = Instant::now();
        let mut level = Level::default();
        let t = talk(&mut level, 20, start, 3_000);
        assert!((level.dbov() + 20.0).abs() < 1.0, "{}", level.dbov());
        assert!(level.is_speaking(t));
        assert_eq!(level.reported(), -20);
        // One loud packet in silence barely moves it.
        let mut quiet = Level::default();
        let t2 = talk(&mut quiet, 127, start, 1_000);
        quiet.observe(0, t2 + Duration::from_millis(20));
        assert!(quiet.dbov() < -120.0, "{}", quiet.dbov());
        // Silence packets: no longer speaking after the timeout.
        let t = talk(&mut level, 127, t, 1_100);
        assert!(!level.is_speaking(t));
        // No packets at all: same.
        let mut gone = Level::default();
        let t = talk(&mut gone, 10, start, 200);
        assert!(gone.is_speaking(t));
        assert!(!gone.is_speaking(t + SILENCE_TIMEOUT));
    }

    #[test]
    fn loudest_fill_free_slots_and_never_oneself() {
        let ranked = [(1, -10.0), (2, -20.0), (3, -30.0), (4, -40.0)];
        let mut slots = [None; 3];
        assert!(assign(&mut slots, &ranked, 2));
        assert_eq!(slots, [Some(1), Some(3), Some(4)]);
        let mut slots = [None; 3];
        assign(&mut slots, &ranked, 9);
        assert_eq!(slots, [Some(1), Some(2), Some(3)]);
        assert!(
            !assign(&mut slots, &ranked, 9),
            "stable when nothing changes"
        );
    }

    #[test]
    fn a_speaker_is_displaced_only_by_a_clearly_louder_one() {
        let mut slots = [Some(1), Some(2)];
        // 3 is louder than 2, but within the hysteresis: no change.
        let ranked = [(1, -10.0), (3, -25.0), (2, -28.0)];
        assert!(!assign(&mut slots, &ranked, 9));
        assert_eq!(slots, [Some(1), Some(2)]);
        // Clearly louder: takes 2's slot, 1 keeps its own.
        let ranked = [(1, -10.0), (3, -15.0), (2, -28.0)];
        assert!(assign(&mut slots, &ranked, 9));
        assert_eq!(slots, [Some(1), Some(3)]);
    }

    #[test]
    fn a_silent_speaker_keeps_its_slot_until_a_candidate_needs_it() {
        // 2 went quiet: it stays while nobody else talks.
        let mut slots = [Some(1), Some(2)];
        assert!(!assign(&mut slots, &[(1, -10.0)], 9));
        assert_eq!(slots, [Some(1), Some(2)]);
        assert!(!assign(&mut slots, &[], 9));
        assert_eq!(slots, [Some(1), Some(2)]);
        // A quiet candidate takes the quiet speaker's slot, without
        // having to be louder than anyone.
        let ranked = [(1, -10.0), (3, -40.0)];
        assert!(assign(&mut slots, &ranked, 9));
        assert_eq!(slots, [Some(1), Some(3)]);
        // A free slot is taken before a quiet speaker's.
        let mut slots = [Some(2), None];
        assert!(assign(&mut slots, &[(3, -40.0)], 9));
        assert_eq!(slots, [Some(2), Some(3)]);
        // Never oneself, even when sticky.
        let mut slots = [Some(9), Some(2)];
        assert!(assign(&mut slots, &[], 9));
        assert_eq!(slots, [None, Some(2)]);
    }

    #[test]
    fn rank_keeps_speaking_eligible_publishers_loudest_first() {
        let start = Instant::now();
        let mut levels = HashMap::new();
        let mut t = start;
        for (k, lvl) in [(1u32, 40u8), (2, 10), (3, 127), (4, 20)] {
            t = talk(levels.entry(k).or_default(), lvl, start, 600);
        }
        let ranked = rank(&levels, |k| k != 4, t);
        let keys: Vec<u32> = ranked.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [2, 1]);
    }
}
