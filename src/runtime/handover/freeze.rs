//! The running server's side of a hand-over, as the control thread drives it: what it offers,
//! freezing (the readers park, the workers finish their queues and write their shards' state),
//! and then either thawing (the successor failed: serve on) or committing (stop for good).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};

use crate::runtime::wake::WorkQueue;
use parking_lot::Mutex;
use socket2::Socket;

use super::messages::Offer;
use super::pause::{Freeze, ReadGate, Verdict};
use crate::core::handover::{export_shared, STATE_VERSION};
use crate::core::{Clock, Shared};
use crate::runtime::Work;

/// What a running server lends its control thread for a hand-over. Cloning shares it.
#[derive(Clone)]
pub struct Handover {
    inner: Arc<Inner>,
}

struct Inner {
    gate: Arc<ReadGate>,
    /// The receivers: the threads that park.
    readers: usize,
    /// The workers' queues; taken away at shutdown so that they do not keep workers waiting.
    workers: Mutex<Option<Vec<WorkQueue>>>,
    shared: Shared,
    /// Clones of the receivers' sockets, in receiver order.
    receivers: Vec<Socket>,
    /// Every relay socket's port and descriptor (the workers own the sockets).
    relay: Vec<(u16, RawFd)>,
    stop: Arc<AtomicBool>,
    /// Set when the successor took over: the fleet thread then leaves its records in Redis.
    handed_over: Arc<AtomicBool>,
    /// The fleet node id (as the fleet thread last set it) and the fleet's key, in a fleet.
    fleet: Option<(Arc<Mutex<String>>, u64)>,
    bind: SocketAddr,
    relay_ports: Option<RangeInclusive<u16>>,
}

/// What [`Handover::new`] is built from: the server's parts, as `Server::start` has them.
pub struct Parts {
    pub gate: Arc<ReadGate>,
    pub readers: usize,
    pub workers: Vec<WorkQueue>,
    pub shared: Shared,
    pub receivers: Vec<Socket>,
    pub relay: Vec<(u16, RawFd)>,
    pub stop: Arc<AtomicBool>,
    pub handed_over: Arc<AtomicBool>,
    pub fleet: Option<(Arc<Mutex<String>>, u64)>,
    pub bind: SocketAddr,
    pub relay_ports: Option<RangeInclusive<u16>>,
}

/// The state of a frozen server, and the way back. Dropped without
/// [`commit`](Handover::commit), it thaws the server.
pub struct Frozen {
    pub shared: Vec<u8>,
    pub shards: Vec<Vec<u8>>,
    /// `CLOCK_MONOTONIC` when the state was written, in nanoseconds: the successor counts the
    /// time the hand-over took from it, so every deadline keeps its instant.
    pub mono_ns: u64,
    verdicts: Vec<Sender<Verdict>>,
    gate: Arc<ReadGate>,
    committed: bool,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.committed {
            for verdict in &self.verdicts {
                let _ = verdict.send(Verdict::Resume);
            }
            self.gate.resume();
        }
    }
}

impl Handover {
    pub fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                gate: parts.gate,
                readers: parts.readers,
                workers: Mutex::new(Some(parts.workers)),
                shared: parts.shared,
                receivers: parts.receivers,
                relay: parts.relay,
                stop: parts.stop,
                handed_over: parts.handed_over,
                fleet: parts.fleet,
                bind: parts.bind,
                relay_ports: parts.relay_ports,
            }),
        }
    }

    /// What this server offers a successor.
    pub fn offer(&self, http: Option<SocketAddr>) -> Offer {
        let inner = &self.inner;
        Offer {
            state_version: STATE_VERSION,
            bind: inner.bind,
            receivers: inner.receivers.len(),
            relay: inner.relay_ports.clone(),
            http,
            fleet: inner
                .fleet
                .as_ref()
                .map(|(node, key)| (node.lock().clone(), *key)),
        }
    }

    /// Parks the readers, lets each worker finish its queue and write its shard's state, and
    /// leaves the workers frozen. Gives up (thawed again) when a thread does not answer within
    /// `timeout`.
    pub fn freeze(&self, timeout: Duration) -> Result<Frozen, String> {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let mut frozen = Frozen {
            shared: Vec::new(),
            shards: Vec::new(),
            mono_ns: 0,
            verdicts: Vec::new(),
            gate: inner.gate.clone(),
            committed: false,
        };
        if !inner.gate.pause(inner.readers, timeout) {
            return Err("the server's readers did not stop reading in time".into());
        }
        let workers = inner
            .workers
            .lock()
            .clone()
            .ok_or("the server is stopping")?;
        let mut states = Vec::new();
        for worker in &workers {
            let (state_tx, state_rx) = bounded(1);
            let (verdict_tx, verdict_rx) = bounded(1);
            let freeze = Freeze {
                state: state_tx,
                verdict: verdict_rx,
                stop: inner.stop.clone(),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            worker
                .send_timeout(Work::Handover(freeze), left)
                .map_err(|_| "a worker's queue stayed full")?;
            frozen.verdicts.push(verdict_tx);
            states.push(state_rx);
        }
        for state in states {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = state
                .recv_timeout(left)
                .map_err(|_| "a worker did not write its state in time")?;
            frozen.shards.push(bytes);
        }
        let now = Instant::now();
        frozen.shared = export_shared(&inner.shared, now);
        frozen.mono_ns = monotonic_ns();
        Ok(frozen)
    }

    /// The successor serves: the workers stop, the readers stop, and the fleet thread leaves
    /// this node's records to the successor when it `adopted` the node (else it takes them
    /// out of the fleet, as at any stop, rather than leave them to expire).
    pub fn commit(&self, mut frozen: Frozen, adopted: bool) {
        let inner = &self.inner;
        inner.handed_over.store(adopted, Ordering::SeqCst);
        inner.stop.store(true, Ordering::SeqCst);
        frozen.committed = true;
        for verdict in &frozen.verdicts {
            let _ = verdict.send(Verdict::Commit);
        }
        inner.gate.resume();
    }

    /// The receivers' sockets, in receiver order.
    pub fn receiver_fds(&self) -> Vec<RawFd> {
        self.inner.receivers.iter().map(|s| s.as_raw_fd()).collect()
    }

    /// Every relay socket, with its port.
    pub fn relay_fds(&self) -> Vec<(u16, RawFd)> {
        self.inner.relay.clone()
    }

    /// Lets go of the workers' queues (at shutdown: they must not keep a worker waiting).
    pub fn release_workers(&self) {
        self.inner.workers.lock().take();
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock `Instant` reads on Linux, the same in every
/// process of the machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A successor's clock: the running server's, which read `clock_millis` when it wrote its state
/// at `mono_ns`, gone on since (the time the hand-over took counts, as it did for the players).
pub fn continuing_clock(clock_millis: u64, mono_ns: u64) -> Clock {
    let now = Instant::now();
    let elapsed = Duration::from_nanos(monotonic_ns().saturating_sub(mono_ns));
    Clock::continuing(clock_millis + elapsed.as_millis() as u64, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuing_clock_counts_the_time_since_the_state_was_written() {
        let mono = monotonic_ns();
        let at = Instant::now();
        let clock = continuing_clock(5_000, mono);
        // The old clock read 5 000 ms at `mono`, a moment before `at`.
        let since = at.saturating_duration_since(clock.epoch());
        assert!(since >= Duration::from_millis(4_999), "{since:?}");
        assert!(since < Duration::from_millis(6_000), "{since:?}");
    }
}
