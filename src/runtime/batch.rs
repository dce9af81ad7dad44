//! Batched datagram I/O: `recvmmsg`/`sendmmsg` on Linux, so one system call moves up to
//! [`BATCH`] datagrams; a plain loop elsewhere.
//!
//! A system call per datagram costs more than the protocol work on it, so batching is the main
//! lever on a small box (see the README's Performance section).

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use socket2::{SockAddr, Socket};

/// Datagrams per receive call.
pub const BATCH: usize = 32;

/// Bytes kept of each received datagram. Longer ones are flagged as truncated: no valid request
/// is longer than [`crate::wire::MAX_REQUEST_LEN`].
pub const RECV_BUF: usize = 64;

/// One received datagram.
pub struct Received<'a> {
    pub from: SocketAddr,
    /// Its bytes, at most [`RECV_BUF`] of them.
    pub data: &'a [u8],
    /// It was longer than [`RECV_BUF`].
    pub truncated: bool,
}

/// Buffers for receiving a batch of datagrams, reused from call to call.
pub struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF]; BATCH]>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    addrs: Vec<Option<SocketAddr>>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            bufs: Box::new([[0; RECV_BUF]; BATCH]),
            lens: [0; BATCH],
            truncated: [false; BATCH],
            addrs: vec![None; BATCH],
            count: 0,
        }
    }

    /// Datagrams of the last [`recv`](Self::recv), skipping any with an unusable source.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        (0..self.count).filter_map(|i| {
            Some(Received {
                from: self.addrs[i]?,
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
            iov[i].iov_len = RECV_BUF;
            msgs[i].msg_hdr.msg_name = (&mut storage[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
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
            self.lens[i] = (msgs[i].msg_len as usize).min(RECV_BUF);
            self.truncated[i] = hdr.msg_flags & libc::MSG_TRUNC != 0;
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `storage[i]`.
            let addr = unsafe { SockAddr::new(storage[i], hdr.msg_namelen) };
            self.addrs[i] = addr.as_socket();
        }
        Ok(self.count)
    }

    /// Portable fallback: one datagram per call.
    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &Socket) -> io::Result<usize> {
        let mut buf = [MaybeUninit::<u8>::uninit(); RECV_BUF + 1];
        self.count = 0;
        match socket.recv_from(&mut buf) {
            Ok((len, addr)) => {
                for (dst, src) in self.bufs[0].iter_mut().zip(&buf[..len.min(RECV_BUF)]) {
                    // SAFETY: the first `len` bytes were written by `recv_from`.
                    *dst = unsafe { src.assume_init() };
                }
                self.lens[0] = len.min(RECV_BUF);
                self.truncated[0] = len > RECV_BUF;
                self.addrs[0] = addr.as_socket();
                self.count = 1;
                Ok(1)
            }
            Err(e) => ignore_timeout(e),
        }
    }
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
