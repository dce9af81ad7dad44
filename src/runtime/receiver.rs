//! The receiver thread: reads the socket in batches, answers malformed requests itself, and hands
//! every well-formed request to the worker that owns its session.
//!
//! Which worker owns a session is a hash of the session name under a key drawn at start-up
//! (`RandomState`), so nobody can pick names that all land on one worker.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use log::{debug, log_enabled, warn, Level};

use super::batch::{self, RecvBatch};
use super::datagram::{Batch, Datagram};
use super::{Gate, Work};
use crate::outbox::Outbox;
use crate::wire::{self, ErrorCode, ParseError};

/// Routes session names to workers.
#[derive(Clone, Debug)]
pub struct Router {
    key: RandomState,
    workers: usize,
}

impl Router {
    pub fn new(workers: usize) -> Self {
        Self {
            key: RandomState::new(),
            workers: workers.max(1),
        }
    }

    /// The worker that owns session `name`.
    pub fn worker_of(&self, name: &str) -> usize {
        (self.key.hash_one(name.as_bytes()) % self.workers as u64) as usize
    }
}

/// Malformed datagrams shorter than this get no `error:invalid_request` (21 bytes): a reply more
/// than three times the size of what caused it would make garbage an amplifier.
pub const MIN_ANSWERED_GARBAGE: usize = 7;

/// How often the send budgets are swept of buckets that refilled.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Where a request arrived, as the relay needs it: `Ask` the kernel for each datagram's
/// destination address (a wildcard bind), or `Known` for every one.
#[derive(Clone, Copy, Debug)]
pub enum LocalAddress {
    Ask,
    Known(Option<IpAddr>),
}

/// Runs the receive loop until `stop` is set or every worker is gone.
pub fn run(
    gate: Gate,
    router: Router,
    workers: Vec<Sender<Work>>,
    local: LocalAddress,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let counters = &gate.counters;
    let (mut recv, known_local): (RecvBatch, _) = match local {
        LocalAddress::Ask => (RecvBatch::new().with_local_addresses(), None),
        LocalAddress::Known(ip) => (RecvBatch::new(), ip),
    };
    let mut batches: Vec<Batch> = workers.iter().map(|_| Vec::new()).collect();
    let mut out = Outbox::new();
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    while !stop.load(Ordering::Relaxed) {
        let n = recv.recv(&gate.socket)?;
        let now = Instant::now();
        if now >= next_sweep {
            gate.budgets.sweep(now);
            counters.set_budget_tracked_ips(gate.budgets.tracked());
            next_sweep = now + SWEEP_EVERY;
        }
        if n == 0 {
            continue;
        }
        for datagram in recv.iter() {
            counters.received(datagram.data.len());
            gate.budgets
                .on_received(datagram.from.ip(), datagram.data.len(), now);
            if log_enabled!(Level::Debug) {
                debug!(
                    "{} -> {}",
                    datagram.from,
                    String::from_utf8_lossy(datagram.data).escape_debug()
                );
            }
            let parsed = if datagram.truncated {
                Err(ParseError::Invalid)
            } else {
                wire::parse(datagram.data)
            };
            match parsed {
                Ok(request) => {
                    // Counted here, before a full queue may drop it: what clients asked.
                    counters.request(&request.kind);
                    let local = datagram.local.or(known_local);
                    match Datagram::new(datagram.from, local, datagram.data) {
                        Some(d) => batches[router.worker_of(request.session)].push(d),
                        None => out.push_error(datagram.from, ErrorCode::InvalidRequest),
                    }
                }
                // No usable session name: answered here, without troubling a worker.
                Err(ParseError::Invalid) => {
                    counters.malformed();
                    if datagram.data.len() >= MIN_ANSWERED_GARBAGE {
                        out.push_error(datagram.from, ErrorCode::InvalidRequest);
                    }
                }
                Err(ParseError::UnknownCommand) => counters.unknown_command(),
            }
        }
        for (worker, batch) in workers.iter().zip(batches.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let full = std::mem::replace(batch, Vec::with_capacity(batch::BATCH));
            let n = full.len();
            match worker.try_send(Work::Requests(full)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => counters.dropped_queue_full(n),
                Err(TrySendError::Disconnected(_)) => {
                    warn!("a worker is gone; the receiver stops");
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            gate.send(&out, now);
            out.clear();
        }
    }
    Ok(())
}
