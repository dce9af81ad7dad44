//! [`Directory`]: the directory's queries on a blocking `std` UDP socket, each an
//! [`Exchange`] driven to its end (5 s at most).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use super::exchange::Exchange;
use super::reply::{Answer, Entry, Found, Page};
use super::{DirectoryError, Query};
use crate::driver::{recv_until, unspecified, RECV_BUFFER};

/// A rabid-punch server's lobby directory, queried from any address.
///
/// Each query binds a fresh ephemeral socket: the replies of `b:1:` do not name the page they
/// answer, so a late copy of an earlier reply (the request was re-sent, both copies answered)
/// must not reach the socket of the next query, where it would pass for the next page.
///
/// ```no_run
/// use rabid_client::directory::{Directory, Order, Query};
///
/// let directory = Directory::new("127.0.0.1:7777".parse().unwrap());
/// let page = directory.list(&Query::game("com.example.cards").free().order(Order::Fullest))?;
/// for lobby in &page.entries {
///     println!("{} by {}: {}/{}", lobby.session, lobby.host, lobby.players, lobby.max_players);
/// }
/// if let Some(found) = directory.quick_join("com.example.cards", Some("0.9.3"))? {
///     // Join found.session with rabid_client::Request::join(&found.session, "me").
/// }
/// # Ok::<(), rabid_client::directory::DirectoryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Directory {
    server: SocketAddr,
}

impl Directory {
    /// The directory of the server at `server`.
    pub fn new(server: SocketAddr) -> Directory {
        Directory { server }
    }

    /// One page of a game's directory, from `query.cursor`.
    pub fn list(&self, query: &Query) -> Result<Page, DirectoryError> {
        match self.run(Exchange::browse(query, Instant::now())?)? {
            Answer::Page(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }

    /// Up to `max_pages` pages from `query.cursor`, following their cursors, as one page: the
    /// entries in order, each session once (in fullest-first order a lobby that loses a player
    /// between two pages may show on both), the last page's total, and the cursor where it
    /// stopped (`None` when it reached the end).
    pub fn list_all(&self, query: &Query, max_pages: usize) -> Result<Page, DirectoryError> {
        let mut query = query.clone();
        let mut all = Page::default();
        let mut seen = HashSet::new();
        all.next = query.cursor.clone();
        for _ in 0..max_pages {
            let page = self.list(&query)?;
            all.total = page.total;
            let stuck = page.entries.is_empty() && page.next == query.cursor;
            for entry in page.entries {
                if seen.insert(entry.session.clone()) {
                    all.entries.push(entry);
                }
            }
            all.next = page.next;
            if all.next.is_none() || stuck {
                // The end, or a page that does not move on (nothing fits in it): stop here.
                break;
            }
            query.cursor = all.next.clone();
        }
        Ok(all)
    }

    /// A lobby of `game` (and of `version`, when given) with a free slot and no password, the
    /// fullest first; `None` when there is none. Join it with [`crate::Request::join`]: it may
    /// be full by then (`session_full`), then ask again.
    pub fn quick_join(
        &self,
        game: &str,
        version: Option<&str>,
    ) -> Result<Option<Found>, DirectoryError> {
        match self.run(Exchange::quick_join(game, version, Instant::now())?)? {
            Answer::QuickJoin(found) => Ok(found),
            other => Err(unexpected(other)),
        }
    }

    /// FusionV1's compatible list (`l:`): the lobbies made public with `d:`, newest first, as
    /// many as fit in one datagram.
    pub fn list_compat(&self) -> Result<Vec<Entry>, DirectoryError> {
        match self.run(Exchange::list_compat(Instant::now()))? {
            Answer::Compat(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// Drives `exchange` on a fresh socket until its result.
    fn run(&self, mut exchange: Exchange) -> Result<Answer, DirectoryError> {
        let socket = UdpSocket::bind(SocketAddr::new(unspecified(self.server.ip()), 0))?;
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            while let Some(datagram) = exchange.poll_transmit() {
                if let Err(e) = socket.send_to(&datagram, self.server) {
                    log::debug!("directory: send to {} failed: {e}", self.server);
                }
            }
            if let Some(result) = exchange.poll_result() {
                return result;
            }
            let Some(wake) = exchange.poll_timeout() else {
                return Err(DirectoryError::Timeout); // unreachable: a running exchange has one
            };
            if let Some((n, from)) = recv_until(&socket, &mut buf, wake)? {
                if from == self.server {
                    exchange.handle_datagram(Instant::now(), &buf[..n]);
                }
            }
            exchange.handle_timeout(Instant::now());
        }
    }
}

/// An answer of another kind than asked: the exchange only takes replies to its own letter.
fn unexpected(answer: Answer) -> DirectoryError {
    DirectoryError::BadReply(format!("{answer:?}"))
}
