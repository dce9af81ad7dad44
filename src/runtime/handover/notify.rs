//! Telling systemd about the service (`sd_notify`), without libsystemd: `READY=1` once serving,
//! and at a hand-over `MAINPID=` of the successor, so that systemd follows the process that
//! serves now rather than count the service as stopped when the old one exits.
//!
//! The message goes to the datagram socket named by `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`); nothing happens without it. `BARRIER=1` (as
//! `sd_notify_barrier`) passes the write end of a pipe and waits until systemd closed it: then
//! every message before it has been read, and the old process may exit.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use super::unix::send_with_fds;

/// The notification socket systemd gave, if any.
fn socket() -> Option<io::Result<UnixDatagram>> {
    let name = std::env::var_os("NOTIFY_SOCKET")?.into_vec();
    let addr = match name.split_first() {
        Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name),
        Some(_) => SocketAddr::from_pathname(std::path::PathBuf::from(OsString::from_vec(name))),
        None => return None,
    };
    Some(addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.connect_addr(&addr)?;
        Ok(socket)
    }))
}

/// Sends `state` (`READY=1`, `MAINPID=123`, ...) and waits up to `wait` until systemd read it.
/// Without `$NOTIFY_SOCKET`: nothing, `Ok(false)`.
pub fn notify(state: &str, wait: Duration) -> io::Result<bool> {
    let Some(socket) = socket() else {
        return Ok(false);
    };
    let socket = socket?;
    socket.send(state.as_bytes())?;
    let (read, write) = pipe()?;
    send_with_fds(socket.as_raw_fd(), b"BARRIER=1", &[write.as_raw_fd()])?;
    drop(write);
    // Readable (end of file) once systemd closed its copy of the write end.
    let mut poll = libc::pollfd {
        fd: read.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, ours.
    let ready = unsafe { libc::poll(&mut poll, 1, wait.as_millis() as libc::c_int) };
    match ready {
        n if n > 0 => Ok(true),
        0 => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "systemd did not read the notification in time",
        )),
        _ => Err(io::Error::last_os_error()),
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors, which are ours from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
