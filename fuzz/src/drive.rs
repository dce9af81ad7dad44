//! Runs a [`Scenario`] against a `Shard`, checking after every operation:
//! - the shard's own invariants hold (`check_invariants`), and the shared counts behind the caps
//!   equal what the shard holds (a leak there would shut the server out, or let memory grow);
//!   the caps themselves are never exceeded;
//! - every reply is at most [`MAX_REPLY`] bytes, is an `i:`, an `s:` or one of the protocol's
//!   errors, and goes to an address that sent the shard something (the server is no cannon);
//! - after handling its timeouts, the shard's next deadline lies in the future (no busy loop).
//!
//! A broken check panics, which is what the fuzzer looks for.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rabid_punch::core::{Caps, Shard};
use rabid_punch::outbox::Outbox;
use rabid_punch::wire::ErrorCode;

use crate::ops::{sources, Op, Scenario};

/// The largest reply the server may send.
pub const MAX_REPLY: usize = 512;

/// Runs `scenario`, panicking at the first broken check; `seen` is shown every reply (for the
/// corpus statistics), after it passed the checks.
pub fn drive(scenario: &Scenario, mut seen: impl FnMut(&Shard, SocketAddr, &[u8])) {
    let sources = sources();
    let mut now = Instant::now();
    let config = scenario.config.core();
    let caps = Arc::new(Caps::new(config.caps));
    let mut shard = Shard::with_caps(&config, Arc::clone(&caps), now);
    let mut out = Outbox::new();
    let mut heard: HashSet<SocketAddr> = HashSet::new();
    for (step, op) in scenario.ops.iter().enumerate() {
        let mut timed_out = false;
        match op {
            Op::Send { from, text } => {
                heard.insert(sources[*from]);
                shard.handle_datagram(now, sources[*from], text.as_bytes(), &mut out);
            }
            Op::Garbage { from, bytes } => {
                heard.insert(sources[*from]);
                shard.handle_datagram(now, sources[*from], bytes, &mut out);
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(*ms);
                shard.handle_timeout(now, &mut out);
                timed_out = true;
            }
            Op::Crowd { sends } => {
                for (from, text) in sends {
                    heard.insert(sources[*from]);
                    shard.handle_datagram(now, sources[*from], text.as_bytes(), &mut out);
                }
            }
            Op::Wake => {
                if let Some(deadline) = shard.next_timeout() {
                    now = now.max(deadline);
                }
                shard.handle_timeout(now, &mut out);
                timed_out = true;
            }
        }
        if let Err(broken) = shard.check_invariants() {
            panic!("step {step} ({op:?}): invariant broken: {broken}");
        }
        assert_eq!(
            (caps.sessions(), caps.players()),
            (shard.sessions(), shard.players()),
            "step {step} ({op:?}): cap counts (sessions, players) differ from the shard's"
        );
        assert!(
            shard.sessions() <= config.caps.max_sessions
                && shard.players() <= config.caps.max_players,
            "step {step} ({op:?}): over a cap"
        );
        for (to, payload) in out.iter() {
            assert!(
                payload.len() <= MAX_REPLY,
                "step {step} ({op:?}): {} bytes to {to}",
                payload.len()
            );
            assert!(
                heard.contains(&to),
                "step {step} ({op:?}): reply to {to}, which never sent anything"
            );
            assert!(
                payload.starts_with(b"i:")
                    || payload.starts_with(b"s:")
                    || ErrorCode::from_datagram(payload).is_some(),
                "step {step} ({op:?}): unknown reply {:?}",
                String::from_utf8_lossy(payload)
            );
            seen(&shard, to, payload);
        }
        out.clear();
        if timed_out {
            if let Some(deadline) = shard.next_timeout() {
                assert!(
                    deadline > now,
                    "step {step} ({op:?}): next deadline not in the future after timeouts"
                );
            }
        }
    }
}
