//! Forwarding a datagram that arrived on a relay port: who sent it (identification, learning
//! the address a member uses towards each relay port), whether the budgets pay for it, and where
//! it goes, rewritten.

use std::net::SocketAddr;

use super::{rewrite, Relay, Relays};
use crate::core::clock::Millis;
use crate::outbox::Outbox;

impl Relays {
    /// Forwards a datagram that arrived on relay port `port` from `from`, if a member sent it,
    /// to its peer, through `out` (leaving from the sender's relay port).
    pub(crate) fn forward(
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
    /// address when it is new (see the [relay module](super) docs).
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

fn same_ip(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical()
}
