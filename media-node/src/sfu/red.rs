//! RED (RFC 2198) payloads: the SFU forwards them as they come to
//! subscribers that negotiated `audio/red`, with the blocks' payload type
//! renumbered where the subscriber's Opus payload type differs, and strips
//! them to the primary block (the last one) for those that did not.
//! IO-free; malformed payloads are refused, never read past their end.
//!
//! A RED payload is a chain of block headers, then the blocks in the same
//! order. Every header but the last is 4 bytes: `F` (1: more headers
//! follow), the block's payload type (7 bits), its timestamp offset from
//! the packet's (14 bits) and its length (10 bits). The last header is one
//! byte, `F` = 0 and the payload type; its block, the primary, runs to the
//! end of the payload.

use std::ops::Range;

/// RED's MIME type (RFC 2198, as browsers name it).
pub(crate) const MIME_TYPE_RED: &str = "audio/red";

/// Where a RED payload's primary block is, and the offsets of every block
/// header's payload-type byte.
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

/// The primary block of a RED payload, if it is Opus (`opus`, the
/// publisher's Opus payload type): what a subscriber without RED gets.
pub(crate) fn strip(payload: &bytes::Bytes, opus: Option<u8>) -> Option<bytes::Bytes> {
    let layout = parse(payload)?;
    (Some(layout.primary_pt) == opus).then(|| payload.slice(layout.primary))
}

/// The primary block of a RED payload, and its payload type.
#[cfg(test)]
pub(crate) fn primary(payload: &[u8]) -> Option<(u8, &[u8])> {
    let layout = parse(payload)?;
    Some((layout.primary_pt, &payload[layout.primary]))
}

/// Renumbers the blocks whose payload type is `from` to `to` in a RED
/// payload, in place; `None` (and the payload unchanged) when malformed.
pub(crate) fn renumber(payload: &mut [u8], from: u8, to: u8) -> Option<()> {
    parse(payload)?;
    let mut at = 0;
    loop {
        let byte = payload[at];
        if byte & 0x7f == from {
            payload[at] = (byte & 0x80) | (to & 0x7f);
        }
        if byte & 0x80 == 0 {
            return Some(());
        }
        at += 4;
    }
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
        let mut refused = long.clone();
        assert_eq!(renumber(&mut refused, 111, 96), None);
        assert_eq!(refused, long);
    }

    #[test]
    fn renumbering_touches_only_the_payload_types() {
        let mut payload = red(&[(111, 960, b"older"), (13, 480, b"cn"), (111, 0, b"new")]);
        let before = payload.clone();
        renumber(&mut payload, 111, 109).unwrap();
        assert_eq!(payload[0], 0x80 | 109);
        assert_eq!(payload[4], 0x80 | 13);
        assert_eq!(payload[8], 109);
        assert_eq!(payload[1..4], before[1..4]);
        assert_eq!(payload[9..], before[9..]);
        assert_eq!(primary(&payload), Some((109, &b"new"[..])));
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
            let mut copy = data.clone();
            let _ = renumber(&mut copy, 111, 96);
        }
    }
}
