//! RED (RFC 2198) payloads. To a subscriber that negotiated `audio/red`
//! the SFU sends RED it builds itself, per slot: the current Opus frame
//! and up to [`MAX_REDUNDANCY`] earlier ones, as many as the loss that
//! subscriber reports in its RTCP receiver reports calls for
//! ([`Redundancy`]), whether the publisher sent RED or plain Opus. A
//! subscriber without RED gets the primary block (the last one) alone.
//! IO-free; malformed payloads are refused, never read past their end.
//!
//! A RED payload is a chain of block headers, then the blocks in the same
//! order. Every header but the last is 4 bytes: `F` (1: more headers
//! follow), the block's payload type (7 bits), its timestamp offset from
//! the packet's (14 bits) and its length (10 bits). The last header is one
//! byte, `F` = 0 and the payload type; its block, the primary, runs to the
//! end of the payload.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// RED's MIME type (RFC 2198, as browsers name it).
pub(crate) const MIME_TYPE_RED: &str = "audio/red";

/// Where a RED payload's primary block is, and how many blocks precede it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedLayout {
    /// The primary block's payload type.
    pub(crate) primary_pt: u8,
    /// The primary block's bytes within the payload.
    pub(crate) primary: Range<usize>,
    /// The redundant blocks' count.
    pub(crate) redundant: usize,
}

/// Parses a RED payload's headers; `None` when it is malformed (truncated
/// headers, blocks longer than the payload, or an empty primary).
pub(crate) fn parse(payload: &[u8]) -> Option<RedLayout> {
    let mut at = 0;
    let mut blocks_len = 0usize;
    let mut redundant = 0usize;
    loop {
        let first = *payload.get(at)?;
        if first & 0x80 == 0 {
            let primary_pt = first & 0x7f;
            at += 1;
            let start = at.checked_add(blocks_len)?;
            if start >= payload.len() {
                return None;
            }
            return Some(RedLayout {
                primary_pt,
                primary: start..payload.len(),
                redundant,
            });
        }
        let header = payload.get(at..at + 4)?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]) & 0x03ff);
        blocks_len += length;
        redundant += 1;
        at += 4;
    }
}

/// The most earlier frames a RED packet from the SFU carries.
pub(crate) const MAX_REDUNDANCY: usize = 5;
/// The largest timestamp offset a redundant block can have (14 bits).
const MAX_OFFSET: u32 = 0x3fff;
/// The largest redundant block (10 bits of length).
const MAX_BLOCK: usize = 0x3ff;

/// One slot's recent Opus frames (by the slot stream's timestamps), from
/// which its RED payloads are built.
#[derive(Debug, Default)]
pub(crate) struct RedEncoder {
    /// Oldest first; at most [`MAX_REDUNDANCY`].
    recent: VecDeque<(u32, Bytes)>,
}

impl RedEncoder {
    /// A RED payload carrying `frame` (Opus, payload type `opus`, at
    /// timestamp `ts`) as its primary, after up to `redundancy` earlier
    /// frames of this slot that RED can still express (offset under 2^14
    /// samples, block under 1 KiB). A frame newer than any before is kept
    /// for the packets that follow; a late one is sent but not kept.
    pub(crate) fn encode(&mut self, ts: u32, opus: u8, frame: &Bytes, redundancy: usize) -> Bytes {
        let earlier: Vec<&(u32, Bytes)> = self
            .recent
            .iter()
            .filter(|(old, data)| {
                let offset = ts.wrapping_sub(*old);
                (1..=MAX_OFFSET).contains(&offset) && data.len() <= MAX_BLOCK
            })
            .collect();
        let earlier = &earlier[earlier.len().saturating_sub(redundancy.min(MAX_REDUNDANCY))..];
        let size = 1 + frame.len() + earlier.iter().map(|(_, d)| 4 + d.len()).sum::<usize>();
        let mut out = BytesMut::with_capacity(size);
        for (old, data) in earlier {
            out.put_u8(0x80 | (opus & 0x7f));
            let word = (ts.wrapping_sub(*old) << 10) | data.len() as u32;
            out.put_slice(&word.to_be_bytes()[1..]);
        }
        out.put_u8(opus & 0x7f);
        for (_, data) in earlier {
            out.put_slice(data);
        }
        out.put_slice(frame);
        let newest = self
            .recent
            .back()
            .is_none_or(|(last, _)| ts.wrapping_sub(*last).wrapping_sub(1) < 0x7fff_ffff);
        if newest {
            if self.recent.len() == MAX_REDUNDANCY {
                self.recent.pop_front();
            }
            self.recent.push_back((ts, frame.clone()));
        }
        out.freeze()
    }
}

/// How many earlier frames one subscriber's slots carry, from the loss it
/// reports: one (as browsers send RED) on a clean link, more as loss
/// grows. It rises on the first report that calls for more and falls only
/// after [`CALM_REPORTS`] reports in a row call for less, so it does not
/// flap. Each extra block costs about one Opus frame's bitrate again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Redundancy {
    level: usize,
    calm: u8,
}

/// Reports in a row that must ask for less before redundancy falls.
pub(crate) const CALM_REPORTS: u8 = 2;

impl Default for Redundancy {
    fn default() -> Self {
        Self { level: 1, calm: 0 }
    }
}

impl Redundancy {
    /// Earlier frames to send with each one.
    pub(crate) fn level(self) -> usize {
        self.level
    }

    /// The level a reported loss calls for (RTCP's fraction lost, in
    /// 1/256): one under 2 %, two under 5 %, three under 10 %, five above.
    /// Loss often comes in bursts, and the frames of a burst longer than
    /// the level are lost: at 10 % in bursts of mean 3, two earlier frames
    /// left 4-5 % concealed, three 3 %, five 1.5 % (with the deeper jitter
    /// buffer the client asks for on such a link, so that a frame carried
    /// 100 ms late is not due yet).
    fn wanted(fraction_lost: u8) -> usize {
        match u32::from(fraction_lost) * 100 / 256 {
            0..=1 => 1,
            2..=4 => 2,
            5..=9 => 3,
            _ => MAX_REDUNDANCY,
        }
    }

    /// Takes one receiver report's fraction lost for this subscriber.
    pub(crate) fn report(&mut self, fraction_lost: u8) {
        let wanted = Self::wanted(fraction_lost);
        if wanted >= self.level {
            self.level = wanted;
            self.calm = 0;
        } else {
            self.calm += 1;
            if self.calm >= CALM_REPORTS {
                self.level -= 1;
                self.calm = 0;
            }
        }
    }
}

/// The Opus frame a packet carries: a RED payload's primary block when
/// it is Opus (`opus`, the publisher's Opus payload type), or the payload
/// of a plain Opus packet.
pub(crate) fn opus_frame(payload: &Bytes, is_red: bool, opus: Option<u8>) -> Option<Bytes> {
    if is_red {
        strip(payload, opus)
    } else {
        (!payload.is_empty()).then(|| payload.clone())
    }
}

/// The primary block of a RED payload, if it is Opus (`opus`, the
/// publisher's Opus payload type): what a subscriber without RED gets.
pub(crate) fn strip(payload: &Bytes, opus: Option<u8>) -> Option<Bytes> {
    let layout = parse(payload)?;
    (Some(layout.primary_pt) == opus).then(|| payload.slice(layout.primary))
}

/// The primary block of a RED payload, and its payload type.
#[cfg(test)]
pub(crate) fn primary(payload: &[u8]) -> Option<(u8, &[u8])> {
    let layout = parse(payload)?;
    Some((layout.primary_pt, &payload[layout.primary]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload of `blocks` (payload type, timestamp offset, data),
    /// the last being the primary.
    fn red(blocks: &[(u8, u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let (last, redundant) = blocks.split_last().unwrap();
        for (pt, offset, data) in redundant {
            out.push(0x80 | pt);
            let word = (u32::from(*offset) << 10) | data.len() as u32;
            out.extend_from_slice(&word.to_be_bytes()[1..]);
        }
        out.push(last.0);
        for (_, _, data) in blocks {
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn the_primary_is_the_last_block() {
        let payload = red(&[(111, 960, b"older"), (111, 0, b"primary frame")]);
        assert_eq!(primary(&payload), Some((111, &b"primary frame"[..])));
        let layout = parse(&payload).unwrap();
        assert_eq!(layout.redundant, 1);

        let two = red(&[(111, 1920, b"a"), (111, 960, b"bb"), (111, 0, b"ccc")]);
        assert_eq!(primary(&two), Some((111, &b"ccc"[..])));
        assert_eq!(parse(&two).unwrap().redundant, 2);
    }

    #[test]
    fn a_single_block_red_payload_is_its_primary() {
        let payload = red(&[(111, 0, b"only")]);
        assert_eq!(payload[0], 111);
        assert_eq!(primary(&payload), Some((111, &b"only"[..])));
        assert_eq!(parse(&payload).unwrap().redundant, 0);
    }

    #[test]
    fn stripping_keeps_an_opus_primary_only() {
        let payload = bytes::Bytes::from(red(&[(111, 960, b"older"), (111, 0, b"new")]));
        assert_eq!(strip(&payload, Some(111)).as_deref(), Some(&b"new"[..]));
        // A primary in another codec (here comfort noise) is not Opus.
        let cn = bytes::Bytes::from(red(&[(111, 960, b"older"), (13, 0, b"cn")]));
        assert_eq!(strip(&cn, Some(111)), None);
        assert_eq!(strip(&payload, None), None);
        assert_eq!(
            strip(&bytes::Bytes::from_static(&[0x80 | 111, 0]), Some(111)),
            None
        );
    }

    #[test]
    fn malformed_payloads_are_refused() {
        // Empty, a header with no primary, truncated headers.
        assert_eq!(primary(&[]), None);
        assert_eq!(primary(&[111]), None);
        assert_eq!(primary(&[0x80 | 111]), None);
        assert_eq!(primary(&[0x80 | 111, 0, 3]), None);
        // A redundant block longer than the payload.
        let mut long = red(&[(111, 960, b"older"), (111, 0, b"new")]);
        long[3] = 0xff;
        assert_eq!(primary(&long), None);
        // Blocks that leave nothing for the primary.
        let payload = red(&[(111, 960, b"older"), (111, 0, b"")]);
        assert_eq!(primary(&payload), None);
        // F bits all the way through: no last header.
        assert_eq!(primary(&[0x80 | 111, 0, 0, 0, 0x80 | 111, 0, 0, 0]), None);
    }

    fn blocks(payload: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        // (payload type, timestamp offset, data), primary last at offset 0.
        let layout = parse(payload).unwrap();
        let mut headers = Vec::new();
        let mut at = 0;
        while payload[at] & 0x80 != 0 {
            let word = u32::from_be_bytes([0, payload[at + 1], payload[at + 2], payload[at + 3]]);
            headers.push((payload[at] & 0x7f, word >> 10, (word & 0x3ff) as usize));
            at += 4;
        }
        at += 1;
        let mut out = Vec::new();
        for (pt, offset, len) in headers {
            out.push((pt, offset, payload[at..at + len].to_vec()));
            at += len;
        }
        out.push((layout.primary_pt, 0, payload[layout.primary].to_vec()));
        out
    }

    #[test]
    fn the_encoder_sends_as_many_earlier_frames_as_asked() {
        let mut enc = RedEncoder::default();
        let frame = |i: u8| Bytes::from(vec![i; usize::from(i) + 1]);
        let first = enc.encode(1_000, 109, &frame(1), 2);
        assert_eq!(blocks(&first), [(109, 0, vec![1; 2])]);
        enc.encode(1_960, 109, &frame(2), 2);
        enc.encode(2_920, 109, &frame(3), 2);
        let fourth = enc.encode(3_880, 109, &frame(4), 2);
        assert_eq!(
            blocks(&fourth),
            [
                (109, 1_920, vec![2; 3]),
                (109, 960, vec![3; 4]),
                (109, 0, vec![4; 5])
            ]
        );
        let one = enc.encode(4_840, 109, &frame(5), 1);
        assert_eq!(blocks(&one), [(109, 960, vec![4; 5]), (109, 0, vec![5; 6])]);
        let max = enc.encode(5_800, 109, &frame(6), 9);
        assert_eq!(blocks(&max).len(), MAX_REDUNDANCY + 1);
        let none = enc.encode(6_760, 109, &frame(7), 0);
        assert_eq!(blocks(&none), [(109, 0, vec![7; 8])]);
    }

    #[test]
    fn the_encoder_keeps_what_red_can_express() {
        let mut enc = RedEncoder::default();
        // Across the timestamp wrap.
        enc.encode(u32::MAX - 479, 111, &Bytes::from_static(b"a"), 1);
        let wrapped = enc.encode(480, 111, &Bytes::from_static(b"b"), 1);
        assert_eq!(blocks(&wrapped)[0], (111, 960, b"a".to_vec()));
        // A late frame gets only older frames as redundancy, and is not kept.
        let late = enc.encode(0, 111, &Bytes::from_static(b"late"), 3);
        assert_eq!(
            blocks(&late),
            [(111, 480, b"a".to_vec()), (111, 0, b"late".to_vec())]
        );
        let next = enc.encode(1_440, 111, &Bytes::from_static(b"c"), 3);
        let offsets: Vec<u32> = blocks(&next).iter().map(|b| b.1).collect();
        assert_eq!(offsets, [1_920, 960, 0]);
        // Too old for 14 bits (a pause), or too long for 10: left out.
        let after_pause = enc.encode(1_440 + 20_000, 111, &Bytes::from_static(b"d"), 3);
        assert_eq!(blocks(&after_pause).len(), 1);
        enc.encode(30_000, 111, &Bytes::from(vec![0; 1_100]), 3);
        let after_big = enc.encode(30_960, 111, &Bytes::from_static(b"e"), 3);
        assert_eq!(blocks(&after_big).len(), 2, "the frame before the big one");
    }

    #[test]
    fn redundancy_rises_at_once_and_falls_after_calm_reports() {
        let mut r = Redundancy::default();
        assert_eq!(r.level(), 1);
        r.report(0);
        assert_eq!(r.level(), 1);
        r.report(18); // 7 %
        assert_eq!(r.level(), 3);
        r.report(51); // 20 %
        assert_eq!(r.level(), MAX_REDUNDANCY);
        r.report(10); // 3.9 %: wants 2, once is not enough
        assert_eq!(r.level(), MAX_REDUNDANCY);
        r.report(51);
        r.report(0);
        assert_eq!(r.level(), MAX_REDUNDANCY);
        r.report(0);
        assert_eq!(r.level(), MAX_REDUNDANCY - 1, "one step at a time");
        for _ in 0..2 * (MAX_REDUNDANCY - 2) {
            r.report(0);
        }
        assert_eq!(r.level(), 1);
        r.report(10); // 3.9 %
        assert_eq!(r.level(), 2);
    }

    #[test]
    fn the_opus_frame_of_a_packet() {
        let red_payload = Bytes::from(red(&[(111, 960, b"old"), (111, 0, b"new")]));
        assert_eq!(
            opus_frame(&red_payload, true, Some(111)).as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(opus_frame(&red_payload, true, Some(96)), None);
        let plain = Bytes::from_static(b"opus");
        assert_eq!(opus_frame(&plain, false, Some(111)), Some(plain.clone()));
        assert_eq!(opus_frame(&Bytes::new(), false, Some(111)), None);
    }

    proptest::proptest! {
        #[test]
        fn any_payload_parses_or_is_refused_without_panic(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            if let Some(layout) = parse(&data) {
                proptest::prop_assert!(layout.primary.end == data.len());
                proptest::prop_assert!(layout.primary.start < data.len());
            }
        }

        #[test]
        fn what_the_encoder_builds_parses_back(
            frames in proptest::collection::vec((0u32..3_000, 1usize..1_200, 0usize..5), 1..20),
        ) {
            let mut enc = RedEncoder::default();
            let mut ts = 0u32;
            for (step, len, redundancy) in frames {
                ts = ts.wrapping_add(step);
                let frame = Bytes::from(vec![7u8; len]);
                let out = enc.encode(ts, 111, &frame, redundancy);
                let layout = parse(&out).expect("parses");
                proptest::prop_assert_eq!(&out[layout.primary.clone()], &frame[..]);
                proptest::prop_assert!(layout.redundant <= redundancy.min(MAX_REDUNDANCY));
            }
        }
    }
}
