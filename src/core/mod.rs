//! The session core: the protocol as pure state machines.
//!
//! Nothing here touches a socket or reads the clock. The runtime passes every datagram through
//! the [`FrontDoor`], which says which shard a request is for (parsed once), what to answer
//! garbage, or to drop it. It hands each [`Shard`] its requests with the current time
//! ([`Shard::handle_requests`]), tells it when its deadline passed ([`Shard::handle_timeout`]),
//! asks when it next needs waking ([`Shard::next_timeout`]) and sends what the shard put in the
//! [`Outbox`](crate::outbox::Outbox). So every rule and every timeout of the protocol is a unit
//! test with a made-up clock ([`testing::Driver`]).
//!
//! Where each rule lives:
//! - [`front`]: the front door: what a datagram is (a request for shard `i`, garbage to answer,
//!   or nothing to answer), parsed once;
//! - [`shard`]: the [`Shard`] type, with the table of requests (checks in order, errors,
//!   replies), host migration and the "heard from" rule, and its timeouts (start re-sends, the
//!   player timeout and the session lifetime);
//! - [`config`]: the protocol's durations and counts, and the caps and relay settings;
//! - [`timers`]: the timer heap that sessions and relays keep their deadlines in;
//! - [`session`]: what one session holds, and the `i:` and `s:` messages built from it;
//! - [`repeats`]: errors sent several times (`player_timeout`, `session_timeout`);
//! - [`shared`]: what the shards share: one clock, the [`caps`] on sessions and players
//!   (abuse resistance) and the relay limits;
//! - [`bucket`]: the token bucket of the relay limits and of the send budgets;
//! - [`relay`]: the relay fallback for players whose NATs cannot be punched;
//! - [`directory`]: the lobby directory, shared by the shards like the caps; [`lobby`]: its
//!   requests as the front door routes them, and the shard's side in `shard/lobby.rs`;
//! - [`handover`]: hot restart: every shard's state and the shared parts to bytes, and back
//!   into the shards of a successor process;
//! - [`testing`]: a shard on a fake clock, for tests and fuzzers.

mod bucket;
mod caps;
mod clock;
mod config;
pub mod directory;
mod front;
pub mod handover;
mod lobby;
mod name;
mod relay;
mod repeats;
mod session;
mod session_map;
mod shard;
mod shared;
pub mod testing;
mod timers;

pub(crate) use bucket::{Bucket, Refill};
pub use caps::{CapHit, Caps, CapsConfig};
pub use clock::Clock;
pub use config::CoreConfig;
pub use directory::Directory;
pub use front::{
    Command, Dropped, FrontDoor, ParsedRequest, Routed, Verdict, MIN_ANSWERED_GARBAGE,
};
pub use lobby::{DirectoryQuery, LobbyCommand, LobbyRouted};
pub use name::{Password, PlayerName, SessionName, ShortName};
pub use relay::{RelayConfig, RelayLimits, RelayLimitsConfig, RelayMode, RelayStats};
pub use shard::{Incoming, Shard, ShardStats};
pub use shared::Shared;

#[cfg(test)]
mod tests;
