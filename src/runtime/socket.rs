//! The server's UDP socket: how it is bound, and the options it gets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// How long the receiver waits for a datagram before it looks whether it must stop.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Kernel buffer size asked for each direction; the kernel caps it at `net.core.rmem_max` /
/// `wmem_max`. A large receive buffer absorbs bursts (a whole lobby starting at once).
const KERNEL_BUFFER: usize = 4 << 20;

/// Binds the server socket on `addr`.
///
/// The bind is exclusive: it fails with `AddrInUse` when any socket holds the port, even one
/// that set `SO_REUSEADDR`. Only then is `SO_REUSEADDR` set (as the design card asks; worker
/// clones share this one socket, so they need no bind of their own). Setting it before the bind
/// would let a second rabid-punch on Linux bind the same port and silently take part of the
/// traffic.
///
/// Binding `::` gives a dual-stack socket: IPv4 peers then arrive as `::ffff:a.b.c.d`, which the
/// start message writes as `a.b.c.d`.
pub fn bind(addr: SocketAddr) -> io::Result<Socket> {
    bind_one(addr, false)
}

/// [`bind`], in a `SO_REUSEPORT` group with `reuse_port`.
fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_reuse_address(true)?;
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(KERNEL_BUFFER);
    let _ = socket.set_send_buffer_size(KERNEL_BUFFER);
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(socket)
}

/// Binds `n` sockets on `addr` as one `SO_REUSEPORT` group, for `n` receivers: the kernel
/// spreads datagrams over them by source, every datagram of one client to one socket, so a
/// client's requests keep their order (and a session's requests, whichever receiver reads
/// them, go to the one worker that owns it: the front door routes by session name).
///
/// The group stays exclusive: the port is bound alone first, as [`bind`] does (so it fails
/// when anything holds it, another rabid-punch included, and port 0 picks the port), then
/// released and bound by the group. A socket can only join a group that set `SO_REUSEPORT`
/// under the same user, and a rabid-punch started later fails at its exclusive bind.
pub fn bind_group(addr: SocketAddr, n: usize) -> io::Result<Vec<Socket>> {
    let first = bind(addr)?;
    if n <= 1 {
        return Ok(vec![first]);
    }
    let addr = local_addr(&first)?;
    drop(first);
    (0..n).map(|_| bind_one(addr, true)).collect()
}

/// The address actually bound (the real port when 0 was asked for).
pub fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("socket has no IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_bind_on_a_held_port_fails_even_with_reuse_address() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(&first).unwrap();
        let err = bind(addr).expect_err("second bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_receiver_group_shares_one_port_and_keeps_others_out() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = local_addr(&group[0]).unwrap();
        assert!(group.iter().all(|s| local_addr(s).unwrap() == addr));
        let err = bind_group(addr, 2).expect_err("a second group must fail");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = bind(addr).expect_err("a plain bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
