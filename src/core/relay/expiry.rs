//! When relays close: unused after their start, idle after their last datagram, or at the end
//! of their lifetime; one live entry per relay in the relays' [`Timers`](crate::core::timers).

use super::{Relay, Relays};
use crate::core::clock::Millis;

impl Relays {
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.timers.next_due()
    }

    /// When `relay` closes unless it forwards something first: `unused` after its start until
    /// it has forwarded anything, then `idle` after the last datagram; at the latest at the end
    /// of its lifetime.
    fn deadline(&self, relay: &Relay) -> Millis {
        let quiet_end = match relay.last_forward {
            None => relay.started + self.settings.unused,
            Some(at) => at + self.settings.idle,
        };
        quiet_end.min(relay.started + self.settings.lifetime)
    }

    /// Puts relay `id`'s live timer entry at its deadline, if that is earlier than its entry.
    pub(super) fn schedule(&mut self, id: u32) {
        let Some(relay) = self.relays.get(&id) else {
            return;
        };
        let at = self.deadline(relay);
        if let Some(relay) = self.relays.get_mut(&id) {
            if at < relay.timer_at {
                relay.timer_at = at;
                self.timers.push(at, id);
            }
        }
    }

    /// Closes the relays whose deadline passed.
    pub(crate) fn handle_timeout(&mut self, now: Millis) {
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(relay) = self.relays.get(&id) else {
                continue;
            };
            if relay.timer_at != at {
                continue; // stale entry
            }
            let used = relay.last_forward.is_some();
            let lifetime_end = relay.started + self.settings.lifetime;
            let deadline = self.deadline(relay);
            if let Some(relay) = self.relays.get_mut(&id) {
                relay.timer_at = Millis::MAX;
            }
            if now >= lifetime_end {
                self.stats.closed_lifetime += 1;
                self.close(id, "its lifetime ended");
            } else if now >= deadline && used {
                self.stats.closed_idle += 1;
                self.close(id, "idle");
            } else if now >= deadline {
                self.stats.closed_unused += 1;
                self.close(id, "no member sent anything through it");
            } else {
                self.schedule(id);
            }
        }
    }
}
