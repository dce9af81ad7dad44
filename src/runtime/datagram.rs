//! What the receiver hands a worker: a request datagram stored inline, with its source.

use std::net::{IpAddr, SocketAddr};

use crate::wire::MAX_REQUEST_LEN;

/// A datagram that parsed as a request, so it fits in [`MAX_REQUEST_LEN`] bytes: stored inline,
/// forwarding it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub from: SocketAddr,
    /// The address it was sent to, when known: a relayed start lists it.
    pub local: Option<IpAddr>,
    len: u8,
    bytes: [u8; MAX_REQUEST_LEN],
}

impl Datagram {
    /// `None` when `data` is longer than any request.
    pub fn new(from: SocketAddr, local: Option<IpAddr>, data: &[u8]) -> Option<Self> {
        let mut bytes = [0; MAX_REQUEST_LEN];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(Self {
            from,
            local,
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
