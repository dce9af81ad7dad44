//! One directory request and its reply, as a sans-I/O state machine in the shape of
//! [`crate::Lobby`]: the caller feeds [`Exchange::handle_datagram`] what the server sent and
//! [`Exchange::handle_timeout`] when [`Exchange::poll_timeout`] passes, and drains
//! [`Exchange::poll_transmit`] and [`Exchange::poll_result`].
//!
//! UDP loses datagrams: the request goes out at once and again every 0.5 s (the lobby's
//! [`RESEND_INTERVAL`]) until its reply comes, [`QUERY_TRIES`] sends in all; 0.5 s after the
//! last one the exchange fails with [`DirectoryError::Timeout`]. Every request here may be
//! repeated safely: listings and quick join change nothing, and `a:1:` sets the same data again.

use std::collections::VecDeque;
use std::time::Instant;

use super::reply::{parse_answer, Answer};
use super::{compat_list_request, quick_join_request, DirectoryError, Publish, Query};
use crate::lobby::RESEND_INTERVAL;

/// How many times a request is sent before the exchange gives up (5 s in all).
pub const QUERY_TRIES: u32 = 10;

/// One request, re-sent until its reply; see the module documentation.
#[derive(Debug)]
pub struct Exchange {
    request: Vec<u8>,
    sent: u32,
    next_send: Instant,
    transmits: VecDeque<Vec<u8>>,
    result: Option<Result<Answer, DirectoryError>>,
    done: bool,
}

impl Exchange {
    /// Sends `request` (a checked `b:1:`, `q:1:`, `l:` or `a:1:`) at `now`.
    fn new(request: Vec<u8>, now: Instant) -> Exchange {
        let mut exchange = Exchange {
            request,
            sent: 0,
            next_send: now,
            transmits: VecDeque::new(),
            result: None,
            done: false,
        };
        exchange.handle_timeout(now);
        exchange
    }

    /// A page of a game's directory.
    pub fn browse(query: &Query, now: Instant) -> Result<Exchange, DirectoryError> {
        Ok(Exchange::new(query.to_datagram()?, now))
    }

    /// A quick join: a lobby of `game` (of `version`, if given) with a free slot, no password.
    pub fn quick_join(
        game: &str,
        version: Option<&str>,
        now: Instant,
    ) -> Result<Exchange, DirectoryError> {
        Ok(Exchange::new(quick_join_request(game, version)?, now))
    }

    /// FusionV1's compatible list.
    pub fn list_compat(now: Instant) -> Exchange {
        Exchange::new(compat_list_request(), now)
    }

    /// Puts `session` in a game's directory; must be sent from the host's own socket (the
    /// [`crate::Lobby`] does it). `publish.game` must be set: `d:` has no reply to wait for.
    pub fn announce(
        session: &str,
        publish: &Publish,
        now: Instant,
    ) -> Result<Exchange, DirectoryError> {
        if publish.game.is_none() {
            return Err(DirectoryError::InvalidArgument(
                "the compatible listing (d:) has no reply to wait for".to_string(),
            ));
        }
        Ok(Exchange::new(publish.to_datagram(session)?, now))
    }

    /// The command letter of the request: what its reply starts with.
    fn letter(&self) -> u8 {
        self.request[0]
    }

    /// Feeds one datagram from the server. Replies to other requests are ignored.
    pub fn handle_datagram(&mut self, _now: Instant, datagram: &[u8]) {
        if self.done {
            return;
        }
        if let Some(result) = parse_answer(self.letter(), datagram) {
            self.finish(result);
        }
    }

    fn finish(&mut self, result: Result<Answer, DirectoryError>) {
        self.done = true;
        self.result = Some(result);
    }

    /// Call when [`Exchange::poll_timeout`] has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || now < self.next_send {
            return;
        }
        if self.sent == QUERY_TRIES {
            self.finish(Err(DirectoryError::Timeout));
            return;
        }
        self.transmits.push_back(self.request.clone());
        self.sent += 1;
        // On the 0.5 s grid, as the lobby's re-sends; no burst after a stall.
        self.next_send += RESEND_INTERVAL;
        if self.next_send <= now {
            self.next_send = now + RESEND_INTERVAL;
        }
    }

    /// When [`Exchange::handle_timeout`] must next be called; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.next_send)
    }

    /// The next datagram to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The reply, or why there is none, once (then `None`).
    pub fn poll_result(&mut self) -> Option<Result<Answer, DirectoryError>> {
        self.result.take()
    }

    /// True once the reply came or the exchange gave up.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::reply::Page;
    use std::time::Duration;

    fn drain(exchange: &mut Exchange) -> Vec<String> {
        std::iter::from_fn(|| exchange.poll_transmit())
            .map(|d| String::from_utf8(d).unwrap())
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_lost_request_is_sent_again_every_half_second_then_times_out() {
        let t0 = Instant::now();
        let mut x = Exchange::quick_join("cards", Some("0.9"), t0).unwrap();
        let request = format!("q:1:cards:0.9:{}", "x".repeat(50));
        assert_eq!(drain(&mut x), std::slice::from_ref(&request));
        assert_eq!(x.poll_timeout(), Some(t0 + ms(500)));
        x.handle_timeout(t0 + ms(499));
        assert!(drain(&mut x).is_empty());
        let mut now = t0;
        let mut sent = 1;
        while !x.is_done() {
            now = x.poll_timeout().unwrap();
            x.handle_timeout(now);
            sent += drain(&mut x).len();
        }
        assert_eq!(sent, QUERY_TRIES as usize);
        assert_eq!(now, t0 + RESEND_INTERVAL * QUERY_TRIES);
        assert!(matches!(
            x.poll_result(),
            Some(Err(DirectoryError::Timeout))
        ));
        assert!(x.poll_result().is_none());
        assert_eq!(x.poll_timeout(), None);
    }

    #[test]
    fn the_reply_ends_it_and_other_datagrams_do_not() {
        let t0 = Instant::now();
        let mut x = Exchange::browse(&Query::game("cards"), t0).unwrap();
        assert_eq!(drain(&mut x).len(), 1);
        for other in [&b"i:Ana"[..], b"q:1:", b"error:session_full", b"l:", b"b:1"] {
            x.handle_datagram(t0 + ms(10), other);
        }
        assert!(!x.is_done());
        x.handle_timeout(t0 + ms(500));
        assert_eq!(drain(&mut x).len(), 1, "re-sent");
        x.handle_datagram(t0 + ms(600), b"b:1:0:");
        assert!(x.is_done());
        assert_eq!(
            x.poll_result().unwrap().unwrap(),
            Answer::Page(Page::default())
        );
        // A late duplicate changes nothing.
        x.handle_datagram(t0 + ms(700), b"b:1:error:invalid_request");
        assert!(x.poll_result().is_none());
        x.handle_timeout(t0 + ms(5000));
        assert!(drain(&mut x).is_empty());
    }

    #[test]
    fn a_refusal_ends_it_at_once() {
        let t0 = Instant::now();
        let mut x = Exchange::list_compat(t0);
        assert_eq!(drain(&mut x), ["l:"]);
        x.handle_datagram(t0, b"l:Ana|Room1|1 / 2|v|m");
        assert!(matches!(x.poll_result(), Some(Ok(Answer::Compat(e))) if e.len() == 1));
        let mut x = Exchange::browse(&Query::game("cards"), t0).unwrap();
        x.handle_datagram(t0, b"b:1:error:unsupported_version");
        assert!(matches!(
            x.poll_result(),
            Some(Err(DirectoryError::UnsupportedVersion))
        ));
    }

    #[test]
    fn a_late_wake_up_sends_once_and_keeps_the_bound() {
        let t0 = Instant::now();
        let mut x = Exchange::list_compat(t0);
        drain(&mut x);
        x.handle_timeout(t0 + ms(2200));
        assert_eq!(drain(&mut x).len(), 1, "no burst to catch up");
        assert_eq!(x.poll_timeout(), Some(t0 + ms(2700)));
    }
}
