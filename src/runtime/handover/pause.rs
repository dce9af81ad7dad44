//! How a hand-over stops the server's threads without stopping the server: the threads that
//! read sockets park between two reads ([`ReadGate`]), the workers freeze after their queues
//! ([`Freeze`]), and a successor's threads wait for the word to start ([`Latch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

/// Lets the control thread park the receivers between two reads, and let them go again. (The
/// workers read their relay ports themselves: they stop reading when they freeze.) What arrives meanwhile waits in the kernel's
/// receive buffers, for whichever process reads next.
///
/// A reader looks at one atomic per read ([`wait_while_paused`](Self::wait_while_paused)); only
/// a pause takes the lock.
#[derive(Debug, Default)]
pub struct ReadGate {
    pausing: AtomicBool,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    paused: bool,
    parked: usize,
}

/// How often a parked reader looks at the stop flag.
const PARKED_LOOK: Duration = Duration::from_millis(50);

impl ReadGate {
    /// Called by a reader before each read: returns at once unless a pause is on, and then
    /// when it is over or `stop` is set. `false`: stop, do not read again (after a hand-over,
    /// the sockets are the successor's).
    #[inline]
    #[must_use]
    pub fn wait_while_paused(&self, stop: &AtomicBool) -> bool {
        if self.pausing.load(Ordering::Acquire) {
            self.park(stop);
        }
        !stop.load(Ordering::Acquire)
    }

    #[cold]
    fn park(&self, stop: &AtomicBool) {
        let mut state = self.state.lock();
        state.parked += 1;
        self.changed.notify_all();
        while state.paused && !stop.load(Ordering::Relaxed) {
            self.changed.wait_for(&mut state, PARKED_LOOK);
        }
        state.parked -= 1;
        self.changed.notify_all();
    }

    /// Asks every reader to park, and waits until `readers` of them have (true), or `timeout`
    /// passed (false: the pause stays on; call [`resume`](Self::resume)).
    pub fn pause(&self, readers: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        state.paused = true;
        self.pausing.store(true, Ordering::Release);
        while state.parked < readers {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.parked >= readers;
            }
        }
        true
    }

    /// Lets the readers go on.
    pub fn resume(&self) {
        let mut state = self.state.lock();
        state.paused = false;
        self.pausing.store(false, Ordering::Release);
        self.changed.notify_all();
    }
}

/// What the control thread asks of a worker, through its queue (so after everything queued
/// before): send its shard's state, then wait for the verdict without touching the shard or
/// the sockets.
#[derive(Debug)]
pub struct Freeze {
    pub state: Sender<Vec<u8>>,
    pub verdict: Receiver<Verdict>,
    /// The server's stop flag: a server stopping (a signal during a hand-over) thaws its
    /// workers without waiting for the verdict.
    pub stop: Arc<AtomicBool>,
}

impl Freeze {
    /// Waits for the verdict: `true` to serve on (thawed, or the server is stopping and the
    /// worker's queue will end it), `false` when the successor serves.
    pub fn wait(&self) -> bool {
        loop {
            match self.verdict.recv_timeout(PARKED_LOOK) {
                Ok(Verdict::Commit) => return false,
                Ok(Verdict::Resume) | Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) if self.stop.load(Ordering::Relaxed) => return true,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// How a hand-over ended, for a frozen worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It failed: serve on, from the state as it was.
    Resume,
    /// The successor serves: stop.
    Commit,
}

/// A gate opened once: a successor's threads start (each waits on it first) only when the
/// running server confirmed the hand-over, so that two processes never serve at once.
#[derive(Debug, Default)]
pub struct Latch {
    state: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Latch {
    /// A latch already open (a server that takes over from nobody).
    pub fn open() -> Self {
        Self {
            state: Mutex::new(Some(true)),
            changed: Condvar::new(),
        }
    }

    /// Waits until the latch is opened (true) or cancelled (false).
    pub fn wait(&self) -> bool {
        let mut state = self.state.lock();
        loop {
            if let Some(go) = *state {
                return go;
            }
            self.changed.wait(&mut state);
        }
    }

    /// Opens (`go`) or cancels the latch, once; later calls change nothing.
    pub fn release(&self, go: bool) {
        let mut state = self.state.lock();
        if state.is_none() {
            *state = Some(go);
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn a_pause_waits_for_every_reader_and_a_resume_lets_them_go() {
        let gate = Arc::new(ReadGate::default());
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (gate, stop, reads) = (gate.clone(), stop.clone(), reads.clone());
                thread::spawn(move || {
                    while gate.wait_while_paused(&stop) {
                        reads.fetch_add(1, Ordering::Relaxed);
                        thread::yield_now();
                    }
                })
            })
            .collect();
        assert!(gate.pause(3, Duration::from_secs(10)));
        // Parked: no reader reads while the pause is on.
        let before = reads.load(Ordering::Relaxed);
        for _ in 0..100 {
            thread::yield_now();
        }
        assert_eq!(reads.load(Ordering::Relaxed), before);
        gate.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        while reads.load(Ordering::Relaxed) == before {
            assert!(Instant::now() < deadline, "the readers did not go on");
            thread::yield_now();
        }
        // A pause that waits for a reader that does not exist gives up.
        assert!(!gate.pause(4, Duration::from_millis(100)));
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
    }

    #[test]
    fn a_latch_releases_its_waiters_once() {
        let latch = Arc::new(Latch::default());
        let waiter = {
            let latch = latch.clone();
            thread::spawn(move || latch.wait())
        };
        latch.release(false);
        latch.release(true);
        assert!(!waiter.join().unwrap());
        assert!(!latch.wait());
        assert!(Latch::open().wait());
    }
}
