//! A minimal `epoll` wrapper: a worker waits on its many relay sockets and its doorbell at once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance watching sockets for readability, each under a token.
pub struct Poller {
    fd: OwnedFd,
    /// Where the kernel writes what is ready, kept from call to call.
    events: Box<[libc::epoll_event; EVENTS]>,
}

/// Events taken per wait; more stay ready for the next.
pub const EVENTS: usize = 256;

impl Poller {
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: Box::new([libc::epoll_event { events: 0, u64: 0 }; EVENTS]),
        })
    }

    /// Watches `fd` for readability (level-triggered: reported while it is readable), as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_with(fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` for becoming readable (edge-triggered: reported once each time data
    /// arrives, so the caller reads until it is empty), as `token`. A wait then costs one look
    /// at each socket that received something, where level-triggered would look at every socket
    /// reported last time once more.
    pub fn add_edge(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_with(fd, token, (libc::EPOLLIN | libc::EPOLLET) as u32)
    }

    fn add_with(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a watched descriptor is ready, or `timeout` passed (`None`: no limit; the
    /// wait is rounded up to whole milliseconds, so it never ends before the timeout); `ready`
    /// gets the tokens reported (empty on timeout), at most [`EVENTS`] per call.
    pub fn wait(&mut self, ready: &mut Vec<u64>, timeout: Option<Duration>) -> io::Result<()> {
        ready.clear();
        let ms = match timeout {
            None => -1,
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: `events` has room for EVENTS entries, as the call is told.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                EVENTS as _,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}
