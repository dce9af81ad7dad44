//! Batched datagram I/O for the server: its batch size and receive buffer over `rabid-netio`
//! (`recvmmsg`/`sendmmsg` on Linux, so one system call moves up to [`BATCH`] datagrams; a plain
//! loop elsewhere).
//!
//! A system call per datagram costs more than the protocol work on it, so batching is the main
//! lever on a small box (see the README's Performance section).

use std::net::SocketAddr;

use socket2::Socket;

pub use rabid_netio::want_local_addresses;

/// Datagrams per receive and per send call.
pub const BATCH: usize = 32;

/// Bytes kept of each received datagram. Longer ones are flagged as truncated, and are no
/// request: a session request is at most [`crate::wire::MAX_REQUEST_LEN`] bytes, a lobby request
/// a few hundred with its padding (a `b:1:` padded to 400 bytes earns a full 1200-byte page).
pub const RECV_BUF: usize = 512;

/// Buffers for receiving a batch of datagrams of up to `N` bytes each, reused from call to call.
pub type RecvBatch<const N: usize = RECV_BUF> = rabid_netio::RecvBatch<N, BATCH>;

/// Sends every datagram of `items`, [`BATCH`] per system call. Returns how many were sent, their
/// bytes, and how many failed: a datagram the kernel refuses (an unreachable destination, a full
/// buffer) is skipped, never retried.
pub fn send_all<'a>(
    socket: &Socket,
    items: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> (usize, usize, usize) {
    rabid_netio::send_all::<BATCH>(socket, items)
}
