//! The relays' side of a hand-over to a successor process ([`crate::core::handover`]): a relay
//! and the recent starts of `auto`, written and read back, and a relay adopted by the shard of
//! its session in the new process, with a new id, its ports and its per-IP counts.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::auto::{PlayerKey, RecentStarts, PRUNE_FIRST_AT, STARTS_PER_PLAYER};
use super::{Member, Relay, Relays};
use crate::core::bucket::Bucket;
use crate::core::clock::Millis;
use crate::core::handover::codec::{malformed, Reader, Result, Writer};
use crate::core::name::SessionName;
use crate::ip_key::IpKey;
use crate::wire::MAX_PLAYERS_RANGE;

impl Relay {
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.str(self.session.as_str());
        w.u64(self.started);
        w.opt_u64(self.last_forward);
        let (milli_bytes, at) = self.bytes.parts();
        w.u64(milli_bytes);
        w.u64(at);
        w.count(self.members.len());
        for member in &self.members {
            w.str(member.name.as_str());
            w.addr(member.addr);
            w.u16(member.port);
            for towards in &member.towards {
                w.opt_addr(*towards);
            }
        }
    }

    /// A relay written by [`encode`](Self::encode), checked: no time after `now`, 2 to 12
    /// members of distinct names and ports (none 0), and each learned address at its member's
    /// IP, as forwarding only ever learns them. Its timer is the adopting shard's to set.
    pub(crate) fn decode(r: &mut Reader<'_>, now: Millis) -> Result<Relay> {
        let session = r.session("relay session")?;
        let started = r.millis(now, "relay started")?;
        let last_forward = r.opt_millis(now, "relay last forward")?;
        let bytes = Bucket::from_parts(r.u64("relay budget")?, r.millis(now, "relay budget")?);
        let count = r.count(8, "relay members")?;
        let range = usize::from(*MAX_PLAYERS_RANGE.start())..=usize::from(*MAX_PLAYERS_RANGE.end());
        if !range.contains(&count) {
            return malformed(format!("relay of {session}: {count} members"));
        }
        let mut members: Vec<Member> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.player("relay member")?;
            let addr = r.addr("relay member address")?;
            let port = r.u16("relay port")?;
            let towards = (0..count)
                .map(|_| r.opt_addr("relay learned address"))
                .collect::<Result<Vec<_>>>()?;
            let same_ip =
                |a: &std::net::SocketAddr| a.ip().to_canonical() == addr.ip().to_canonical();
            if port == 0
                || !towards.iter().flatten().all(same_ip)
                || members.iter().any(|m| m.name == name || m.port == port)
            {
                return malformed(format!("relay of {session}: member {name}"));
            }
            members.push(Member {
                name,
                addr,
                ip: IpKey::from(addr.ip()),
                port,
                towards,
            });
        }
        Ok(Relay {
            session,
            started,
            last_forward,
            timer_at: Millis::MAX,
            bytes,
            members,
        })
    }

    /// The session it relays, whose shard it belongs to.
    pub(crate) fn session(&self) -> SessionName {
        self.session
    }

    /// Its members' relay ports.
    pub(crate) fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.members.iter().map(|m| m.port)
    }
}

impl Relays {
    /// Every open relay, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Relay> {
        self.relays.values()
    }

    /// Takes `ports` out of the free pool if they are there: they belong to relays taken over,
    /// whichever shard gets them (the caller should not have put them in a pool at all).
    pub(crate) fn withhold(&mut self, ports: &HashSet<u16>) {
        let before = self.free.len();
        self.free.retain(|port| !ports.contains(port));
        self.stats.ports_total -= (before - self.free.len()) as u64;
    }

    /// Adopts `relay`, taken over from a predecessor: a new id, its ports held (and counted in
    /// this shard's pool from now on, as they return to it when the relay closes), its IPs
    /// counted against the relay limits whatever their cap, its deadline scheduled. Returns its
    /// ports.
    pub(crate) fn adopt(&mut self, mut relay: Relay, now: Millis) -> Vec<u16> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let ports: Vec<u16> = relay.ports().collect();
        for (index, &port) in ports.iter().enumerate() {
            self.ports.insert(port, (id, index));
        }
        let ips: Vec<IpKey> = relay.members.iter().map(|m| m.ip).collect();
        self.limits.rejoin(&ips, now);
        relay.timer_at = Millis::MAX;
        self.relays.insert(id, relay);
        self.schedule(id);
        self.stats.ports_in_use += ports.len() as u64;
        self.stats.ports_total += ports.len() as u64;
        ports
    }
}

impl RecentStarts {
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u64(self.next_group.load(Ordering::Relaxed));
        let players: Vec<_> = self
            .by_player
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        w.count(players.len());
        for ((name, ip), starts) in players {
            w.str(name.as_str());
            w.ip_key(ip);
            w.count(starts.len());
            for (group, at) in starts {
                w.u64(group);
                w.u64(at);
            }
        }
    }

    /// Reads what [`encode`](Self::encode) wrote, checked: no start after `now`, no group at
    /// or past the next, 1 to `STARTS_PER_PLAYER` starts per player, no player twice.
    pub(crate) fn decode(r: &mut Reader<'_>, now: Millis) -> Result<RecentStartsState> {
        let next_group = r.u64("next group")?;
        let count = r.count(10, "recent starters")?;
        let mut by_player: Vec<(PlayerKey, Vec<(u64, Millis)>)> = Vec::with_capacity(count);
        let mut seen = HashSet::with_capacity(count);
        for _ in 0..count {
            let key = (r.player("recent starter")?, r.ip_key("recent starter IP")?);
            let n = r.count(16, "recent starts")?;
            if n == 0 || n > STARTS_PER_PLAYER || !seen.insert(key) {
                return malformed(format!("{n} recent starts of {}, or twice", key.0));
            }
            let starts = (0..n)
                .map(|_| {
                    let group = r.u64("recent group")?;
                    let at = r.millis(now, "recent start")?;
                    match group < next_group {
                        true => Ok((group, at)),
                        false => malformed(format!("recent group {group} not given yet")),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            by_player.push((key, starts));
        }
        Ok(RecentStartsState {
            next_group,
            by_player,
        })
    }

    /// Takes over the recent starts of a predecessor, replacing what this table holds.
    pub(crate) fn adopt(&self, state: RecentStartsState) {
        self.by_player.clear();
        for (key, starts) in state.by_player {
            self.by_player.insert(key, starts);
        }
        self.next_group.store(state.next_group, Ordering::Relaxed);
        let prune_at = (self.by_player.len() * 2).max(PRUNE_FIRST_AT);
        self.prune_at.store(prune_at, Ordering::Relaxed);
    }
}

/// The recent starts of `auto`, decoded and checked.
#[derive(Debug)]
pub(crate) struct RecentStartsState {
    next_group: u64,
    by_player: Vec<(PlayerKey, Vec<(u64, Millis)>)>,
}
