//! Routing a datagram from an address not seen yet: the local ICE ufrag a
//! STUN request names (each SFU connection has its own). IO-free; any
//! datagram parses or is refused without reading past its end.

/// The local ufrag a STUN request is addressed to: the part of its
/// USERNAME before the colon.
pub(crate) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let size = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + size)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + size.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username_routes_by_local_ufrag() {
        let mut msg = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        msg.extend_from_slice(&[7; 12]);
        let username = b"abcd:wxyz1";
        let mut attrs = vec![0x00, 0x06, 0, username.len() as u8];
        attrs.extend_from_slice(username);
        attrs.extend_from_slice(&[0, 0]);
        msg[3] = attrs.len() as u8;
        msg.extend_from_slice(&attrs);
        assert_eq!(stun_local_ufrag(&msg), Some("abcd"));
        assert_eq!(stun_local_ufrag(&msg[..21]), None);
        assert_eq!(
            stun_local_ufrag(b"\x80\x00rtp packet, not stun at all"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_parses_or_is_refused_without_panic(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            stun in proptest::bool::ANY,
        ) {
            let mut data = data;
            if stun && data.len() >= 8 {
                data[0] &= 0x3f;
                data[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            }
            let _ = stun_local_ufrag(&data);
        }
    }
}
