//! The shard's side of a hand-over to a successor process ([`crate::core::handover`]): what the
//! export reads, and adopting what the successor decoded, with the counts, caps, directory and
//! timers kept right as if the sessions had been created here.

use std::collections::HashSet;
use std::time::Instant;

use super::Shard;
use crate::core::clock::Millis;
use crate::core::name::SessionName;
use crate::core::relay::Relay;
use crate::core::repeats::{Repeat, Repeats};
use crate::core::session::Session;

impl Shard {
    /// `now` on the shard's clock.
    pub(crate) fn millis(&self, now: Instant) -> Millis {
        self.clock.millis(now)
    }

    /// Every session with its name, in no order.
    pub(crate) fn session_entries(&self) -> impl Iterator<Item = (&SessionName, &Session)> {
        self.sessions.iter()
    }

    /// Every open relay, in no order.
    pub(crate) fn relay_entries(&self) -> impl Iterator<Item = &Relay> {
        self.relays.iter()
    }

    /// The errors still to be repeated.
    pub(crate) fn repeats(&self) -> &Repeats {
        &self.repeats
    }

    /// Adopts session `name`, which must not be here: a new id, its players counted here and
    /// against the caps (whatever they are now), its name claimed in the fleet, listed in the
    /// directory if it is a public lobby, and its next deadline scheduled.
    pub(crate) fn adopt_session(&mut self, name: SessionName, mut session: Session) {
        session.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        session.timer_at = Millis::MAX;
        let players = session.players.len();
        self.players += players;
        self.caps.admit(session.owner, players);
        if let Some(replaced) = self.sessions.insert(name, session) {
            // Not for a state that decoded: its names are unique. Keep the counts right anyway.
            self.players_left(replaced.players.len());
            self.caps.close_session(replaced.owner);
        }
        self.directory.claim(name);
        self.schedule(name);
        self.relist(&name);
    }

    /// Adopts `relay` (see `Relays::adopt`); returns its ports.
    pub(crate) fn adopt_relay(&mut self, relay: Relay, now: Millis) -> Vec<u16> {
        self.relays.adopt(relay, now)
    }

    /// Adopts errors still to be repeated.
    pub(crate) fn adopt_repeats(&mut self, repeats: Vec<Repeat>) {
        self.repeats.adopt(repeats);
    }

    /// Takes `ports` out of this shard's free relay pool, if there.
    pub(crate) fn withhold_relay_ports(&mut self, ports: &HashSet<u16>) {
        self.relays.withhold(ports);
    }
}
