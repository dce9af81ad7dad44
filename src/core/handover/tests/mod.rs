//! The hand-over on a fake clock: a server of several shards driven as the runtime drives it,
//! handed over to a server of another shard count, and both fed the same inputs after
//! (`scenario.rs`); and encodings that must be refused (`garbage.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{export_shard, export_shared, State};
use crate::core::{Clock, CoreConfig, FrontDoor, RelayConfig, RelayMode, Shard, Shared, Verdict};
use crate::outbox::Outbox;
use crate::wire::lobby::write_extension_error;

mod garbage;
mod scenario;

/// The address relayed starts list.
const RELAY_IP: &str = "203.0.113.7";

/// What was sent, sorted: (ms since the start, relay port it leaves from or 0, to, payload).
type Sent = Vec<(u64, u16, SocketAddr, String)>;

/// Player `n`'s address: IP 198.51.100.n, port 40000 + n.
fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, n as u8], 40000 + n))
}

/// Player `n`'s NAT mapping towards a relay port: its IP, another port.
fn mapped(n: u16) -> SocketAddr {
    SocketAddr::new(addr(n).ip(), 41000 + n)
}

/// The test's settings: a session lifetime of a minute (so a test sees it end), relays listed
/// at [`RELAY_IP`], a relayed session's budget of 100 bytes a second (so a test can spend it).
fn config(mode: RelayMode) -> CoreConfig {
    CoreConfig {
        session_lifetime: Duration::from_secs(60),
        relay: RelayConfig {
            mode,
            public_ip: Some(RELAY_IP.parse().unwrap()),
            limits: crate::core::RelayLimitsConfig {
                session_bytes_per_sec: 100,
                ..Default::default()
            },
            ..RelayConfig::default()
        },
        ..CoreConfig::default()
    }
}

/// A server of several shards on a fake clock: one front door, one shared state, relay ports
/// split between the shards, as the runtime builds it.
struct Cluster {
    config: CoreConfig,
    shared: Shared,
    door: FrontDoor,
    shards: Vec<Shard>,
    /// Relay port → the shard holding it (the worker that reads its socket).
    port_owner: HashMap<u16, usize>,
    out: Outbox,
    sent: Sent,
    start: Instant,
    now: Instant,
}

/// `pool` dealt out to `n` shards, one port each in turn.
fn shares(pool: &[u16], n: usize) -> Vec<Vec<u16>> {
    (0..n)
        .map(|i| pool.iter().copied().skip(i).step_by(n).collect())
        .collect()
}

impl Cluster {
    fn new(config: CoreConfig, start: Instant, n: usize, pool: &[u16]) -> Self {
        let shared = Shared::new(&config, start);
        let shares = shares(pool, n);
        let shards = shares
            .iter()
            .map(|share| Shard::with_shared(&config, &shared).with_relay_pool(share.clone()))
            .collect();
        Self::assemble(
            config,
            shared,
            FrontDoor::new(n),
            shards,
            &shares,
            start,
            start,
        )
    }

    fn assemble(
        config: CoreConfig,
        shared: Shared,
        door: FrontDoor,
        shards: Vec<Shard>,
        ports: &[Vec<u16>],
        start: Instant,
        now: Instant,
    ) -> Self {
        let port_owner = ports
            .iter()
            .enumerate()
            .flat_map(|(i, ports)| ports.iter().map(move |&p| (p, i)))
            .collect();
        Self {
            config,
            shared,
            door,
            shards,
            port_owner,
            out: Outbox::new(),
            sent: Vec::new(),
            start,
            now,
        }
    }

    /// Hands everything over, through bytes, to a new server of `n` shards sharing out `pool`
    /// (less the ports of relays in the state), on a clock continuing this one.
    fn handover(&self, n: usize, pool: &[u16]) -> Cluster {
        let shared_bytes = export_shared(&self.shared, self.now);
        let shard_bytes: Vec<Vec<u8>> = self
            .shards
            .iter()
            .map(|s| export_shard(s, self.now))
            .collect();
        let state = State::decode(&shared_bytes, &shard_bytes).expect("decodes");
        let held = state.relay_ports();
        let clock = Clock::continuing(state.clock_millis(), self.now);
        assert_eq!(clock, self.shared.clock, "the clock continues");
        let shared = Shared::on_clock(&self.config, clock);
        let free: Vec<u16> = pool.iter().copied().filter(|p| !held.contains(p)).collect();
        let mut shares = shares(&free, n);
        let mut shards: Vec<Shard> = shares
            .iter()
            .map(|share| Shard::with_shared(&self.config, &shared).with_relay_pool(share.clone()))
            .collect();
        let door = FrontDoor::new(n);
        let extra = state.restore(&shared, &door, &mut shards);
        for (share, extra) in shares.iter_mut().zip(extra) {
            share.extend(extra);
        }
        let config = self.config.clone();
        Self::assemble(config, shared, door, shards, &shares, self.start, self.now)
    }

    fn ms(&self) -> u64 {
        (self.now - self.start).as_millis() as u64
    }

    /// Moves what the shards queued into `sent`, checking every shard's invariants.
    fn collect(&mut self) {
        for (i, shard) in self.shards.iter().enumerate() {
            if let Err(broken) = shard.check_invariants() {
                panic!("shard {i}: invariant broken: {broken}");
            }
        }
        let t = self.ms();
        let sent = self.out.iter_via().map(|(via, to, p)| {
            let payload = String::from_utf8_lossy(p).into_owned();
            (t, via, to, payload)
        });
        self.sent.extend(sent);
        self.out.clear();
    }

    /// Everything sent since the last call, sorted (shards of two servers send in different
    /// orders: what counts is what is sent, and when).
    fn take(&mut self) -> Sent {
        self.collect();
        let mut sent = std::mem::take(&mut self.sent);
        sent.sort();
        sent
    }

    /// `from` sends `text` to the server port: through the front door, to its shard or the
    /// directory, as in the server.
    fn send(&mut self, from: SocketAddr, text: &str) {
        let now = self.now;
        match self.door.handle(from, None, text.as_bytes(), false) {
            Verdict::Route { shard, routed } => self.shards[shard].handle(
                now,
                routed.from,
                routed.local,
                &routed.request,
                &mut self.out,
            ),
            Verdict::Lobby { shard, routed } => {
                self.shards[shard].handle_lobby(now, &routed, &mut self.out)
            }
            Verdict::Directory { from, query } => {
                let directory = &self.shared.directory;
                self.out
                    .push_unless_empty(from, |buf| directory.answer(&query, now, buf));
            }
            Verdict::Reply { to, error } => self.out.push_error(to, error),
            Verdict::ReplyLobby { to, error } => self
                .out
                .push_with(to, |buf| write_extension_error(buf, error)),
            Verdict::Drop(_) => {}
        }
        self.collect();
    }

    /// `from` sends `text` to relay port `port`, read by the worker holding it.
    fn relay(&mut self, port: u16, from: SocketAddr, text: &str) {
        let shard = self.port_owner[&port];
        let now = self.now;
        self.shards[shard].handle_relayed(now, port, from, text.as_bytes(), &mut self.out);
        self.collect();
    }

    /// Moves the clock to `t` ms since the start, waking the shards at each deadline on the
    /// way, as the workers do.
    fn advance_to(&mut self, t: u64) {
        let target = self.start + Duration::from_millis(t);
        loop {
            let next = self.shards.iter().filter_map(Shard::next_timeout).min();
            match next {
                Some(deadline) if deadline <= target => self.wake(self.now.max(deadline)),
                _ => break,
            }
        }
        self.wake(target.max(self.now));
    }

    fn wake(&mut self, now: Instant) {
        self.now = now;
        for shard in &mut self.shards {
            shard.handle_timeout(now, &mut self.out);
        }
        self.collect();
    }

    /// What must agree between two servers holding the same sessions: the counts, the caps',
    /// the relay limits' and the directory's listings, in their order.
    fn summary(&self) -> String {
        let sessions: usize = self.shards.iter().map(Shard::sessions).sum();
        let players: usize = self.shards.iter().map(Shard::players).sum();
        let caps = &self.shared.caps;
        let owners: Vec<usize> = (1..=30)
            .map(|n| caps.sessions_of(crate::ip_key::IpKey::from(addr(n).ip())))
            .collect();
        let limits = &self.shared.relay_limits;
        let relayed: Vec<u32> = (1..=30)
            .map(|n| limits.sessions_of(crate::ip_key::IpKey::from(addr(n).ip())))
            .collect();
        let mut listings = Vec::new();
        for query in ["l:", &format!("b:1:cards::::n::{}", "x".repeat(200))] {
            let Verdict::Directory { query, .. } =
                self.door.handle(addr(30), None, query.as_bytes(), false)
            else {
                panic!("{query} is a directory query");
            };
            self.shared
                .directory
                .answer(&query, self.now, &mut listings);
            listings.push(b'\n');
        }
        format!(
            "{sessions} sessions, {players} players; caps {} {} {owners:?}; relayed {} {relayed:?}\n{}",
            caps.sessions(),
            caps.players(),
            limits.ips_in_use(),
            String::from_utf8_lossy(&listings)
        )
    }
}

/// The relay port of each player of a relayed start, from the start messages in `sent`.
fn relay_ports(sent: &Sent) -> HashMap<String, u16> {
    let mut ports = HashMap::new();
    for (_, _, _, payload) in sent {
        let Some(peers) = payload.strip_prefix("s:") else {
            continue;
        };
        let Some((_, peers)) = peers.split_once(':') else {
            continue;
        };
        for peer in peers.split(';') {
            let fields: Vec<&str> = peer.split(':').collect();
            if let [name, ip, port] = fields[..] {
                if ip == RELAY_IP {
                    ports.insert(name.to_string(), port.parse().unwrap());
                }
            }
        }
    }
    ports
}
