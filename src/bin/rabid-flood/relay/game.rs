//! The game datagrams of a relay flood: what a player sends its peer, stands in for a game's own
//! traffic. Each carries its sender and sequence number, and filler derived from both, so the
//! receiver can rebuild the exact bytes it must get and notice a datagram damaged, delivered to
//! the wrong player, or mixed up with another.

/// First bytes of every game datagram: not a peer-phase message (`g:`, `c:`, `y:`), so the relay
/// must pass it unchanged, as it does the game's own traffic.
const MAGIC: [u8; 2] = [0xd7, 0x01];
/// Magic, sender id (u32) and sequence number (u64) come before the filler.
const HEADER: usize = 14;

/// Writes the game datagram number `seq` of sender `id`, `bytes` long, into `buf`.
pub(super) fn game_datagram(id: u32, seq: u64, bytes: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    // Filler that differs with sender and number, so a datagram mixed up with another, or
    // damaged anywhere, does not compare equal.
    let mix = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id).rotate_left(32);
    buf.extend((HEADER..bytes).map(|i| (mix >> ((i % 8) * 8)) as u8 ^ i as u8));
}

/// The sender id and sequence number of a game datagram, if it looks like one.
pub(super) fn game_header(data: &[u8]) -> Option<(u32, u64)> {
    if data.len() < HEADER || data[..2] != MAGIC {
        return None;
    }
    let id = u32::from_le_bytes(data[2..6].try_into().ok()?);
    let seq = u64::from_le_bytes(data[6..14].try_into().ok()?);
    Some((id, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_datagrams_carry_sender_and_number_and_differ() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        game_datagram(7, 42, 100, &mut a);
        assert_eq!(a.len(), 100);
        assert_eq!(game_header(&a), Some((7, 42)));
        assert_ne!(a[1], b':', "must not look like a peer-phase message");
        game_datagram(7, 43, 100, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
        game_datagram(8, 42, 100, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
        game_datagram(7, 42, 100, &mut b);
        assert_eq!(a, b);
        assert_eq!(game_header(b"g:p0:1:2"), None);
    }
}
