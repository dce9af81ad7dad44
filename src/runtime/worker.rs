//! A worker thread: owns one [`Shard`] (no lock around it: nobody else touches it), feeds it the
//! batches the receivers route here, the datagrams of its relay ports (which it reads itself)
//! and its own deadlines, and sends what it answers: replies through its clone of the server
//! socket, so they leave from the server's port; relayed datagrams through its relay ports.

use std::time::Instant;

use crossbeam_channel::{Receiver, TryRecvError};

use super::datagram::Batch;
use super::handover::Freeze;
use super::relay::Inbox;
use super::{Gate, Work};
use crate::core::{handover, Shard};
use crate::outbox::Outbox;

/// Datagrams whose answers a worker gathers at most before sending them.
const MAX_PER_SEND: usize = 256;

/// A worker's shard, with the buffers it fills and the ways out.
struct Worker {
    shard: Shard,
    gate: Gate,
    /// The queue's bell and the relay ports: what the worker waits on.
    inbox: Inbox,
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

    /// Reads the relay ports that received something, and forwards each datagram as the
    /// shard says.
    fn relayed(&mut self, now: Instant) -> std::io::Result<usize> {
        let (shard, out) = (&mut self.shard, &mut self.relayed);
        self.inbox
            .read(MAX_PER_SEND, &self.gate.counters, |port, from, payload| {
                shard.handle_relayed(now, port, from, payload, out)
            })
    }

    fn handle(&mut self, now: Instant, work: &Work) -> usize {
        match work {
            Work::Handover(_) => unreachable!("taken by the loop"),
            Work::Requests(batch) => self.requests(now, batch),
            Work::Lobby(batch) => {
                for routed in batch {
                    self.shard.handle_lobby(now, routed, &mut self.out);
                }
                batch.len()
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
            self.inbox.send(&mut self.relayed, counters);
        }
    }

    /// Sends what is pending, writes the shard's state for the control thread, and waits for
    /// the verdict without touching the shard (the running server's side of a hand-over).
    /// `false`: the successor serves, stop. Thawed, the shard does not count the time frozen
    /// against the players, whose requests waited in the kernel meanwhile.
    fn freeze(&mut self, now: Instant, freeze: &Freeze) -> bool {
        // The relay ports are no longer read (what arrives waits for the successor); what was
        // read is forwarded and sent before the state is written.
        let (shard, out) = (&mut self.shard, &mut self.relayed);
        self.inbox
            .quiesce(&self.gate.counters, |port, from, payload| {
                shard.handle_relayed(now, port, from, payload, out)
            });
        self.flush(now);
        self.inbox.settle(&self.gate.counters);
        let _ = freeze.state.send(handover::export_shard(&self.shard, now));
        if !freeze.wait() {
            return false;
        }
        if let Err(e) = self.inbox.resume() {
            log::error!("worker: reading the relay ports again: {e}");
        }
        let thawed = Instant::now();
        self.shard.forgive_pause(thawed, thawed - now);
        true
    }
}

/// Runs until the receivers hang up, or a hand-over commits.
pub fn run(shard: Shard, work: Receiver<Work>, gate: Gate, inbox: Inbox) {
    let mut worker = Worker {
        shard,
        gate,
        inbox,
        out: Outbox::new(),
        relayed: Outbox::new(),
    };
    if let Err(e) = worker.inbox.start() {
        log::error!("worker: setting up the relay ports: {e}");
        return;
    }
    worker.publish();
    loop {
        let deadline = worker.shard.next_timeout();
        let first = match worker.inbox.wait(&work, deadline) {
            Ok(first) => first,
            Err(e) => {
                log::error!("worker: waiting on the relay ports: {e}");
                break;
            }
        };
        let now = Instant::now();
        // A hand-over's freeze comes through the queue, after everything queued before it.
        let mut freeze = None;
        let mut requests = 0;
        match first {
            Some(Work::Handover(asked)) => freeze = Some(asked),
            Some(first) => requests += worker.handle(now, &first),
            None => {}
        }
        if let Err(e) = worker.relayed(now) {
            log::error!("worker: reading a relay port: {e}");
            break;
        }
        // Work that queued up meanwhile goes out with this: one send call for all.
        let mut gone = false;
        while freeze.is_none() && requests < MAX_PER_SEND {
            match work.try_recv() {
                Ok(Work::Handover(asked)) => freeze = Some(asked),
                Ok(more) => requests += worker.handle(now, &more),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        worker.shard.handle_timeout(now, &mut worker.out);
        worker.flush(now);
        if requests > 0 {
            // The batch from taking it to its replies sent, shared among its requests (see
            // `Counters::handled`). Counted after the replies left: a client that has its reply
            // may scrape before this, which only matters to the histogram, not to the counters.
            worker.gate.counters.handled(requests, now.elapsed());
        }
        // What came before the freeze is answered before the state is written.
        if let Some(freeze) = freeze {
            if !worker.freeze(Instant::now(), &freeze) {
                return;
            }
        }
        if gone {
            break;
        }
    }
}
