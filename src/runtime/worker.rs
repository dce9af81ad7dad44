//! A worker thread: owns one [`Shard`] (no lock around it: nobody else touches it), feeds it the
//! batches the receiver routes here and its own deadlines, and sends what it answers through its
//! clone of the server socket, so replies leave from the server's port.

use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::datagram::Batch;
use super::Gate;
use crate::core::Shard;
use crate::outbox::Outbox;

/// Requests whose replies a worker gathers at most before sending them.
const MAX_PER_SEND: usize = 256;

/// Hands a batch to the shard. Each datagram is parsed again here: the receiver's parse only
/// chose the worker, and a parsed request borrows the datagram, so the inline bytes are what
/// travels; parsing a request costs a few tens of nanoseconds, against microseconds of
/// system calls per datagram.
fn handle(shard: &mut Shard, now: Instant, batch: &Batch, out: &mut Outbox) -> usize {
    for datagram in batch {
        shard.handle_datagram(now, datagram.from, datagram.bytes(), out);
    }
    batch.len()
}

/// Runs until the receiver hangs up.
pub fn run(mut shard: Shard, batches: Receiver<Batch>, gate: Gate) {
    let mut out = Outbox::new();
    loop {
        let received = match shard.next_timeout() {
            Some(deadline) => batches.recv_deadline(deadline),
            None => batches.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        let requests = match received {
            Ok(batch) => {
                let mut requests = handle(&mut shard, now, &batch, &mut out);
                // Batches that queued up meanwhile go out with this one: one send call for all.
                while requests < MAX_PER_SEND {
                    let Ok(more) = batches.try_recv() else { break };
                    requests += handle(&mut shard, now, &more, &mut out);
                }
                requests
            }
            Err(RecvTimeoutError::Timeout) => 0,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        shard.handle_timeout(now, &mut out);
        // Published before replying, so a client that got its reply sees the figures.
        gate.counters
            .set_shard(shard.sessions(), shard.players(), shard.stats());
        if !out.is_empty() {
            gate.send(&out, now);
            out.clear();
        }
        if requests > 0 {
            // The batch from taking it to its replies sent, shared among its requests (see
            // `Counters::handled`). Counted after the replies left: a client that has its reply
            // may scrape before this, which only matters to the histogram, not to the counters.
            gate.counters.handled(requests, now.elapsed());
        }
    }
}
