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
mod bucket;
mod limits;
mod rewrite;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::clock::{ms, Millis};
use super::name::{PlayerName, SessionName};
use super::shard::Shard;
use crate::ip_key::IpKey;
use crate::outbox::Outbox;
use auto::AutoDecision;
use bucket::Bucket;
pub use limits::{RelayLimits, RelayLimitsConfig};

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

/// Counters of a shard's relays, for the stats line and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Sessions started through the relay.
    pub sessions_relayed: u64,
    /// Starts that should have been relayed but went direct: pool empty, an IP at its cap, or no
    /// address to list.
    pub fallbacks: u64,
    pub closed_idle: u64,
    pub closed_lifetime: u64,
    /// Relays closed because no member sent through them within `unused_timeout`.
    pub closed_unused: u64,
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams on a relay's port that no member sent.
    pub dropped_strangers: u64,
    /// Datagrams on a port of the pool that no relay holds: mostly greetings aimed at the
    /// neighbours of a relay port (the peer phase tries 8 ports each side), or a port scan.
    pub dropped_unheld_port: u64,
    /// Datagrams over the byte budget of their session or of their sender's IP.
    pub dropped_budget: u64,
    /// Relay ports held by open relays now.
    pub ports_in_use: u64,
    /// Relay ports this shard was given.
    pub ports_total: u64,
    /// Starts `auto` took for a retry of the same group, and relayed (or tried to: a fallback
    /// is counted in `fallbacks` too).
    pub auto_retries: u64,
    /// Starts `auto` left direct because every player is on the server's own machine.
    pub auto_direct_local: u64,
    /// Starts `auto` left direct because no recent start had two of their players.
    pub auto_direct_new: u64,
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
    /// One live entry per relay, at its `timer_at`; stale ones are skipped when popped.
    timers: BinaryHeap<Reverse<(Millis, u32)>>,
    limits: Arc<RelayLimits>,
    pub(crate) stats: RelayStats,
    /// No fallback is logged before this (see [`FALLBACK_WARNING_EVERY`]).
    next_fallback_warning: Millis,
    /// Whether the warning about an unreachable relay address was logged.
    warned_local_address: bool,
}

/// Whether `ip` can only be reached from its own network: loopback, private (RFC 1918),
/// carrier-grade NAT (100.64/10), link-local, or IPv6 unique-local.
fn is_local_only(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Fallback lines in the log are at least this far apart, per shard.
const FALLBACK_WARNING_EVERY: Millis = 60_000;

#[derive(Clone, Copy, Debug)]
struct Settings {
    mode: RelayMode,
    public_ip: Option<IpAddr>,
    idle: Millis,
    unused: Millis,
    lifetime: Millis,
    auto_window: Millis,
    session_rate: u64,
}

/// One relayed session.
#[derive(Debug)]
struct Relay {
    session: SessionName,
    started: Millis,
    /// When a datagram was last forwarded; `None` until the first.
    last_forward: Option<Millis>,
    timer_at: Millis,
    bytes: Bucket,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    name: PlayerName,
    /// Where the server saw it: its identity (the IP) and its address until it talks to a relay.
    addr: SocketAddr,
    ip: IpKey,
    port: u16,
    /// `towards[k]`: the address this member last sent from to member `k`'s relay port.
    towards: Vec<Option<SocketAddr>>,
}

fn same_ip(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical()
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
                session_rate: limits.config().session_bytes_per_sec,
            },
            free: ports.into(),
            ports: HashMap::new(),
            relays: HashMap::new(),
            next_id: 0,
            timers: BinaryHeap::new(),
            limits,
            stats,
            next_fallback_warning: 0,
            warned_local_address: false,
        }
    }

    pub(crate) fn set_pool(&mut self, ports: Vec<u16>, limits: Arc<RelayLimits>) {
        self.stats.ports_total = ports.len() as u64;
        self.free = ports.into();
        self.limits = limits;
    }

    /// See [`Shard::check_invariants`].
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
            if relay.timer_at == Millis::MAX
                || !self
                    .timers
                    .iter()
                    .any(|Reverse(t)| *t == (relay.timer_at, *id))
            {
                return Err(format!(
                    "relay of session {} has no live timer",
                    relay.session
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Whether a start of `players` (name and address, host first) is to be relayed, as the
    /// mode says; `local_ip` is the address the start arrived on. `auto`'s decisions are counted.
    fn wanted(
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

    /// Opens a relay for `players` (name and address, host first). Returns the address to list
    /// and each player's relay port, or why it could not.
    fn try_open(
        &mut self,
        now: Millis,
        session: SessionName,
        players: &[(PlayerName, SocketAddr)],
        local_ip: Option<IpAddr>,
    ) -> Result<(IpAddr, Vec<u16>), &'static str> {
        let ip = self
            .settings
            .public_ip
            .or(local_ip)
            .ok_or("no address to list (set --relay-public-ip)")?
            .to_canonical();
        if self.free.len() < players.len() {
            return Err("relay port pool exhausted");
        }
        let ips: Vec<IpKey> = players.iter().map(|(_, a)| IpKey::from(a.ip())).collect();
        if !self.limits.try_join(&ips, now) {
            return Err("an IP of the session is at its relayed sessions cap");
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let ports: Vec<u16> = self.free.drain(..players.len()).collect();
        let members = players
            .iter()
            .zip(&ports)
            .zip(ips)
            .enumerate()
            .map(|(index, (((name, addr), &port), ip))| {
                self.ports.insert(port, (id, index));
                Member {
                    name: *name,
                    addr: *addr,
                    ip,
                    port,
                    towards: vec![None; players.len()],
                }
            })
            .collect();
        let relay = Relay {
            session,
            started: now,
            last_forward: None,
            timer_at: Millis::MAX,
            bytes: Bucket::full(self.settings.session_rate, now),
            members,
        };
        self.relays.insert(id, relay);
        self.schedule(id);
        self.stats.sessions_relayed += 1;
        self.stats.ports_in_use += ports.len() as u64;
        Ok((ip, ports))
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
    fn schedule(&mut self, id: u32) {
        let Some(relay) = self.relays.get(&id) else {
            return;
        };
        let at = self.deadline(relay);
        if let Some(relay) = self.relays.get_mut(&id) {
            if at < relay.timer_at {
                relay.timer_at = at;
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Closes the relays whose deadline passed.
    fn handle_timeout(&mut self, now: Millis) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
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

    fn close(&mut self, id: u32, why: &str) {
        let Some(relay) = self.relays.remove(&id) else {
            return;
        };
        let ips: Vec<IpKey> = relay.members.iter().map(|m| m.ip).collect();
        self.limits.leave(&ips);
        for member in &relay.members {
            self.ports.remove(&member.port);
            self.free.push_back(member.port);
        }
        self.stats.ports_in_use -= relay.members.len() as u64;
        info!("relay of session {} closed: {why}", relay.session);
    }

    /// Forwards a datagram that arrived on relay port `port` from `from`, if a member sent it,
    /// to its peer, through `out` (leaving from the sender's relay port).
    fn forward(
        &mut self,
        now: Millis,
        port: u16,
        from: SocketAddr,
        payload: &[u8],
        out: &mut Outbox,
    ) {
        let Some(&(id, to)) = self.ports.get(&port) else {
            self.stats.dropped_unheld_port += 1;
            return;
        };
        let Some(relay) = self.relays.get_mut(&id) else {
            self.stats.dropped_strangers += 1;
            return;
        };
        let Some(sender) = relay.identify(to, from, payload) else {
            self.stats.dropped_strangers += 1;
            return;
        };
        let bytes = payload.len() as u64;
        // The session's budget is only spent when the sender's IP can pay too: a member whose
        // IP is out of budget (its other relays) must not drain its session's for nothing.
        let paid = relay.bytes.can_take(bytes, self.settings.session_rate, now)
            && self
                .limits
                .try_spend(relay.members[sender].ip, payload.len(), now)
            && relay.bytes.try_take(bytes, self.settings.session_rate, now);
        if !paid {
            self.stats.dropped_budget += 1;
            return;
        }
        let first = relay.last_forward.replace(now).is_none();
        let receiver = &relay.members[to];
        let dest = receiver.towards[sender].unwrap_or(receiver.addr);
        let receiver_port = receiver.addr.port();
        let via = relay.members[sender].port;
        out.push_via_with(via, dest, |buf| {
            rewrite::rewrite(payload, receiver_port, via, buf)
        });
        self.stats.datagrams += 1;
        self.stats.bytes += bytes;
        if first {
            // From `unused` after the start to `idle` after now, which may come sooner.
            self.schedule(id);
        }
    }
}

impl Relay {
    /// Which member sent `payload` from `from` to member `to`'s relay port, learning the
    /// address when it is new (see the [module](self) docs).
    fn identify(&mut self, to: usize, from: SocketAddr, payload: &[u8]) -> Option<usize> {
        let known = self
            .members
            .iter()
            .position(|m| m.towards[to] == Some(from));
        if let Some(sender) = known.filter(|&i| i != to) {
            return Some(sender);
        }
        let sender = match rewrite::peer_sender(payload) {
            // A peer-phase message names its sender and the sender's own port: both must be a
            // member's, from its IP. Anything else (a greeting aimed at a neighbouring port of
            // another session's relay, even from a namesake behind the same NAT) is nobody's.
            Some((name, port)) => self
                .members
                .iter()
                .position(|m| {
                    m.name.as_str().as_bytes() == name
                        && port == Some(m.addr.port())
                        && same_ip(m.addr, from)
                })
                .filter(|&i| i != to),
            // A member's NAT may map it anew (game traffic after a pause): its IP, when no other
            // member shares it, still tells who it is.
            None => {
                let mut at_ip = (0..self.members.len())
                    .filter(|&i| i != to && same_ip(self.members[i].addr, from));
                match (at_ip.next(), at_ip.next()) {
                    (Some(i), None) => Some(i),
                    _ => None,
                }
            }
        }?;
        self.members[sender].towards[to] = Some(from);
        Some(sender)
    }
}

impl Shard {
    /// Handles a datagram that arrived on relay port `port` (see the [module](self) docs).
    pub fn handle_relayed(
        &mut self,
        now: Instant,
        port: u16,
        from: SocketAddr,
        payload: &[u8],
        out: &mut Outbox,
    ) {
        let now = self.clock.millis(now);
        self.relays.forward(now, port, from, payload, out);
    }

    /// What this shard's relays did so far, and hold now.
    pub fn relay_stats(&self) -> RelayStats {
        self.relays.stats
    }

    /// Relays the start of session `name` if the policy wants it and a relay can open: gives
    /// its players their relay ports and returns the address to list. `local_ip` is the
    /// address the start request arrived on.
    pub(crate) fn open_relay(
        &mut self,
        now: Millis,
        name: SessionName,
        local_ip: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let session = self.sessions.get_mut(&name)?;
        let players: Vec<_> = session.players.iter().map(|p| (p.name, p.addr)).collect();
        if !self.relays.wanted(&players, local_ip, now) {
            return None;
        }
        match self.relays.try_open(now, name, &players, local_ip) {
            Ok((ip, ports)) => {
                for (player, port) in session.players.iter_mut().zip(ports) {
                    player.relay_port = port;
                }
                info!("session {name} relayed through {ip}");
                let outsider = players.iter().any(|(_, a)| !is_local_only(a.ip()));
                if is_local_only(ip) && outsider && !self.relays.warned_local_address {
                    self.relays.warned_local_address = true;
                    warn!(
                        "relay: session {name} lists relay ports at {ip}, an address players \
                         on the internet cannot reach, although some of them come from there; \
                         behind 1:1 NAT (most cloud boxes) set --relay-public-ip to the public \
                         address (said once)"
                    );
                }
                Some(ip)
            }
            Err(why) => {
                self.relays.stats.fallbacks += 1;
                // At most one line a minute per shard: a flood of starts must not flood the log.
                // The count is in the stats line and the metrics.
                if now >= self.relays.next_fallback_warning {
                    self.relays.next_fallback_warning = now + FALLBACK_WARNING_EVERY;
                    warn!(
                        "session {name} starts direct instead of relayed: {why} ({} fallbacks \
                         so far in this shard; at most one such line a minute)",
                        self.relays.stats.fallbacks
                    );
                }
                None
            }
        }
    }

    /// Closes the relays whose deadline passed.
    pub(crate) fn expire_relays(&mut self, now: Millis) {
        self.relays.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod address_tests {
    use super::is_local_only;

    #[test]
    fn addresses_the_internet_cannot_reach_are_told_apart() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_local_only(local.parse().unwrap()), "{local}");
        }
        for public in [
            "203.0.113.7",
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            assert!(!is_local_only(public.parse().unwrap()), "{public}");
        }
    }
}
