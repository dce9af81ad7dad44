//! The receiver thread: reads the socket in batches and passes each datagram through the core's
//! [`FrontDoor`], which says what it is: a request for a worker's shard (batched to that
//! worker), an answer to send (malformed requests), or nothing. It credits the per-IP send
//! budgets with what it received, and holds no protocol rule of its own.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use log::{debug, log_enabled, warn, Level};

use super::batch::{self, RecvBatch};
use super::datagram::Batch;
use super::directory::DirectoryBatch;
use super::handover::ReadGate;
use super::wake::WorkQueue;
use super::{Counters, Gate, Work};
use crate::core::{Dropped, FrontDoor, LobbyRouted, Verdict};
use crate::outbox::Outbox;
use crate::wire::lobby::write_extension_error;

/// How often the send budgets are swept of buckets that refilled.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Where a request arrived, as the relay needs it: `Ask` the kernel for each datagram's
/// destination address (a wildcard bind), or `Known` for every one.
#[derive(Clone, Copy, Debug)]
pub enum LocalAddress {
    Ask,
    Known(Option<IpAddr>),
}

/// Where the receiver sends what the front door routes.
pub struct Routes {
    /// Each worker's queue, in shard order.
    pub workers: Vec<WorkQueue>,
    /// The directory thread's queue.
    pub directory: Sender<DirectoryBatch>,
    /// Whether this receiver sweeps the send budgets (one of several does).
    pub sweeps: bool,
}

/// Runs the receive loop until `stop` is set or every worker is gone; parks between two reads
/// while `pause` says so (a hand-over).
pub fn run(
    gate: Gate,
    front: FrontDoor,
    routes: Routes,
    local: LocalAddress,
    stop: Arc<AtomicBool>,
    pause: Arc<ReadGate>,
) -> io::Result<()> {
    let Routes {
        workers,
        directory,
        sweeps,
    } = routes;
    let counters = &gate.counters;
    let (mut recv, known_local): (RecvBatch, _) = match local {
        LocalAddress::Ask => (RecvBatch::new().with_local_addresses(), None),
        LocalAddress::Known(ip) => (RecvBatch::new(), ip),
    };
    let mut batches: Vec<Batch> = workers.iter().map(|_| Vec::new()).collect();
    let mut lobby: Vec<Vec<LobbyRouted>> = workers.iter().map(|_| Vec::new()).collect();
    let mut queries: DirectoryBatch = Vec::new();
    let mut out = Outbox::new();
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    while !stop.load(Ordering::Relaxed) {
        if !pause.wait_while_paused(&stop) {
            break;
        }
        let n = recv.recv(&gate.socket)?;
        let now = Instant::now();
        if sweeps && now >= next_sweep {
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
            let local = datagram.local.or(known_local);
            match front.handle(datagram.from, local, datagram.data, datagram.truncated) {
                Verdict::Route { shard, routed } => {
                    // Counted here, before a full queue may drop it: what clients asked.
                    counters.request(&routed.request.as_wire().kind);
                    // A worker gets its requests in the order they came: lobby requests
                    // waiting for it go first (a `d:` right after its `h:` must find the
                    // session).
                    if !lobby[shard].is_empty() {
                        let held = std::mem::take(&mut lobby[shard]);
                        if !forward(&workers[shard], Work::Lobby(held), counters) {
                            return Ok(()); // a worker is gone: the server is stopping
                        }
                    }
                    batches[shard].push(routed);
                }
                Verdict::Lobby { shard, routed } => {
                    counters.lobby_request();
                    if !batches[shard].is_empty() {
                        let held = std::mem::replace(
                            &mut batches[shard],
                            Vec::with_capacity(batch::BATCH),
                        );
                        if !forward(&workers[shard], Work::Requests(held), counters) {
                            return Ok(()); // a worker is gone: the server is stopping
                        }
                    }
                    lobby[shard].push(*routed);
                }
                Verdict::Directory { from, query } => queries.push((from, query)),
                // Malformed: answered here, without troubling a worker.
                Verdict::Reply { to, error } => {
                    counters.malformed();
                    out.push_error(to, error);
                }
                Verdict::ReplyLobby { to, error } => {
                    counters.malformed();
                    out.push_with(to, |buf| write_extension_error(buf, error));
                }
                Verdict::Drop(Dropped::ShortGarbage) => counters.malformed(),
                Verdict::Drop(Dropped::UnknownCommand) => counters.unknown_command(),
            }
        }
        // What each worker still has waiting: one kind at most, the other went out when this one
        // started (see above), so the order holds.
        for (worker, batch) in workers.iter().zip(lobby.iter_mut()) {
            if !batch.is_empty() && !forward(worker, Work::Lobby(std::mem::take(batch)), counters) {
                return Ok(()); // a worker is gone: the server is stopping
            }
        }
        if !queries.is_empty() {
            let n = queries.len();
            if let Err(TrySendError::Full(_)) = directory.try_send(std::mem::take(&mut queries)) {
                counters.directory_dropped(n);
            }
        }
        for (worker, batch) in workers.iter().zip(batches.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let full = std::mem::replace(batch, Vec::with_capacity(batch::BATCH));
            if !forward(worker, Work::Requests(full), counters) {
                return Ok(()); // a worker is gone: the server is stopping
            }
        }
        if !out.is_empty() {
            gate.send(&out, now);
            out.clear();
        }
    }
    Ok(())
}

/// Hands `work` to a worker; a full queue drops it (counted). `false` when the worker is gone,
/// which ends the receive loop (the server is stopping).
fn forward(worker: &WorkQueue, work: Work, counters: &Counters) -> bool {
    let n = match &work {
        Work::Requests(batch) => batch.len(),
        Work::Lobby(batch) => batch.len(),
        Work::Handover(_) => 0,
    };
    match worker.try_send(work) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            counters.dropped_queue_full(n);
            true
        }
        Err(TrySendError::Disconnected(_)) => {
            warn!("a worker is gone; the receiver stops");
            false
        }
    }
}
