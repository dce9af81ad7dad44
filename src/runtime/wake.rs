//! How the receivers wake a worker that sleeps in `epoll_wait` on its relay sockets: a doorbell
//! (an `eventfd` in the worker's epoll set) that is rung only when the worker is asleep or about
//! to be, so handing a busy worker its requests costs no system call.
//!
//! The worker says it is going to sleep ([`Bell::sleep`]), then looks at its queue once more;
//! a receiver queues its batch, then looks whether the worker sleeps ([`Bell::ring`]). A fence on
//! each side, between its write and its read, makes sure at least one of them sees the other's
//! write: either the worker finds the batch and does not sleep, or the receiver finds the worker
//! asleep and rings. (Both may happen: the worker then wakes once for nothing.)

use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::Work;

/// A worker's doorbell.
#[derive(Debug)]
pub struct Bell {
    /// Set by the worker before it sleeps; cleared by the ring that wakes it, or by the worker.
    sleeping: AtomicBool,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl Bell {
    #[cfg(target_os = "linux")]
    pub fn new() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            sleeping: AtomicBool::new(false),
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            sleeping: AtomicBool::new(false),
        })
    }

    /// The descriptor the worker watches: readable once rung.
    #[cfg(target_os = "linux")]
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// After queueing work for the worker: wakes it if it sleeps. When it does not (a busy
    /// worker), this is a fence and a load.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed) {
            self.write();
        }
    }

    /// The worker, before it sleeps: `idle` looks at its queue again after the worker said it
    /// sleeps. Returns whether it may sleep (the queue was empty); if not, it stays awake.
    pub fn sleep(&self, idle: impl FnOnce() -> bool) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if idle() {
            return true;
        }
        self.sleeping.store(false, Ordering::Relaxed);
        false
    }

    /// The worker, awake again (whatever woke it).
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// The worker, woken by the bell: resets it, so the next wait sleeps again.
    #[cfg(target_os = "linux")]
    pub fn reset(&self) {
        let mut count = 0u64;
        // SAFETY: `count` is 8 writable bytes, as the call is told. The descriptor is
        // non-blocking: nothing to read (a spurious wake-up) returns at once.
        unsafe {
            libc::read(self.fd(), (&mut count as *mut u64).cast(), 8);
        }
    }

    #[cfg(target_os = "linux")]
    fn write(&self) {
        let one = 1u64;
        // SAFETY: `one` is 8 readable bytes, as the call is told. It cannot block: the counter
        // would have to near 2^64 first.
        unsafe {
            libc::write(self.fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Off Linux, workers wait on their queue alone (no relay), and need no bell.
    #[cfg(not(target_os = "linux"))]
    fn write(&self) {}
}

/// The receivers' end of a worker's queue: a sender that rings the worker's bell when the
/// worker sleeps.
#[derive(Debug)]
pub struct WorkQueue {
    /// Always `Some` until dropped (taken in `drop`, to hang up before ringing).
    tx: Option<Sender<Work>>,
    bell: Arc<Bell>,
}

impl WorkQueue {
    pub fn new(tx: Sender<Work>, bell: Arc<Bell>) -> Self {
        Self { tx: Some(tx), bell }
    }

    /// Queues `work` without waiting, and wakes the worker if it sleeps.
    pub fn try_send(&self, work: Work) -> Result<(), TrySendError<Work>> {
        self.tx
            .as_ref()
            .expect("sender kept until drop")
            .try_send(work)?;
        self.bell.ring();
        Ok(())
    }
}

impl WorkQueue {
    /// Queues `work`, waiting at most `timeout` for room (a hand-over's freeze, which must not
    /// be dropped), and wakes the worker if it sleeps.
    pub fn send_timeout(
        &self,
        work: Work,
        timeout: std::time::Duration,
    ) -> Result<(), crossbeam_channel::SendTimeoutError<Work>> {
        self.tx
            .as_ref()
            .expect("sender kept until drop")
            .send_timeout(work, timeout)?;
        self.bell.ring();
        Ok(())
    }
}

impl Clone for WorkQueue {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl Drop for WorkQueue {
    /// Hangs up, then rings whether the worker sleeps or not: the last sender gone is how a
    /// worker learns that the server stops, and the bell stays rung until the worker looks.
    fn drop(&mut self) {
        drop(self.tx.take());
        self.bell.write();
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn rung(bell: &Bell) -> bool {
        let mut count = 0u64;
        // SAFETY: as in `reset`.
        let n = unsafe { libc::read(bell.fd(), (&mut count as *mut u64).cast(), 8) };
        n == 8 && count > 0
    }

    #[test]
    fn a_busy_worker_is_not_rung_and_a_sleeping_one_is_once() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let bell = Arc::new(Bell::new().unwrap());
        let queue = WorkQueue::new(tx, bell.clone());
        queue.try_send(Work::Lobby(Vec::new())).unwrap();
        assert!(
            !rung(&bell),
            "the worker was awake: no system call, no ring"
        );
        // The worker finds the queue not empty when it means to sleep: it stays awake.
        assert!(!bell.sleep(|| rx.is_empty()));
        rx.try_recv().unwrap();
        assert!(bell.sleep(|| rx.is_empty()));
        queue.try_send(Work::Lobby(Vec::new())).unwrap();
        queue.try_send(Work::Lobby(Vec::new())).unwrap();
        assert!(rung(&bell), "asleep: rung");
        assert!(!rung(&bell), "once: the first ring cleared the flag");
        bell.awake();
    }

    #[test]
    fn the_last_sender_gone_rings_after_hanging_up() {
        let (tx, rx) = crossbeam_channel::bounded::<Work>(4);
        let bell = Arc::new(Bell::new().unwrap());
        let queue = WorkQueue::new(tx, bell.clone());
        let other = queue.clone();
        drop(queue);
        assert!(rung(&bell));
        assert!(rx.try_recv().unwrap_err().is_empty());
        drop(other);
        assert!(rung(&bell));
        assert!(rx.try_recv().unwrap_err().is_disconnected());
    }
}
