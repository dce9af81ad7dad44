//! Sockets of simulated players: one connected, nonblocking UDP socket each, read with
//! `recvmmsg(MSG_DONTWAIT)` where several replies may wait (one system call returns them all,
//! or EAGAIN) or a plain `recv` where one is the rule (the ping flood), both from `rabid-netio`,
//! and the open-files limit they need.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Replies read per socket per call: a player rarely has more than a few waiting.
pub const BATCH: usize = 8;
/// Longest reply accepted whole; a 12-player start message is under 450 bytes.
const BUF_LEN: usize = 1536;

/// One simulated player's socket, connected to the target: the kernel then drops datagrams
/// from anyone else, and `send`/`recv` need no address.
pub struct Conn {
    sock: UdpSocket,
    /// The address the server sees (same host, no NAT on loopback).
    pub local: SocketAddr,
}

impl Conn {
    pub fn open(source: IpAddr, target: SocketAddr) -> io::Result<Self> {
        let sock = UdpSocket::bind(SocketAddr::new(source, 0))?;
        sock.connect(target)?;
        sock.set_nonblocking(true)?;
        let local = sock.local_addr()?;
        Ok(Self { sock, local })
    }

    /// Points the socket at another peer (the relay mode's switch from the server to the
    /// peer's relay port): from then on the kernel only delivers datagrams from `to`, so a
    /// datagram from any other port cannot be taken for the peer's.
    pub fn reconnect(&self, to: SocketAddr) -> io::Result<()> {
        self.sock.connect(to)
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Send one datagram. An error is returned as is; `ConnectionRefused` means an earlier
    /// datagram hit a closed port (no server listening).
    pub fn send(&self, data: &[u8]) -> io::Result<()> {
        self.sock.send(data).map(|_| ())
    }
}

/// Receive buffers for one thread, reused for every socket it reads (`rabid-netio`'s, sized for
/// replies to one player).
pub struct RecvBatch(rabid_netio::RecvBatch<BUF_LEN, BATCH>);

impl RecvBatch {
    pub fn new() -> Self {
        Self(rabid_netio::RecvBatch::new())
    }

    /// Read whatever is waiting on `fd` (up to [`BATCH`] datagrams) without blocking. Returns
    /// the number read; 0 when nothing was waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.0.try_recv(&fd)
    }

    /// Read at most one datagram waiting on `fd`, without blocking: one plain `recv`, cheaper
    /// in the kernel than `recvmmsg` (no message headers to copy, no second attempt) when, as
    /// in a ping flood, a socket rarely holds more than one reply. Returns 0 or 1; the
    /// datagram is then [`get(0)`](Self::get).
    pub fn recv_one(&mut self, fd: RawFd) -> io::Result<usize> {
        self.0.try_recv_one(&fd)
    }

    /// Datagram `i` of the last [`recv`](Self::recv), and whether it was longer than the buffer.
    pub fn get(&self, i: usize) -> (&[u8], bool) {
        self.0.get(i)
    }
}

/// Raise the soft open-files limit to the hard one and return it: each player needs a socket,
/// and these machines allow 20 000 files per process but start with a lower soft limit.
pub fn raise_nofile() -> io::Result<libc::rlim_t> {
    // SAFETY: rlimit is a plain C struct; getrlimit/setrlimit only read and write it.
    unsafe {
        let mut lim: libc::rlimit = MaybeUninit::zeroed().assume_init();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(lim.rlim_cur)
    }
}

/// Fails early, with a clear message, when `sockets` cannot be opened under the files limit.
pub fn ensure_files(sockets: usize) -> Result<(), String> {
    let limit = raise_nofile().map_err(|e| format!("cannot read or raise RLIMIT_NOFILE: {e}"))?;
    // Some room for stdio, the binary, /proc reads and the like.
    let needed = (sockets as libc::rlim_t).saturating_add(64);
    if needed > limit {
        return Err(format!(
            "{sockets} sockets need about {needed} open files but the limit is {limit}: use \
             fewer sessions or players, or raise the hard limit (ulimit -Hn)"
        ));
    }
    Ok(())
}

/// Opens `count` sockets, socket `k` bound to `sources[(first + k) % len]`.
pub fn open_many(
    count: usize,
    first: usize,
    sources: &[IpAddr],
    target: SocketAddr,
) -> io::Result<Vec<Conn>> {
    (0..count)
        .map(|k| {
            let src = sources[(first + k) % sources.len()];
            Conn::open(src, target).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open a socket on {src}: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Waits (bounded) until `fd` has at least one datagram and returns how many were read.
    fn recv_within(batch: &mut RecvBatch, fd: RawFd, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        loop {
            let n = batch.recv(fd).unwrap();
            if n > 0 || Instant::now() > until {
                return n;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn batch_reads_every_waiting_datagram_and_then_nothing() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = Conn::open("127.0.0.1".parse().unwrap(), peer.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(conn.fd()).unwrap(), 0, "nothing waiting yet");
        conn.send(b"hello").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, conn.local);
        peer.send_to(b"one", from).unwrap();
        peer.send_to(b"two", from).unwrap();
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < until {
            let n = recv_within(&mut batch, conn.fd(), Duration::from_secs(5));
            for i in 0..n {
                let (d, truncated) = batch.get(i);
                assert!(!truncated);
                got.push(d.to_vec());
            }
        }
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(batch.recv(conn.fd()).unwrap(), 0);
    }

    #[test]
    fn recv_one_reads_one_datagram_and_notices_truncation() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = Conn::open("127.0.0.1".parse().unwrap(), peer.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv_one(conn.fd()).unwrap(), 0);
        peer.send_to(b"first", conn.local).unwrap();
        peer.send_to(&[7u8; BUF_LEN + 10], conn.local).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 2 && Instant::now() < until {
            if batch.recv_one(conn.fd()).unwrap() == 1 {
                let (d, truncated) = batch.get(0);
                got.push((d.len(), truncated));
            } else {
                std::thread::yield_now();
            }
        }
        assert_eq!(got, vec![(5, false), (BUF_LEN, true)]);
        assert_eq!(batch.recv_one(conn.fd()).unwrap(), 0);
    }

    #[test]
    fn connected_socket_ignores_other_senders() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = Conn::open("127.0.0.1".parse().unwrap(), peer.local_addr().unwrap()).unwrap();
        stranger.send_to(b"junk", conn.local).unwrap();
        peer.send_to(b"real", conn.local).unwrap();
        let mut batch = RecvBatch::new();
        let n = recv_within(&mut batch, conn.fd(), Duration::from_secs(5));
        assert_eq!(n, 1);
        assert_eq!(batch.get(0).0, b"real");
    }

    #[test]
    fn sockets_spread_over_sources() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sources: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        let conns = open_many(3, 1, &sources, peer.local_addr().unwrap()).unwrap();
        let ips: Vec<IpAddr> = conns.iter().map(|c| c.local.ip()).collect();
        assert_eq!(ips, vec![sources[1], sources[0], sources[1]]);
    }

    #[test]
    fn open_files_limit_is_raised_to_the_hard_limit() {
        let soft = raise_nofile().unwrap();
        // SAFETY: as in raise_nofile.
        let hard = unsafe {
            let mut lim: libc::rlimit = MaybeUninit::zeroed().assume_init();
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
            lim.rlim_max
        };
        assert_eq!(soft, hard);
        assert!(ensure_files(usize::MAX / 2).is_err());
    }
}
