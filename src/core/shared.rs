//! What the shards of one server share, handed to each of them explicitly: the clock, the caps,
//! the relay limits and the lobby directory.
//!
//! Each of these counts something across shards; [`Caps`] and [`RelayLimits`] are locked maps
//! and atomics touched when a session, a player or a relay comes or goes (and once per relayed
//! datagram for its sender's byte budget), never on a ping. The relay limits store times, so the
//! shards must read one clock: it is made once, here, rather than each shard taking its own
//! epoch and counting on them all starting at the same instant.

use std::sync::Arc;
use std::time::Instant;

use super::caps::Caps;
use super::clock::Clock;
use super::config::CoreConfig;
use super::directory::Directory;
use super::relay::RelayLimits;

/// The state the shards of one server share. Cloning it shares it.
#[derive(Clone, Debug)]
pub struct Shared {
    pub clock: Clock,
    pub caps: Arc<Caps>,
    pub relay_limits: Arc<RelayLimits>,
    /// The lobby directory: every shard's public open lobbies.
    pub directory: Arc<Directory>,
}

impl Shared {
    /// Fresh shared state for shards of `config`, on a clock whose epoch is `epoch`.
    pub fn new(config: &CoreConfig, epoch: Instant) -> Self {
        Self::on_clock(config, Clock::new(epoch))
    }

    /// Fresh shared state on `clock`, the one the send budgets read too.
    pub fn on_clock(config: &CoreConfig, clock: Clock) -> Self {
        Self {
            clock,
            caps: Arc::new(Caps::new(config.caps)),
            relay_limits: Arc::new(RelayLimits::new(config.relay.limits)),
            directory: Arc::new(Directory::new()),
        }
    }
}
