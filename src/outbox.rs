//! The datagrams a step of the server wants sent: filled by the session core (and by the
//! receiver for malformed requests), drained by the runtime's batched send.
//!
//! All payloads live in one reused byte buffer, so producing a reply allocates nothing once the
//! buffers have grown to their working size.

use std::net::SocketAddr;

use crate::wire::ErrorCode;

/// Datagrams to send, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    transmits: Vec<Transmit>,
}

/// One datagram of an [`Outbox`]: its destination and where its payload lies in the buffer.
#[derive(Clone, Copy, Debug)]
struct Transmit {
    to: SocketAddr,
    /// The relay port it leaves from; 0 for the server's own port.
    via: u16,
    start: u32,
    end: u32,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a datagram to `to` whose payload `write` appends to the buffer it is given.
    pub fn push_with(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        self.push_via_with(0, to, write);
    }

    /// Queues a datagram to `to` that leaves from relay port `via`.
    pub fn push_via_with(&mut self, via: u16, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.queue(via, to, start);
    }

    /// Like [`push_with`](Self::push_with), but queues nothing when `write` appends nothing
    /// (a writer that decides there is nothing to send).
    pub fn push_unless_empty(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        if self.bytes.len() > start {
            self.queue(0, to, start);
        }
    }

    /// Queues the datagram whose payload is the buffer from `start` on.
    fn queue(&mut self, via: u16, to: SocketAddr, start: usize) {
        self.transmits.push(Transmit {
            to,
            via,
            start: start as u32,
            end: self.bytes.len() as u32,
        });
    }

    /// Queues `payload` to `to`.
    pub fn push(&mut self, to: SocketAddr, payload: &[u8]) {
        self.push_with(to, |buf| buf.extend_from_slice(payload));
    }

    /// Queues an error datagram to `to`.
    pub fn push_error(&mut self, to: SocketAddr, code: ErrorCode) {
        self.push(to, code.as_str().as_bytes());
    }

    /// The queued datagrams, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (SocketAddr, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(|t| (t.to, &self.bytes[t.start as usize..t.end as usize]))
    }

    /// The queued datagrams with the relay port each leaves from (0: the server's own port).
    pub fn iter_via(&self) -> impl ExactSizeIterator<Item = (u16, SocketAddr, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(|t| (t.via, t.to, &self.bytes[t.start as usize..t.end as usize]))
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.transmits.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
    }

    /// Forgets every queued datagram, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.transmits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_datagrams_in_order_and_reuses_buffers() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut out = Outbox::new();
        out.push(a, b"i:A");
        out.push_error(b, ErrorCode::SessionFull);
        out.push_with(a, |buf| buf.extend_from_slice(b"i:A:B"));
        let got: Vec<_> = out.iter().map(|(to, p)| (to, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (a, b"i:A".to_vec()),
                (b, b"error:session_full".to_vec()),
                (a, b"i:A:B".to_vec())
            ]
        );
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.iter().count(), 0);
    }
}
