//! Relay fallback: when hole punching cannot work (both players behind NATs that pick a new
//! port per destination), the server forwards the peer phase and the game's traffic itself.
//!
//! How (docs/relay.md has the whole story):
//! - A relayed start message lists every peer `i` at `<relay ip>:R_i`, a port of the server's
//!   relay pool given to that player for the session. The client cannot tell it from a peer.
//! - A datagram arriving on `R_j` comes from some member `i`: known by the address `i` used
//!   towards `R_j` before, or learned from the name in a `g:`/`c:`/`y:` message sent from `i`'s
//!   IP (a client's NAT may give every relay port a different source port). It goes to `j`
//!   from `R_i`, at the address `j` last used towards `R_i`, or `j`'s rendezvous address until
//!   then. Greetings and confirmations are rewritten on the way ([`rewrite`]).
//! - Only members send through a relay, only to each other, within the byte budgets of the
//!   session and of the sender's IP ([`limits`]); an address is only ever learned for the IP the
//!   server saw the member at, so a forged datagram cannot send a player's traffic elsewhere.
//! - Relay ports belong to the shard of the session: a pool handed to it at start-up. A relay
//!   closes when its traffic has been idle for a while, or at the end of its lifetime; an empty
//!   pool means a direct start (counted), never a failure.
//!
//! The runtime owns the sockets; this module only decides.

mod auto;
mod expiry;
mod forward;
mod handover;
mod limits;
mod pool;
mod rewrite;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::bucket::{Bucket, Refill};
use super::clock::{ms, Millis};
use super::name::{PlayerName, SessionName};
use super::timers::Timers;
use crate::ip_key::IpKey;
use auto::AutoDecision;
pub(crate) use auto::RecentStarts;
pub(crate) use handover::RecentStartsState;
pub use limits::{RelayLimits, RelayLimitsConfig};
pub(crate) use pool::is_local_only;
pub use stats::RelayStats;

/// Which started sessions are relayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayMode {
    /// None: every start is direct, as with the original server.
    #[default]
    Off,
    /// A start of the same group of players as a start less than `auto_window` ago: the game
    /// retrying after a failed punch ([`auto`] has the rule and its limits).
    Auto,
    /// Every session.
    Always,
}

/// Relay settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    pub mode: RelayMode,
    /// The address start messages list for relay ports. `None`: the address the start request
    /// arrived on.
    pub public_ip: Option<IpAddr>,
    /// A relay with no datagram forwarded for this long closes.
    pub idle_timeout: Duration,
    /// A relay through which no member sent anything this long after its start closes: its
    /// players are not there (a start forged from other people's addresses, or clients that
    /// gave up), and its ports are better back in the pool.
    pub unused_timeout: Duration,
    /// A relay closes this long after its start, busy or not.
    pub lifetime: Duration,
    /// `auto` relays a start when two of its players started together less than this ago.
    pub auto_window: Duration,
    pub limits: RelayLimitsConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            mode: RelayMode::Off,
            public_ip: None,
            idle_timeout: Duration::from_secs(30),
            unused_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(60 * 60),
            auto_window: Duration::from_secs(60),
            limits: RelayLimitsConfig::default(),
        }
    }
}

/// The relays of one shard.
#[derive(Debug)]
pub(crate) struct Relays {
    settings: Settings,
    /// Ports no relay holds, the longest unused first: a port just closed is reused last, so
    /// stray datagrams for its old relay have died down.
    free: VecDeque<u16>,
    /// Port → (relay id, member index).
    ports: HashMap<u16, (u32, usize)>,
    relays: HashMap<u32, Relay>,
    next_id: u32,
    /// One live entry per relay, keyed by its id, at its `timer_at`; stale ones are skipped
    /// when popped.
    timers: Timers<u32>,
    limits: Arc<RelayLimits>,
    pub(crate) stats: RelayStats,
    /// No fallback is logged before this (see [`FALLBACK_WARNING_EVERY`]).
    pub(crate) next_fallback_warning: Millis,
    /// Whether the warning about an unreachable relay address was logged.
    pub(crate) warned_local_address: bool,
}

/// Fallback lines in the log are at least this far apart, per shard.
pub(crate) const FALLBACK_WARNING_EVERY: Millis = 60_000;

#[derive(Clone, Copy, Debug)]
struct Settings {
    mode: RelayMode,
    public_ip: Option<IpAddr>,
    idle: Millis,
    unused: Millis,
    lifetime: Millis,
    auto_window: Millis,
    /// The byte budget of one relayed session.
    session_rate: Refill,
}

/// One relayed session.
#[derive(Debug)]
pub(crate) struct Relay {
    session: SessionName,
    started: Millis,
    /// When a datagram was last forwarded; `None` until the first.
    last_forward: Option<Millis>,
    timer_at: Millis,
    bytes: Bucket,
    members: Vec<Member>,
}

#[derive(Debug)]
pub(crate) struct Member {
    name: PlayerName,
    /// Where the server saw it: its identity (the IP) and its address until it talks to a relay.
    addr: SocketAddr,
    ip: IpKey,
    port: u16,
    /// `towards[k]`: the address this member last sent from to member `k`'s relay port.
    towards: Vec<Option<SocketAddr>>,
}

impl Relays {
    pub(crate) fn new(config: &RelayConfig, ports: Vec<u16>, limits: Arc<RelayLimits>) -> Self {
        let stats = RelayStats {
            ports_total: ports.len() as u64,
            ..RelayStats::default()
        };
        Self {
            settings: Settings {
                mode: config.mode,
                public_ip: config.public_ip,
                idle: ms(config.idle_timeout),
                unused: ms(config.unused_timeout),
                lifetime: ms(config.lifetime),
                auto_window: ms(config.auto_window),
                session_rate: Refill::per_sec(limits.config().session_bytes_per_sec),
            },
            free: ports.into(),
            ports: HashMap::new(),
            relays: HashMap::new(),
            next_id: 0,
            timers: Timers::default(),
            limits,
            stats,
            next_fallback_warning: 0,
            warned_local_address: false,
        }
    }

    pub(crate) fn set_pool(&mut self, ports: Vec<u16>) {
        self.stats.ports_total = ports.len() as u64;
        self.free = ports.into();
    }

    /// See `Shard::check_invariants`.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let held: usize = self.relays.values().map(|r| r.members.len()).sum();
        if held != self.ports.len() || held as u64 != self.stats.ports_in_use {
            return Err(format!(
                "relays hold {held} ports, the port map {}, the stats {}",
                self.ports.len(),
                self.stats.ports_in_use
            ));
        }
        if (held + self.free.len()) as u64 != self.stats.ports_total {
            return Err(format!(
                "{held} ports held and {} free, of {}",
                self.free.len(),
                self.stats.ports_total
            ));
        }
        for (id, relay) in &self.relays {
            for (index, member) in relay.members.iter().enumerate() {
                if self.ports.get(&member.port) != Some(&(*id, index))
                    || self.free.contains(&member.port)
                {
                    return Err(format!(
                        "relay port {} is not held by its member",
                        member.port
                    ));
                }
            }
            if relay.timer_at == Millis::MAX || !self.timers.contains(relay.timer_at, *id) {
                return Err(format!(
                    "relay of session {} has no live timer",
                    relay.session
                ));
            }
        }
        Ok(())
    }

    /// Whether a start of `players` (name and address, host first) is to be relayed, as the
    /// mode says; `local_ip` is the address the start arrived on. `auto`'s decisions are counted.
    pub(crate) fn wanted(
        &mut self,
        players: &[(PlayerName, SocketAddr)],
        local_ip: Option<IpAddr>,
        now: Millis,
    ) -> bool {
        match self.settings.mode {
            RelayMode::Off => false,
            RelayMode::Always => true,
            RelayMode::Auto => {
                let own: Vec<IpAddr> = local_ip
                    .into_iter()
                    .chain(self.settings.public_ip)
                    .collect();
                let players: Vec<_> = players.iter().map(|(n, a)| (*n, a.ip())).collect();
                let decision = self.limits.recent_starts.decide(
                    &players,
                    &own,
                    now,
                    self.settings.auto_window,
                );
                match decision {
                    AutoDecision::Retry => self.stats.auto_retries += 1,
                    AutoDecision::Local => self.stats.auto_direct_local += 1,
                    AutoDecision::NewGroup => self.stats.auto_direct_new += 1,
                }
                decision == AutoDecision::Retry
            }
        }
    }
}
