//! A worker thread: owns one [`Shard`] (no lock around it: nobody else touches it), feeds it the
//! batches the receiver and its relay reader route here and its own deadlines, and sends what it
//! answers: replies through its clone of the server socket, so they leave from the server's
//! port; relayed datagrams through its relay ports.

use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::datagram::Batch;
use super::handover::Freeze;
use super::relay::{RelayBatch, RelaySockets};
use super::{Gate, Work};
use crate::core::{handover, Shard};
use crate::outbox::Outbox;

/// Datagrams whose answers a worker gathers at most before sending them.
const MAX_PER_SEND: usize = 256;

/// A worker's shard, with the buffers it fills and the ways out.
struct Worker {
    shard: Shard,
    gate: Gate,
    relay: std::sync::Arc<RelaySockets>,
    /// Replies, from the server port.
    out: Outbox,
    /// Relayed datagrams, each from its relay port.
    relayed: Outbox,
}

impl Worker {
    /// Hands a batch of requests, parsed by the receiver's front door, to the shard all at once
    /// (so that a large shard fetches their sessions from memory together).
    fn requests(&mut self, now: Instant, batch: &Batch) -> usize {
        self.shard.handle_requests(now, batch, &mut self.out);
        batch.len()
    }

    fn relayed(&mut self, now: Instant, batch: &RelayBatch) -> usize {
        for (port, from, payload) in batch.iter() {
            self.shard
                .handle_relayed(now, port, from, payload, &mut self.relayed);
        }
        batch.len()
    }

    fn handle(&mut self, now: Instant, work: &Work) -> (usize, usize) {
        match work {
            Work::Handover(_) => unreachable!("taken by the loop"),
            Work::Requests(batch) => (self.requests(now, batch), 0),
            Work::Relayed(batch) => (0, self.relayed(now, batch)),
            Work::Lobby(batch) => {
                for routed in batch {
                    self.shard.handle_lobby(now, routed, &mut self.out);
                }
                (batch.len(), 0)
            }
        }
    }

    /// Publishes the shard's figures.
    fn publish(&self) {
        let counters = &self.gate.counters;
        counters.set_shard(
            self.shard.sessions(),
            self.shard.players(),
            self.shard.stats(),
        );
        counters.set_relay(self.shard.relay_stats());
    }

    /// Sends what the shard answered, and publishes its figures.
    fn flush(&mut self, now: Instant) {
        // Published before replying, so a client that got its reply sees the figures.
        self.publish();
        let counters = &self.gate.counters;
        if !self.out.is_empty() {
            self.gate.send(&self.out, now);
            self.out.clear();
        }
        if !self.relayed.is_empty() {
            let (_, failed) = self.relay.send(&self.relayed);
            counters.relay_send_errors(failed);
            self.relayed.clear();
        }
    }

    /// Sends what is pending, writes the shard's state for the control thread, and waits for
    /// the verdict without touching the shard (the running server's side of a hand-over).
    /// `false`: the successor serves, stop. Thawed, the shard does not count the time frozen
    /// against the players, whose requests waited in the kernel meanwhile.
    fn freeze(&mut self, now: Instant, freeze: &Freeze) -> bool {
        self.flush(now);
        let _ = freeze.state.send(handover::export_shard(&self.shard, now));
        if !freeze.wait() {
            return false;
        }
        let thawed = Instant::now();
        self.shard.forgive_pause(thawed, thawed - now);
        true
    }
}

/// Runs until the receiver hangs up, or a hand-over commits.
pub fn run(shard: Shard, work: Receiver<Work>, gate: Gate, relay: std::sync::Arc<RelaySockets>) {
    let mut worker = Worker {
        shard,
        gate,
        relay,
        out: Outbox::new(),
        relayed: Outbox::new(),
    };
    worker.publish();
    loop {
        let received = match worker.shard.next_timeout() {
            Some(deadline) => work.recv_deadline(deadline),
            None => work.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        let (requests, _) = match received {
            Ok(Work::Handover(freeze)) => {
                if !worker.freeze(now, &freeze) {
                    return;
                }
                continue;
            }
            Ok(first) => {
                let (mut requests, mut relayed) = worker.handle(now, &first);
                // Work that queued up meanwhile goes out with this: one send call for all.
                while requests + relayed < MAX_PER_SEND {
                    let Ok(more) = work.try_recv() else { break };
                    if let Work::Handover(freeze) = &more {
                        // What came before it is answered before its state is written.
                        worker.shard.handle_timeout(now, &mut worker.out);
                        if !worker.freeze(now, freeze) {
                            return;
                        }
                        break;
                    }
                    let (r, f) = worker.handle(now, &more);
                    requests += r;
                    relayed += f;
                }
                (requests, relayed)
            }
            Err(RecvTimeoutError::Timeout) => (0, 0),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        worker.shard.handle_timeout(now, &mut worker.out);
        worker.flush(now);
        if requests > 0 {
            // The batch from taking it to its replies sent, shared among its requests (see
            // `Counters::handled`). Counted after the replies left: a client that has its reply
            // may scrape before this, which only matters to the histogram, not to the counters.
            worker.gate.counters.handled(requests, now.elapsed());
        }
    }
}
