//! Errors that are sent several times, some milliseconds apart, to players that are already gone
//! from their session: `error:player_timeout` and `error:session_timeout`.
//!
//! Every repeat is queued `interval` after the time it is queued at, and that time never goes
//! backwards, so a plain FIFO stays sorted by due time: no heap needed.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::clock::Millis;
use super::handover::codec::{malformed, Reader, Result, Writer};
use crate::outbox::Outbox;
use crate::wire::ErrorCode;

#[derive(Debug)]
pub(crate) struct Repeat {
    at: Millis,
    to: SocketAddr,
    code: ErrorCode,
    left: u8,
}

/// The queue of repeated errors of one shard.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    queue: VecDeque<Repeat>,
}

impl Repeats {
    /// Sends `code` to `to` now, and queues the `times - 1` further sends `interval` apart.
    pub(crate) fn send(
        &mut self,
        now: Millis,
        interval: Millis,
        to: SocketAddr,
        code: ErrorCode,
        times: u8,
        out: &mut Outbox,
    ) {
        if times == 0 {
            return;
        }
        out.push_error(to, code);
        if times > 1 {
            self.queue.push_back(Repeat {
                at: now + interval,
                to,
                code,
                left: times - 1,
            });
        }
    }

    /// Sends every repeat due at `now`.
    pub(crate) fn send_due(&mut self, now: Millis, interval: Millis, out: &mut Outbox) {
        while let Some(repeat) = self.queue.front() {
            if repeat.at > now {
                break;
            }
            let Some(repeat) = self.queue.pop_front() else {
                break;
            };
            self.send(now, interval, repeat.to, repeat.code, repeat.left, out);
        }
    }

    /// When the next repeat is due.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.queue.front().map(|r| r.at)
    }

    /// Writes the queue for a successor process (see [`crate::core::handover`]).
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.count(self.queue.len());
        for repeat in &self.queue {
            w.u64(repeat.at);
            w.addr(repeat.to);
            w.error(repeat.code);
            w.u8(repeat.left);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; no repeat is due later than `latest`.
    pub(crate) fn decode(r: &mut Reader<'_>, latest: Millis) -> Result<Vec<Repeat>> {
        let count = r.count(13, "repeats")?;
        (0..count)
            .map(|_| {
                let repeat = Repeat {
                    at: r.millis(latest, "repeat due")?,
                    to: r.addr("repeat address")?,
                    code: r.error("repeat error")?,
                    left: r.u8("repeats left")?,
                };
                match repeat.left {
                    0 => malformed("a repeat with none left"),
                    _ => Ok(repeat),
                }
            })
            .collect()
    }

    /// Takes over `repeats` (of other shards, each queue in due order), keeping the queue in
    /// due order: a stable sort, so repeats due together keep their order.
    pub(crate) fn adopt(&mut self, repeats: Vec<Repeat>) {
        let mut all: Vec<Repeat> = self.queue.drain(..).chain(repeats).collect();
        all.sort_by_key(|r| r.at);
        self.queue = all.into();
    }

    /// Repeats queued (for tests of the hand-over).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
