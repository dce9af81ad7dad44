//! What the shard's relays need of the shard: a start that may be relayed, the datagrams of its
//! relay ports, and the relays' deadlines. The relays themselves are in [`crate::core::relay`].

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{info, warn};

use super::Shard;
use crate::core::clock::Millis;
use crate::core::name::SessionName;
use crate::core::relay::{is_local_only, RelayStats, FALLBACK_WARNING_EVERY};
use crate::outbox::Outbox;

impl Shard {
    /// Handles a datagram that arrived on relay port `port` (see the [relay module](crate::core::relay) docs).
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
    pub(super) fn open_relay(
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
    pub(super) fn expire_relays(&mut self, now: Millis) {
        self.relays.handle_timeout(now);
    }
}
