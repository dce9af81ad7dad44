//! The peer-phase messages a relay must rewrite, because they carry port numbers that would be
//! wrong on the far side of the relay (protocol: "The peer phase").
//!
//! - `g:<from>:<from_port>:<target_port>`: the target port is the port the greeting was aimed at,
//!   which its receiver takes as its own public port. Through the relay it was aimed at a relay
//!   port, so it becomes the receiver's own port (the one in its `s:` message): the receiver
//!   then keeps its socket instead of re-binding to a port that means nothing to it.
//! - `c:<from>:<port>` and `y:<from>:<port>`: the port the sender wants to be reached at, which
//!   through the relay is the sender's relay port.
//!
//! Everything else (the host's `s:<n>` countdown, the game's own traffic) passes unchanged.

/// Who a `g:`, `c:` or `y:` message says it is from: its name field, and the port after it (the
/// sender's own port, as in its start message), if `payload` is such a message.
pub(crate) fn peer_sender(payload: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (letter, rest) = split_command(payload)?;
    if !matches!(letter, b'g' | b'c' | b'y') {
        return None;
    }
    let mut fields = rest.split(|&b| b == b':');
    let name = fields.next().filter(|name| !name.is_empty())?;
    let port = fields
        .next()
        .filter(|field| is_port(field))
        .and_then(|field| std::str::from_utf8(field).ok()?.parse().ok());
    Some((name, port))
}

/// Appends `payload` to `buf`, rewritten for its receiver: `receiver_port` is the receiver's own
/// port, `sender_relay_port` the relay port the datagram will leave from.
pub(crate) fn rewrite(
    payload: &[u8],
    receiver_port: u16,
    sender_relay_port: u16,
    buf: &mut Vec<u8>,
) {
    match shape(payload) {
        Some(Shape::Greeting { keep }) => write_with_port(buf, keep, receiver_port),
        Some(Shape::Confirmation { keep }) => write_with_port(buf, keep, sender_relay_port),
        None => buf.extend_from_slice(payload),
    }
}

/// A message whose last field is a port to replace; `keep` is everything before that field,
/// its `:` included.
enum Shape<'a> {
    Greeting { keep: &'a [u8] },
    Confirmation { keep: &'a [u8] },
}

fn shape(payload: &[u8]) -> Option<Shape<'_>> {
    let (letter, rest) = split_command(payload)?;
    let mut fields = rest.split(|&b| b == b':');
    let _name = fields.next().filter(|name| !name.is_empty())?;
    let first = fields.next()?;
    let second = fields.next();
    if fields.next().is_some() {
        return None;
    }
    let keep = &payload[..=payload.iter().rposition(|&b| b == b':')?];
    match (letter, second) {
        (b'g', Some(target)) if is_port(first) && is_port(target) => Some(Shape::Greeting { keep }),
        (b'c' | b'y', None) if is_port(first) => Some(Shape::Confirmation { keep }),
        _ => None,
    }
}

/// `X:` and the rest, for a one-letter command `X`.
fn split_command(payload: &[u8]) -> Option<(u8, &[u8])> {
    match payload {
        [letter, b':', rest @ ..] => Some((*letter, rest)),
        _ => None,
    }
}

fn is_port(field: &[u8]) -> bool {
    (1..=5).contains(&field.len())
        && field.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(field).is_ok_and(|s| s.parse::<u16>().is_ok())
}

fn write_with_port(buf: &mut Vec<u8>, keep: &[u8], port: u16) {
    use std::io::Write;
    buf.extend_from_slice(keep);
    // Writing a number into a Vec cannot fail.
    let _ = write!(buf, "{port}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(payload: &[u8]) -> String {
        let mut buf = Vec::new();
        rewrite(payload, 40001, 50007, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn a_greeting_names_the_receivers_own_port() {
        assert_eq!(rewritten(b"g:alice:40000:50003"), "g:alice:40000:40001");
    }

    #[test]
    fn confirmations_name_the_senders_relay_port() {
        assert_eq!(rewritten(b"c:alice:40000"), "c:alice:50007");
        assert_eq!(rewritten(b"y:bob:1234"), "y:bob:50007");
    }

    #[test]
    fn everything_else_passes_unchanged() {
        for payload in [
            &b"s:3"[..],
            b"hello-from-g1p1",
            b"\x00\x01:binary",
            b"g:alice:40000",
            b"g:alice:40000:5x",
            b"c:alice:70000",
            b"c::40000",
            b"c:alice:40000:1",
            b"g:alice:1:2:3",
            b"x:alice:1",
            b"",
        ] {
            assert_eq!(rewritten(payload).as_bytes(), payload, "{payload:?}");
        }
    }

    #[test]
    fn senders_come_from_greetings_and_confirmations_only() {
        assert_eq!(peer_sender(b"g:alice:1:2"), Some((&b"alice"[..], Some(1))));
        assert_eq!(
            peer_sender(b"c:bob:40000"),
            Some((&b"bob"[..], Some(40000)))
        );
        assert_eq!(peer_sender(b"y:carol:7"), Some((&b"carol"[..], Some(7))));
        assert_eq!(peer_sender(b"c:bob:x"), Some((&b"bob"[..], None)));
        assert_eq!(peer_sender(b"c:bob"), Some((&b"bob"[..], None)));
        assert_eq!(peer_sender(b"s:3"), None);
        assert_eq!(peer_sender(b"g::1:2"), None);
        assert_eq!(peer_sender(b"game traffic"), None);
    }
}
