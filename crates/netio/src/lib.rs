//! Batched UDP I/O for rabid-punch and its load tools: `recvmmsg`/`sendmmsg` on Linux, so one
//! system call moves a whole batch of datagrams; a plain loop elsewhere (the server's calls
//! only: [`RecvBatch::recv`], [`send_all`], [`want_local_addresses`]).
//!
//! A system call per datagram costs more than the protocol work on it, so batching is the main
//! lever on a small box (see the README's Performance section). The server, `rabid-flood` and
//! `rabid-echo` all read and write through this one copy of the FFI. Nothing here allocates per
//! datagram: the buffers are the caller's [`RecvBatch`], kept from call to call, and the system
//! call's headers live on the stack.
//!
//! What this crate does not do: parse, route, count or decide what to send. Sockets are borrowed
//! as raw descriptors (`&impl AsRawFd`: a `socket2::Socket`, a `std::net::UdpSocket`, or a
//! `RawFd`), so the caller keeps its own socket type.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// One received datagram.
pub struct Received<'a> {
    pub from: SocketAddr,
    /// The address it was sent to, when [`RecvBatch::with_local_addresses`] asked for it.
    pub local: Option<IpAddr>,
    /// Its bytes, at most the batch's `N` of them.
    pub data: &'a [u8],
    /// It was longer than `N` bytes.
    pub truncated: bool,
}

/// Buffers for receiving up to `B` datagrams of up to `N` bytes each in one call, reused from
/// call to call.
pub struct RecvBatch<const N: usize, const B: usize> {
    bufs: Box<[[u8; N]; B]>,
    lens: [usize; B],
    truncated: [bool; B],
    addrs: Vec<Option<SocketAddr>>,
    /// Control-message buffers, when the local address of each datagram is wanted.
    control: Option<Box<[[u8; CONTROL_BUF]; B]>>,
    locals: [Option<IpAddr>; B],
    count: usize,
    /// Datagrams taken per call, at most `B`.
    limit: usize,
}

/// Room for one `in6_pktinfo` or `in_pktinfo` control message, with its header.
const CONTROL_BUF: usize = 64;

impl<const N: usize, const B: usize> Default for RecvBatch<N, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const B: usize> RecvBatch<N, B> {
    pub fn new() -> Self {
        Self {
            bufs: vec![[0; N]; B]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("B buffers")),
            lens: [0; B],
            truncated: [false; B],
            addrs: vec![None; B],
            control: None,
            locals: [None; B],
            count: 0,
            limit: B,
        }
    }

    /// Also reports the address each datagram was sent to ([`Received::local`]). The socket
    /// must have been given [`want_local_addresses`].
    pub fn with_local_addresses(mut self) -> Self {
        self.control = Some(Box::new([[0; CONTROL_BUF]; B]));
        self
    }

    /// Takes at most `limit` datagrams per call (clamped to 1..=`B`) instead of `B`.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, B);
        self
    }

    /// Datagrams of the last receive, skipping any with an unusable source (and so the one of
    /// [`try_recv_one`](Self::try_recv_one), which reads no source: use [`get`](Self::get)).
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        (0..self.count).filter_map(|i| {
            Some(Received {
                from: self.addrs[i]?,
                local: self.locals[i],
                data: &self.bufs[i][..self.lens[i]],
                truncated: self.truncated[i],
            })
        })
    }

    /// Datagram `i` of the last receive (`i` below the count it returned), and whether it was
    /// longer than `N` bytes.
    pub fn get(&self, i: usize) -> (&[u8], bool) {
        (&self.bufs[i][..self.lens[i]], self.truncated[i])
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and takes what else is
    /// already queued, up to the batch's limit. Returns how many arrived: 0 when the wait timed
    /// out.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_WAITFORONE)
    }

    /// Takes what is already queued, up to the batch's limit, without waiting. Returns how many
    /// arrived: 0 when none was waiting.
    #[cfg(target_os = "linux")]
    pub fn try_recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_DONTWAIT)
    }

    /// Takes at most one waiting datagram, without waiting, with a plain `recv`: cheaper in the
    /// kernel than `recvmmsg` (no message headers to copy, no second attempt) where a socket
    /// rarely holds more than one datagram. Reads no source address (meant for connected
    /// sockets): the datagram is [`get(0)`](Self::get). Returns 0 or 1.
    #[cfg(target_os = "linux")]
    pub fn try_recv_one(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let buf = &mut self.bufs[0];
        // SAFETY: the buffer is valid for N bytes during the call. MSG_TRUNC makes the kernel
        // return the datagram's real length, so a truncated one is noticed.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                N,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        self.count = 0;
        if n < 0 {
            return ignore_timeout(io::Error::last_os_error());
        }
        let n = n as usize;
        self.lens[0] = n.min(N);
        self.truncated[0] = n > N;
        self.addrs[0] = None;
        self.locals[0] = None;
        self.count = 1;
        Ok(1)
    }

    #[cfg(target_os = "linux")]
    fn recv_flags(&mut self, socket: &impl AsRawFd, flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut storage: [libc::sockaddr_storage; B] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; B] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; B] = unsafe { std::mem::zeroed() };
        for i in 0..B {
            iov[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iov[i].iov_len = N;
            msgs[i].msg_hdr.msg_name = (&mut storage[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if let Some(control) = self.control.as_mut() {
                msgs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = CONTROL_BUF as _;
            }
        }
        // SAFETY: every pointer in `msgs` points into buffers that outlive the call, with their
        // true lengths.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                self.limit as _,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return ignore_timeout(io::Error::last_os_error());
        }
        self.count = n as usize;
        for i in 0..self.count {
            let hdr = &msgs[i].msg_hdr;
            self.lens[i] = (msgs[i].msg_len as usize).min(N);
            self.truncated[i] = hdr.msg_flags & libc::MSG_TRUNC != 0;
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `storage[i]`.
            let addr = unsafe { SockAddr::new(storage[i], hdr.msg_namelen) };
            self.addrs[i] = addr.as_socket();
            self.locals[i] = if self.control.is_some() {
                // SAFETY: the kernel filled `msg_control` up to `msg_controllen`.
                unsafe { local_address(hdr) }
            } else {
                None
            };
        }
        Ok(self.count)
    }

    /// Portable fallback: one datagram per call, without local addresses.
    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        // SAFETY: the caller's socket stays open for the duration of the call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        let socket = socket2::SockRef::from(&fd);
        let mut buf = vec![MaybeUninit::<u8>::uninit(); N + 1];
        self.count = 0;
        match socket.recv_from(&mut buf) {
            Ok((len, addr)) => {
                for (dst, src) in self.bufs[0].iter_mut().zip(&buf[..len.min(N)]) {
                    // SAFETY: the first `len` bytes were written by `recv_from`.
                    *dst = unsafe { src.assume_init() };
                }
                self.lens[0] = len.min(N);
                self.truncated[0] = len > N;
                self.addrs[0] = addr.as_socket();
                self.count = 1;
                Ok(1)
            }
            Err(e) => ignore_timeout(e),
        }
    }
}

/// Asks the kernel to tell, with each datagram, the address it was sent to (`IP_PKTINFO`;
/// on an IPv6 socket also `IPV6_RECVPKTINFO`, for dual-stack sockets get both kinds).
#[cfg(target_os = "linux")]
pub fn want_local_addresses(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    let set = |level, name| {
        // SAFETY: `on` is a c_int that outlives the call, with its true size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as _,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the caller's socket stays open for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let v6 = socket2::SockRef::from(&fd).local_addr()?.is_ipv6();
    if v6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
    }
    // On an IPv6 socket this covers its IPv4 peers; failing there is not fatal.
    match set(libc::IPPROTO_IP, libc::IP_PKTINFO) {
        Err(e) if !v6 => Err(e),
        _ => Ok(()),
    }
}

/// No local addresses off Linux: a relayed start needs `--relay-public-ip` there.
#[cfg(not(target_os = "linux"))]
pub fn want_local_addresses(_socket: &impl AsRawFd) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "local addresses of datagrams need Linux",
    ))
}

/// The destination address in the `IP_PKTINFO` or `IPV6_PKTINFO` control message of `hdr`.
///
/// # Safety
/// `hdr` must be a header the kernel filled, whose control buffer is still alive.
#[cfg(target_os = "linux")]
unsafe fn local_address(hdr: &libc::msghdr) -> Option<IpAddr> {
    let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
    while !cmsg.is_null() {
        let c = &*cmsg;
        let data = libc::CMSG_DATA(cmsg);
        if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
            let info = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
            let ip = std::net::Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
            return Some(IpAddr::V4(ip));
        }
        if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
            let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
            let ip = std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr);
            return Some(IpAddr::V6(ip).to_canonical());
        }
        cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
    }
    None
}

fn ignore_timeout(e: io::Error) -> io::Result<usize> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

/// Sends every datagram of `items`, `B` per system call. Returns how many were sent, their
/// bytes, and how many failed: a datagram the kernel refuses (an unreachable destination, a full
/// buffer) is skipped, never retried.
#[cfg(target_os = "linux")]
pub fn send_all<'a, const B: usize>(
    socket: &impl AsRawFd,
    items: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> (usize, usize, usize) {
    let mut sent = 0;
    let mut bytes = 0;
    let mut failed = 0;
    let mut addrs: [MaybeUninit<SockAddr>; B] = [const { MaybeUninit::uninit() }; B];
    let mut pending = items.peekable();
    while let Some((to, payload)) = pending.next() {
        if pending.peek().is_none() {
            // One datagram left (a relay port's usual share of a turn): a plain `sendto`, which
            // the kernel takes without a message header to copy in and a count to copy out, and
            // no headers to set up here either.
            let addr = SockAddr::from(to);
            // SAFETY: the payload and the address are alive for the call, with their lengths.
            let rc = loop {
                let rc = unsafe {
                    libc::sendto(
                        socket.as_raw_fd(),
                        payload.as_ptr().cast(),
                        payload.len(),
                        0,
                        addr.as_ptr().cast(),
                        addr.len(),
                    )
                };
                if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break rc;
                }
            };
            if rc < 0 {
                failed += 1;
            } else {
                sent += 1;
                bytes += payload.len();
            }
            break;
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iov: [libc::iovec; B] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; B] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        let mut lens = [0usize; B];
        let batch = std::iter::once((to, payload)).chain(pending.by_ref().take(B - 1));
        for (to, payload) in batch {
            lens[n] = payload.len();
            let addr = addrs[n].write(SockAddr::from(to));
            iov[n].iov_base = payload.as_ptr() as *mut libc::c_void;
            iov[n].iov_len = payload.len();
            msgs[n].msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            msgs[n].msg_hdr.msg_namelen = addr.len();
            n += 1;
        }
        for i in 0..n {
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut first = 0;
        while first < n {
            // SAFETY: `msgs[first..n]` point at addresses and payloads alive for this call.
            let done = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    msgs[first..].as_mut_ptr(),
                    (n - first) as _,
                    0,
                )
            };
            if done <= 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `first` was refused: skip it.
                first += 1;
                failed += 1;
            } else {
                let done = done as usize;
                bytes += lens[first..first + done].iter().sum::<usize>();
                first += done;
                sent += done;
            }
        }
    }
    (sent, bytes, failed)
}

/// Portable fallback: one datagram per call.
#[cfg(not(target_os = "linux"))]
pub fn send_all<'a, const B: usize>(
    socket: &impl AsRawFd,
    items: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> (usize, usize, usize) {
    // SAFETY: the caller's socket stays open for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let socket = socket2::SockRef::from(&fd);
    let (mut sent, mut bytes, mut failed) = (0, 0, 0);
    for (to, payload) in items {
        if socket.send_to(payload, &SockAddr::from(to)).is_ok() {
            sent += 1;
            bytes += payload.len();
        } else {
            failed += 1;
        }
    }
    (sent, bytes, failed)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn bound() -> UdpSocket {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    }

    /// Receives until `count` datagrams arrived (each call waits up to the read timeout).
    fn recv_all<const N: usize, const B: usize>(
        batch: &mut RecvBatch<N, B>,
        sock: &UdpSocket,
        count: usize,
    ) -> Vec<(SocketAddr, Vec<u8>, bool)> {
        let mut got = Vec::new();
        while got.len() < count {
            let n = batch.recv(sock).unwrap();
            assert!(n > 0, "nothing within the read timeout");
            assert!(n <= B);
            got.extend(batch.iter().map(|d| (d.from, d.data.to_vec(), d.truncated)));
        }
        got
    }

    #[test]
    fn a_batch_gives_each_datagram_with_its_source_and_flags_the_long_ones() {
        let (server, client) = (bound(), bound());
        let to = server.local_addr().unwrap();
        client.send_to(b"one", to).unwrap();
        client.send_to(&[7; 20], to).unwrap();
        client.send_to(b"three", to).unwrap();
        let mut batch = RecvBatch::<16, 2>::new();
        let got = recv_all(&mut batch, &server, 3);
        let from = client.local_addr().unwrap();
        assert_eq!(
            got,
            vec![
                (from, b"one".to_vec(), false),
                (from, vec![7; 16], true),
                (from, b"three".to_vec(), false),
            ]
        );
        assert_eq!(batch.try_recv(&server).unwrap(), 0, "nothing left");
    }

    #[test]
    fn a_limited_batch_takes_no_more_than_its_limit() {
        let (server, client) = (bound(), bound());
        let to = server.local_addr().unwrap();
        for i in 0..5u8 {
            client.send_to(&[i], to).unwrap();
        }
        let mut batch = RecvBatch::<8, 4>::new().with_limit(2);
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = batch.recv(&server).unwrap();
            assert!((1..=2).contains(&n));
            got.extend((0..n).map(|i| batch.get(i).0[0]));
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn local_addresses_are_reported_when_asked_for() {
        let (server, client) = (bound(), bound());
        want_local_addresses(&server).unwrap();
        client.send_to(b"hi", server.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::<8, 4>::new().with_local_addresses();
        assert_eq!(batch.recv(&server).unwrap(), 1);
        let d = batch.iter().next().unwrap();
        assert_eq!(d.local, Some(IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn one_plain_recv_takes_one_datagram_and_notices_truncation() {
        let (server, client) = (bound(), bound());
        client.connect(server.local_addr().unwrap()).unwrap();
        server.connect(client.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::<8, 4>::new();
        assert_eq!(batch.try_recv_one(&client).unwrap(), 0);
        server.send(b"0123456789").unwrap();
        let mut n = 0;
        for _ in 0..5000 {
            n = batch.try_recv_one(&client).unwrap();
            if n == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(n, 1);
        assert_eq!(batch.get(0), (&b"01234567"[..], true));
        assert_eq!(batch.iter().count(), 0, "no source address is read");
    }

    #[test]
    fn send_all_goes_past_one_call_and_skips_what_the_kernel_refuses() {
        let (server, client) = (bound(), bound());
        let to = server.local_addr().unwrap();
        let refused: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let items = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (if i == 2 { refused } else { to }, p.as_slice()));
        assert_eq!(send_all::<2>(&client, items), (4, 1 + 2 + 4 + 5, 1));
        let mut batch = RecvBatch::<8, 8>::new();
        let got: Vec<Vec<u8>> = recv_all(&mut batch, &server, 4)
            .into_iter()
            .map(|(_, d, _)| d)
            .collect();
        assert_eq!(got, vec![vec![0], vec![1, 1], vec![3; 4], vec![4; 5]]);
    }

    #[test]
    fn send_all_sends_a_lone_datagram_too_and_counts_a_refused_one() {
        let (server, client) = (bound(), bound());
        let to = server.local_addr().unwrap();
        assert_eq!(
            send_all::<4>(&client, [(to, &b"alone"[..])].into_iter()),
            (1, 5, 0)
        );
        let refused: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            send_all::<4>(&client, [(refused, &b"x"[..])].into_iter()),
            (0, 0, 1)
        );
        let mut batch = RecvBatch::<8, 8>::new();
        assert_eq!(recv_all(&mut batch, &server, 1)[0].1, b"alone".to_vec());
    }
}
