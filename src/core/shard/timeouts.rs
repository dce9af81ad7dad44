//! Everything that happens because time passed: the rounds of the start message, forgetting a
//! started session, the player timeout and the session lifetime.
//!
//! Each session has one live entry in the shard's [`Timers`](crate::core::timers), at the
//! earliest of its deadlines (`Session::timer_at`). A ping only pushes a deadline later, so it
//! does not touch the heap: the entry fires at the old time, finds nothing due yet, and is
//! pushed again at the new earliest deadline. Entries left behind (a session deleted, or
//! rescheduled earlier at its start) are skipped when popped.

use std::time::Instant;

use log::info;

use super::Shard;
use crate::core::clock::Millis;
use crate::core::config::Settings;
use crate::core::name::SessionName;
use crate::core::session::Session;
use crate::outbox::Outbox;
use crate::wire::ErrorCode;

impl Session {
    /// The earliest instant at which something may happen to this session on its own.
    fn next_deadline(&self, settings: &Settings) -> Millis {
        match self.start {
            // The next round, or forgetting the session once every round went out.
            Some(start) => start.at + u64::from(start.rounds_sent) * settings.start_interval,
            None => {
                let oldest = self.players.iter().map(|p| p.last_seen).min();
                let lifetime_end = self.created + settings.session_lifetime;
                oldest.map_or(lifetime_end, |seen| {
                    lifetime_end.min(seen + settings.player_timeout)
                })
            }
        }
    }
}

impl Shard {
    /// When [`handle_timeout`](Self::handle_timeout) next has something to do, if ever.
    pub fn next_timeout(&self) -> Option<Instant> {
        let at = [
            self.timers.next_due(),
            self.repeats.next_due(),
            self.relays.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(self.clock.instant(at))
    }

    /// Does everything due at `now`, queueing what must be sent in `out`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) {
        let now = self.clock.millis(now);
        while let Some((at, (id, name))) = self.timers.pop_due(now) {
            self.fire(now, at, id, name, out);
        }
        let interval = self.config.error_repeat_interval;
        self.repeats.send_due(now, interval, out);
        self.expire_relays(now);
    }

    /// The process was frozen for `paused`, up to `now` (a hand-over that failed, then thawed):
    /// nobody could be heard from meanwhile, their requests waited in the kernel, so that time
    /// does not count against any player. Each player's last-seen moves later by `paused`
    /// (never past `now`); the session timers fire at their old instants, find nothing due and
    /// move on. Called before the thawed shard handles anything, this is what keeps a player
    /// whose pings queued up during the freeze from timing out before they are read.
    pub fn forgive_pause(&mut self, now: Instant, paused: std::time::Duration) {
        let now = self.clock.millis(now);
        let paused = paused.as_millis() as Millis;
        let names: Vec<SessionName> = self.sessions.iter().map(|(name, _)| *name).collect();
        for name in names {
            if let Some(session) = self.sessions.get_mut(&name) {
                for player in &mut session.players {
                    player.last_seen = (player.last_seen + paused).min(now);
                }
            }
        }
    }

    /// (Re)schedules the timer of session `name` at its next deadline, if that is earlier than its
    /// live entry.
    pub(super) fn schedule(&mut self, name: SessionName) {
        let settings = self.config;
        let Some(session) = self.sessions.get_mut(&name) else {
            return;
        };
        let at = session.next_deadline(&settings);
        if at < session.timer_at {
            session.timer_at = at;
            self.timers.push(at, (session.id, name));
        }
    }

    /// Handles the timer entry of session `name` (of id `id`) at `at`, unless it is stale.
    fn fire(&mut self, now: Millis, at: Millis, id: u32, name: SessionName, out: &mut Outbox) {
        let Some(session) = self.sessions.get_mut(&name) else {
            return;
        };
        if session.id != id || session.timer_at != at {
            return; // stale entry
        }
        session.timer_at = Millis::MAX;
        if session.start.is_some() {
            self.advance_start(now, name, out);
        } else {
            self.expire(now, name, out);
        }
        self.schedule(name);
    }

    /// Sends the next round of the start message, or forgets the session after the last one.
    fn advance_start(&mut self, now: Millis, name: SessionName, out: &mut Outbox) {
        let settings = self.config;
        let Some(session) = self.sessions.get_mut(&name) else {
            return;
        };
        let Some(start) = session.start.as_mut() else {
            return;
        };
        let due = start.at + u64::from(start.rounds_sent) * settings.start_interval;
        if now < due {
            return;
        }
        if start.rounds_sent < settings.start_sends {
            start.rounds_sent += 1;
            session.send_start_round(out);
            return;
        }
        let confirmed = session.players.iter().filter(|p| p.confirmed).count();
        let total = session.players.len();
        self.remove_session(&name);
        info!("session {name} forgotten after its start ({confirmed}/{total} players confirmed)");
    }

    /// Ends the session at the end of its lifetime, and removes players not heard from.
    fn expire(&mut self, now: Millis, name: SessionName, out: &mut Outbox) {
        let settings = self.config;
        let Some(session) = self.sessions.get_mut(&name) else {
            return;
        };
        if now >= session.created + settings.session_lifetime {
            for player in &session.players {
                self.repeats.send(
                    now,
                    settings.error_repeat_interval,
                    player.addr,
                    ErrorCode::SessionTimeout,
                    settings.error_repeats,
                    out,
                );
            }
            self.remove_session(&name);
            self.stats.sessions_timed_out += 1;
            info!("session {name} timed out (lifetime ended)");
            return;
        }
        let before = session.players.len();
        let repeats = &mut self.repeats;
        session.players.retain(|player| {
            let alive = now < player.last_seen + settings.player_timeout;
            if !alive {
                repeats.send(
                    now,
                    settings.error_repeat_interval,
                    player.addr,
                    ErrorCode::PlayerTimeout,
                    settings.error_repeats,
                    out,
                );
                info!(
                    "player {} at {} timed out of session {name}",
                    player.name, player.addr
                );
            }
            alive
        });
        let removed = before - session.players.len();
        if removed == 0 {
            return;
        }
        session.broadcast_info(out);
        self.stats.players_timed_out += removed as u64;
        self.players_removed(&name, removed);
    }
}
