//! The relay port pool: opening a relay gives each member a port of the shard's pool, closing it
//! gives them back.

use std::net::{IpAddr, SocketAddr};

use log::info;

use super::{Member, Relay, Relays};
use crate::core::bucket::Bucket;
use crate::core::clock::Millis;
use crate::core::name::{PlayerName, SessionName};
use crate::ip_key::IpKey;

/// Whether `ip` can only be reached from its own network: loopback, private (RFC 1918),
/// carrier-grade NAT (100.64/10), link-local, or IPv6 unique-local.
pub(crate) fn is_local_only(ip: IpAddr) -> bool {
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

impl Relays {
    /// Opens a relay for `players` (name and address, host first). Returns the address to list
    /// and each player's relay port, or why it could not.
    pub(crate) fn try_open(
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

    pub(super) fn close(&mut self, id: u32, why: &str) {
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
}

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
