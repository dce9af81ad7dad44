//! Errors that are sent several times, some milliseconds apart, to players that are already gone
//! from their session: `error:player_timeout` and `error:session_timeout`.
//!
//! Every repeat is queued `interval` after the time it is queued at, and that time never goes
//! backwards, so a plain FIFO stays sorted by due time: no heap needed.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::clock::Millis;
use crate::outbox::Outbox;
use crate::wire::ErrorCode;

#[derive(Debug)]
struct Repeat {
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
}
