//! The canned Opus packet every participant sends, with its tag.
//!
//! The packet is the well-known 20 ms Opus silence frame (`f8 ff fe`, CELT
//! full band) re-framed as an Opus code-3 packet with padding (RFC 6716
//! §3.2.5): `fb` (same configuration, code 3), `41` (one frame, padding
//! follows), the padding length, the two frame bytes, then the padding. A
//! decoder ignores padding, so a mixing server (Janus AudioBridge) decodes
//! plain silence, while a forwarding server passes the padding through
//! untouched: it carries a [`Tag`] (who sent the packet and when), so a
//! receiver can attribute every packet and measure its latency.

use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: [u8; 4] = *b"TCN1";
/// Bytes before the padding: TOC, frame count, padding length, frame.
const HEAD: usize = 5;
/// Magic, sender index, sender sequence, send time.
const TAG_LEN: usize = 4 + 4 + 4 + 8;

/// What a tagged packet says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    /// The sender's participant index in this run.
    pub(crate) sender: u32,
    /// The sender's own packet counter.
    pub(crate) seq: u32,
    /// Send time, microseconds since the Unix epoch (sender and receiver
    /// share the clock: one process).
    pub(crate) sent_us: u64,
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An Opus packet of `size` bytes (at least the head and the tag; ~80 bytes
/// is what a browser sends for speech at 32 kbit/s) carrying `tag`.
pub(crate) fn encode(tag: Tag, size: usize) -> Vec<u8> {
    let size = size.max(HEAD + TAG_LEN);
    let padding = size - HEAD;
    // One padding-length byte holds up to 254; the tool never needs more.
    let padding = padding.min(254);
    let mut out = Vec::with_capacity(HEAD + padding);
    out.extend_from_slice(&[0xfb, 0x41, padding as u8, 0xff, 0xfe]);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&tag.sender.to_be_bytes());
    out.extend_from_slice(&tag.seq.to_be_bytes());
    out.extend_from_slice(&tag.sent_us.to_be_bytes());
    out.resize(HEAD + padding, 0);
    out
}

/// The tag of a packet made by [`encode`], or `None` for anything else (a
/// mixed stream, a server's own packets).
pub(crate) fn decode(packet: &[u8]) -> Option<Tag> {
    let tag = packet.get(HEAD..HEAD + TAG_LEN)?;
    if packet.first() != Some(&0xfb) || tag[..4] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([tag[i], tag[i + 1], tag[i + 2], tag[i + 3]]);
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&tag[12..20]);
    Some(Tag {
        sender: u32_at(4),
        seq: u32_at(8),
        sent_us: u64::from_be_bytes(sent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trips_and_packet_is_padded_opus() {
        let tag = Tag {
            sender: 7,
            seq: 123_456,
            sent_us: 1_700_000_000_000_001,
        };
        let packet = encode(tag, 80);
        assert_eq!(packet.len(), 80);
        // Code 3, one CBR frame, padding flag; the padding length covers
        // everything after the two frame bytes.
        assert_eq!(packet[0] & 0x03, 3);
        assert_eq!(packet[1], 0x41);
        assert_eq!(usize::from(packet[2]), packet.len() - HEAD);
        assert_eq!(decode(&packet), Some(tag));
    }

    #[test]
    fn foreign_packets_have_no_tag() {
        assert_eq!(decode(&[0xf8, 0xff, 0xfe]), None);
        let mut packet = encode(
            Tag {
                sender: 1,
                seq: 1,
                sent_us: 1,
            },
            40,
        );
        packet[6] ^= 1;
        assert_eq!(decode(&packet), None);
    }

    #[test]
    fn short_sizes_still_hold_the_tag() {
        let tag = Tag {
            sender: 1,
            seq: 2,
            sent_us: 3,
        };
        assert_eq!(decode(&encode(tag, 0)), Some(tag));
    }
}
