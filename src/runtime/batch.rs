//! Batched datagram I/O: `recvmmsg`/`sendmmsg` on Linux, so one system call moves up to
//! [`BATCH`] datagrams; a plain loop elsewhere.
//!
//! A system call per datagram costs more than the protocol work on it, so batching is the main
//! lever on a small box (see the README's Performance section).

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use socket2::{SockAddr, Socket};

/// Datagrams per receive call.
pub const BATCH: usize = 32;

/// Bytes kept of each received datagram. Longer ones are flagged as truncated: no valid request
/// is longer than [`crate::wire::MAX_REQUEST_LEN`].
pub const RECV_BUF: usize = 64;

/// One received datagram.
pub struct Received<'a> {
    pub from: SocketAddr,
    /// The address it was sent to, when [`RecvBatch::with_local_addresses`] asked for it.
    pub local: Option<IpAddr>,
    /// Its bytes, at most [`RECV_BUF`] of them.
    pub data: &'a [u8],
    /// It was longer than [`RECV_BUF`].
    pub truncated: bool,
}

/// Buffers for receiving a batch of datagrams of up to `N` bytes each, reused from call to call.
pub struct RecvBatch<const N: usize = RECV_BUF> {
    bufs: Box<[[u8; N]; BATCH]>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    addrs: Vec<Option<SocketAddr>>,
    /// Control-message buffers, when the local address of each datagram is wanted.
    control: Option<Box<[[u8; CONTROL_BUF]; BATCH]>>,
    locals: [Option<IpAddr>; BATCH],
    count: usize,
}

/// Room for one `in6_pktinfo` or `in_pktinfo` control message, with its header.
const CONTROL_BUF: usize = 64;

impl<const N: usize> Default for RecvBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RecvBatch<N> {
    pub fn new() -> Self {
        Self {
            bufs: vec![[0; N]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH buffers")),
            lens: [0; BATCH],
            truncated: [false; BATCH],
            addrs: vec![None; BATCH],
            control: None,
            locals: [None; BATCH],
            count: 0,
        }
    }

    /// Also reports the address each datagram was sent to ([`Received::local`]). The socket
    /// must have been given [`want_local_addresses`].
    pub fn with_local_addresses(mut self) -> Self {
        self.control = Some(Box::new([[0; CONTROL_BUF]; BATCH]));
        self
    }

    /// Datagrams of the last [`recv`](Self::recv), skipping any with an unusable source.
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

    /// Waits for at least one datagram (up to the socket's read timeout) and takes what else is
    /// already queued, up to [`BATCH`]. Returns how many arrived: 0 when the wait timed out.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &Socket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut storage: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
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
                BATCH as _,
                libc::MSG_WAITFORONE,
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
    pub fn recv(&mut self, socket: &Socket) -> io::Result<usize> {
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
pub fn want_local_addresses(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
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
    let v6 = socket.local_addr()?.is_ipv6();
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
pub fn want_local_addresses(_socket: &Socket) -> io::Result<()> {
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

/// Sends every datagram of `items`, in batches. Returns how many were sent, their bytes, and
/// how many failed: a datagram the kernel refuses (an unreachable destination, a full buffer)
/// is skipped, never retried.
#[cfg(target_os = "linux")]
pub fn send_all<'a>(
    socket: &Socket,
    items: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> (usize, usize, usize) {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    let mut bytes = 0;
    let mut failed = 0;
    let mut addrs: [MaybeUninit<SockAddr>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    let mut pending = items.peekable();
    while pending.peek().is_some() {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        let mut lens = [0usize; BATCH];
        for (to, payload) in pending.by_ref().take(BATCH) {
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
pub fn send_all<'a>(
    socket: &Socket,
    items: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> (usize, usize, usize) {
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
