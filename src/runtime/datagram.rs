//! What the receiver hands a worker: a request datagram stored inline, with its source.

use std::net::SocketAddr;

use crate::wire::MAX_REQUEST_LEN;

/// A datagram that parsed as a request, so it fits in [`MAX_REQUEST_LEN`] bytes: stored inline,
/// forwarding it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub from: SocketAddr,
    len: u8,
    bytes: [u8; MAX_REQUEST_LEN],
}

impl Datagram {
    /// `None` when `data` is longer than any request.
    pub fn new(from: SocketAddr, data: &[u8]) -> Option<Self> {
        let mut bytes = [0; MAX_REQUEST_LEN];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(Self {
            from,
            len: data.len() as u8,
            bytes,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Datagrams for one worker, sent as one channel message.
pub type Batch = Vec<Datagram>;
