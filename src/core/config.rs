//! The durations and counts of the protocol, as server settings with the protocol's defaults,
//! and the same in shard milliseconds as the shard reads them.

use std::time::Duration;

use super::caps::CapsConfig;
use super::clock::{ms, Millis};
use super::relay::RelayConfig;

/// Settings of the session core. The defaults are those of the original server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// A player not heard from for this long is removed (`error:player_timeout`).
    pub player_timeout: Duration,
    /// A session is deleted this long after its creation (`error:session_timeout`).
    pub session_lifetime: Duration,
    /// Time between two sends of the start message.
    pub start_interval: Duration,
    /// How many times the start message is sent to an unconfirmed player, the first included.
    /// The session is forgotten `start_sends x start_interval` after the start.
    pub start_sends: u8,
    /// How many times `error:player_timeout` and `error:session_timeout` are sent.
    pub error_repeats: u8,
    /// Time between two sends of a repeated error.
    pub error_repeat_interval: Duration,
    /// Caps on sessions and players (abuse resistance).
    pub caps: CapsConfig,
    /// Which started sessions the server relays, and the limits on relaying.
    pub relay: RelayConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            player_timeout: Duration::from_secs(5),
            session_lifetime: Duration::from_secs(15 * 60),
            start_interval: Duration::from_millis(100),
            start_sends: 8,
            error_repeats: 3,
            error_repeat_interval: Duration::from_millis(50),
            caps: CapsConfig::default(),
            relay: RelayConfig::default(),
        }
    }
}

/// [`CoreConfig`] in shard milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) player_timeout: Millis,
    pub(crate) session_lifetime: Millis,
    pub(crate) start_interval: Millis,
    pub(crate) start_sends: u8,
    pub(crate) error_repeats: u8,
    pub(crate) error_repeat_interval: Millis,
}

impl Settings {
    pub(crate) fn new(config: &CoreConfig) -> Self {
        Self {
            player_timeout: ms(config.player_timeout),
            session_lifetime: ms(config.session_lifetime),
            start_interval: ms(config.start_interval),
            start_sends: config.start_sends.max(1),
            error_repeats: config.error_repeats,
            error_repeat_interval: ms(config.error_repeat_interval),
        }
    }
}
