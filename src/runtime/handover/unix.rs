//! The control socket's plumbing: a Unix `SOCK_SEQPACKET` socket, the peer's credentials, and
//! file descriptors passed with `SCM_RIGHTS`.
//!
//! Sequenced packets rather than a stream: each message is one packet, so the descriptors sent
//! with a message arrive with exactly that message (on a stream, the kernel may join or split
//! writes, and a reader must take care not to read past a message that carries descriptors), and
//! a reader needs no framing of its own.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// The largest packet sent: a state larger than this goes in several.
pub const MAX_PACKET: usize = 60 * 1024;

/// Descriptors sent with one packet at most (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 250;

/// Who is at the other end of a connection, as the kernel says (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: u32,
    pub uid: u32,
}

/// One packet received: its bytes, and the descriptors that came with it.
#[derive(Debug)]
pub struct Packet {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// A connected control socket.
#[derive(Debug)]
pub struct Channel {
    socket: Socket,
}

impl Channel {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> io::Result<Channel> {
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        socket.connect(&SockAddr::unix(path)?)?;
        Ok(Channel { socket })
    }

    /// Reads no more: what the other end sends from now on fails there (`EPIPE`).
    pub fn shutdown_read(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
    }

    /// Every wait for a packet gives up after `timeout`, with `TimedOut`.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.socket.set_read_timeout(Some(timeout))?;
        self.socket.set_write_timeout(Some(timeout))
    }

    /// The process at the other end.
    pub fn peer(&self) -> io::Result<Peer> {
        // SAFETY: `ucred` is plain data; getsockopt writes at most `len` bytes into it.
        let mut cred: libc::ucred = unsafe { zeroed() };
        let mut len = size_of::<libc::ucred>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Peer {
            pid: cred.pid as u32,
            uid: cred.uid,
        })
    }

    /// Sends `bytes` (at most [`MAX_PACKET`]) as one packet, with `fds` (at most [`MAX_FDS`]).
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
        send_with_fds(self.socket.as_raw_fd(), bytes, fds)
    }

    /// Waits for the next packet. The other end closing is `UnexpectedEof`.
    pub fn recv(&self) -> io::Result<Packet> {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = vec![0u64; cmsg_space(MAX_FDS).div_ceil(8)];
        let mut fds = Vec::new();
        // SAFETY: as in `send`; every descriptor the kernel put in the control buffer is ours
        // from here on, and is owned (closed on drop) at once.
        let received = unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = (control.len() * 8) as _;
            let n = libc::recvmsg(self.socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 {
                let e = io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::EAGAIN) => io::Error::new(io::ErrorKind::TimedOut, e),
                    _ => e,
                });
            }
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..len / size_of::<RawFd>() {
                        fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
                return Err(io::Error::other("control socket: packet cut short"));
            }
            n as usize
        };
        if received == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other end closed the control socket",
            ));
        }
        buf.truncate(received);
        Ok(Packet { bytes: buf, fds })
    }
}

/// Sends `bytes` on the connected socket `fd` in one `sendmsg`, with `fds` passed along
/// (`SCM_RIGHTS`: the receiver gets descriptors of the same open sockets or pipes).
pub fn send_with_fds(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if bytes.len() > MAX_PACKET || fds.len() > MAX_FDS {
        return Err(io::Error::other("control socket: packet too large"));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // u64s, so that the control buffer is aligned as `cmsghdr` needs.
    let mut control = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: `msg` points at `iov` and `control`, which outlive the call; the CMSG macros stay
    // inside `control`, which is `CMSG_SPACE` bytes for `fds.len()` descriptors.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = cmsg_space(fds.len()) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
        let sent = libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL);
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent as usize != bytes.len() {
            return Err(io::Error::other("control socket: packet sent in part"));
        }
    }
    Ok(())
}

fn cmsg_space(fds: usize) -> usize {
    // SAFETY: a pure computation on its argument.
    unsafe { libc::CMSG_SPACE((fds * size_of::<RawFd>()) as u32) as usize }
}

/// The control socket a server listens on.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    path: PathBuf,
}

/// What [`Listener::accept_until`] found.
#[derive(Debug)]
pub enum Accepted {
    Channel(Channel),
    /// Its waker went: stop.
    Woken,
    /// Nothing after all (another process took the connection: after a hand-over both hold
    /// the listening socket for a moment).
    Nothing,
}

/// Wakes a thread waiting in [`Listener::accept_until`]: dropping it does (it is the write end
/// of a pipe whose read end, [`Woken`], then reads as closed).
#[derive(Debug)]
pub struct Waker(#[allow(dead_code)] OwnedFd);

/// The read end of a [`Waker`]'s pipe.
#[derive(Debug)]
pub struct Woken(OwnedFd);

impl Waker {
    pub fn pair() -> io::Result<(Waker, Woken)> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors, which are ours from here.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Waker(write), Woken(read)))
    }
}

impl Woken {
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Listener {
    /// Listens at `path`, readable and writable by this user only. A socket left there by a
    /// server that is gone is replaced; a live one, or anything that is not a socket, is not.
    pub fn bind(path: &Path) -> Result<Listener, String> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(format!(
                    "--control-socket {shown}: the path exists and is not a socket; remove it or \
                     choose another path"
                ));
            }
            Ok(_) => match Channel::connect(path) {
                Ok(_) => {
                    return Err(format!(
                        "--control-socket {shown}: a running server answers there; take over \
                         from it with --takeover, or stop it first"
                    ));
                }
                // A socket nobody listens on: left by a server that is gone.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    let _ = std::fs::remove_file(path);
                }
                // Someone else's, say: not ours to remove.
                Err(e) => return Err(format!("--control-socket {shown}: {e}")),
            },
            Err(_) => {}
        }
        let fail = |e: io::Error| format!("cannot listen on --control-socket {shown}: {e}");
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None).map_err(fail)?;
        socket
            .bind(&SockAddr::unix(path).map_err(fail)?)
            .map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        socket.listen(4).map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        Ok(Listener {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// A listener handed over by the server that listened at `path` before.
    pub fn inherit(fd: OwnedFd, path: &Path) -> io::Result<Listener> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        Ok(Listener {
            socket,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Waits for the next connection, or until the descriptor `wake` reads (closed: see
    /// [`Waker`]).
    pub fn accept_until(&self, wake: RawFd) -> io::Result<Accepted> {
        let mut fds = [
            libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds of ours.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(Accepted::Nothing),
                _ => Err(e),
            };
        }
        if fds[1].revents != 0 {
            return Ok(Accepted::Woken);
        }
        match self.socket.accept() {
            Ok((socket, _)) => {
                socket.set_nonblocking(false)?;
                Ok(Accepted::Channel(Channel { socket }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(Accepted::Nothing)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the socket's path (at a plain stop; never after a hand-over, as the successor
    /// listens on the same socket).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The uid that owns the file at `path`.
pub fn owner(path: &Path) -> io::Result<u32> {
    Ok(std::fs::symlink_metadata(path)?.uid())
}

/// This process's effective uid.
pub fn my_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rabid-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("control.sock")
    }

    #[test]
    fn descriptors_travel_with_their_packet_and_still_work() {
        let path = temp_path("fds");
        let listener = Listener::bind(&path).unwrap();
        let client = Channel::connect(&path).unwrap();
        let (_waker, woken) = Waker::pair().unwrap();
        let Accepted::Channel(server) = listener.accept_until(woken.fd()).unwrap() else {
            panic!("a connection");
        };
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send(b"first", &[]).unwrap();
        client
            .send(b"fds", &[a.as_raw_fd(), b.as_raw_fd()])
            .unwrap();
        let first = server.recv().unwrap();
        assert_eq!(
            (first.bytes.as_slice(), first.fds.len()),
            (&b"first"[..], 0)
        );
        let second = server.recv().unwrap();
        assert_eq!(second.bytes, b"fds");
        assert_eq!(second.fds.len(), 2);
        // The descriptor received is the same socket: it has its port, and reads what is sent
        // to it.
        let passed = UdpSocket::from(second.fds.into_iter().next().unwrap());
        assert_eq!(passed.local_addr().unwrap(), a.local_addr().unwrap());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"hello", a.local_addr().unwrap()).unwrap();
        passed
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = passed.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(server.peer().unwrap().uid, my_uid());
        assert_eq!(server.peer().unwrap().pid, std::process::id());
        drop(client);
        let eof = server.recv().unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_live_socket_is_not_replaced_and_a_stale_one_is() {
        let path = temp_path("stale");
        let live = Listener::bind(&path).unwrap();
        let err = Listener::bind(&path).unwrap_err();
        assert!(err.contains("a running server answers there"), "{err}");
        drop(live);
        // The path is still there, but nobody listens: replaced.
        assert!(path.exists());
        let again = Listener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(again);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let err = Listener::bind(&path).unwrap_err();
        assert!(err.contains("is not a socket"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_wait_for_a_packet_times_out() {
        let path = temp_path("timeout");
        let listener = Listener::bind(&path).unwrap();
        let client = Channel::connect(&path).unwrap();
        let (waker, woken) = Waker::pair().unwrap();
        let Accepted::Channel(_server) = listener.accept_until(woken.fd()).unwrap() else {
            panic!("a connection");
        };
        // Its waker gone, a wait for a connection ends at once.
        drop(waker);
        assert!(matches!(
            listener.accept_until(woken.fd()).unwrap(),
            Accepted::Woken
        ));
        client.set_timeout(Duration::from_millis(50)).unwrap();
        assert_eq!(client.recv().unwrap_err().kind(), io::ErrorKind::TimedOut);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
