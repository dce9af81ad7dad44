//! Listings built from the directory: the compatible `l:`, a page of `b:1:`, and `q:1:`'s pick.
//! Each walks one scope in one order and stops when its reply is full, so its cost is what it
//! shows (plus what its version or mode condition skips), never the whole directory.

use std::time::Instant;

use rabid_wire::lobby::{
    write_browse_entry, write_browse_head, write_compat_entry, write_quick_join, Browse, Cursor,
    EntryView, Order, EARN_FACTOR, MAX_REPLY_LEN,
};

use super::index::classes;
use super::{Directory, Entry, Inner, Listing, Scope};
use crate::core::lobby::DirectoryQuery;

/// Which lobbies a listing shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    pub free_only: bool,
    pub open_only: bool,
    pub version: Option<&'a str>,
    pub mode: Option<&'a str>,
}

impl Listing {
    pub(super) fn view(&self, now: Instant) -> EntryView<'_> {
        EntryView {
            session: self.session.as_str(),
            host: self.host.as_str(),
            players: self.players,
            max_players: self.max_players,
            password: self.password,
            version: &self.version,
            mode: &self.mode,
            description: &self.description,
            age_secs: now.saturating_duration_since(self.created).as_secs(),
            server: self.server_view(),
        }
    }
}

/// The cursor before every entry: a first page starts here.
const START: Cursor = Cursor {
    players: u8::MAX,
    seq: u64::MAX,
};

impl Entry {
    fn cursor(&self) -> Cursor {
        Cursor {
            players: self.listing.players,
            seq: self.seq,
        }
    }
}

impl Inner {
    /// The lobbies of `scope` that `filter` keeps, after `from` in `order`, and how many it
    /// keeps in all. Every lobby walked is shown: the filters pick indexes (see `index.rs`).
    fn select<'a>(
        &'a self,
        scope: &Scope,
        filter: &Filter<'_>,
        order: Order,
        from: Cursor,
    ) -> (usize, Box<dyn Iterator<Item = &'a Entry> + 'a>) {
        let classes = classes(filter.free_only, filter.open_only);
        let Some(slice) = self
            .scopes
            .get(scope)
            .and_then(|s| s.slice(filter.version, filter.mode))
        else {
            return (0, Box::new(std::iter::empty()));
        };
        let total = slice.count(&classes);
        let walk = slice
            .walk(&classes, order, from)
            .filter_map(move |seq| self.entries.get(&seq));
        (total, Box::new(walk))
    }
}

impl Directory {
    /// Appends the answer to `query` (`l:`, `b:1:` or `q:1:`) to `out`, or nothing when the
    /// request did not earn it: an extension answer is at most [`EARN_FACTOR`] times its
    /// request (FusionV1's `l:` cannot pad; it is cut at [`MAX_REPLY_LEN`] instead).
    pub fn answer(&self, query: &DirectoryQuery, now: Instant, out: &mut Vec<u8>) {
        let start = out.len();
        let limit = match query {
            DirectoryQuery::Compat => {
                self.write_compat_list(now, out);
                return;
            }
            DirectoryQuery::QuickJoin {
                game,
                version,
                request_len,
            } => {
                let limit = request_len.saturating_mul(EARN_FACTOR);
                self.write_quick_join_within(game, version.as_deref(), now, limit, out);
                limit
            }
            browse => match browse.as_browse() {
                Some(request) => {
                    self.write_browse(&request, now, out);
                    request.page_limit()
                }
                None => return,
            },
        };
        if out.len() - start > limit {
            out.truncate(start);
        }
    }

    /// Writes the reply to FusionV1's `l:`: `l:` and the compatible lobbies, newest first, as
    /// many whole entries as fit in [`MAX_REPLY_LEN`].
    ///
    /// It appends to `out`, which may hold other replies already (the directory thread's outbox
    /// keeps a whole batch in one buffer): lengths count from where this reply starts.
    pub fn write_compat_list(&self, now: Instant, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"l:");
        let inner = self.inner.read();
        let (_, walk) = inner.select(&Scope::Compat, &Filter::default(), Order::Newest, START);
        let mut entry = Vec::with_capacity(128);
        for e in walk {
            entry.clear();
            let len = out.len() - start;
            if len > 2 {
                entry.push(b':'); // between entries: `l:` and the first need none
            }
            write_compat_entry(&mut entry, &e.listing.view(now));
            if len + entry.len() > MAX_REPLY_LEN {
                break;
            }
            out.extend_from_slice(&entry);
        }
    }

    /// Writes a page of `b:1:` for `request`: as many whole entries as its earned size holds.
    /// When not even one fits but some remain, the page has none and its cursor is the one it
    /// was asked with (on a first page, the cursor before everything): the client must pad its
    /// request more. ([`answer`](Self::answer) drops a page whose head alone is over its size.)
    pub fn write_browse(&self, request: &Browse<'_>, now: Instant, out: &mut Vec<u8>) {
        let limit = request.page_limit();
        let filter = Filter {
            free_only: request.free_only,
            open_only: request.open_only,
            version: request.version,
            mode: request.mode,
        };
        let inner = self.inner.read();
        let scope = Scope::Game(request.game.to_string());
        let from = request.cursor.unwrap_or(START);
        let (total, walk) = inner.select(&scope, &filter, request.order, from);
        let mut body = Vec::with_capacity(limit);
        let mut entry = Vec::with_capacity(160);
        let mut last = None;
        let mut more = false;
        let mut head = Vec::with_capacity(48);
        for e in walk {
            entry.clear();
            entry.push(b':');
            write_browse_entry(&mut entry, &e.listing.view(now));
            // The head the page has if this entry is its last and more remain.
            head.clear();
            write_browse_head(&mut head, total, Some(e.cursor()));
            if head.len() + body.len() + entry.len() > limit {
                more = true;
                break;
            }
            body.extend_from_slice(&entry);
            last = Some(e.cursor());
        }
        let next = match (more, last) {
            (false, _) => None,
            (true, Some(last)) => Some(last),
            (true, None) => Some(from),
        };
        write_browse_head(out, total, next);
        out.extend_from_slice(&body);
    }

    /// Writes the reply to `q:1:`: the fullest lobby of `game` (and `version`) with a free slot
    /// and no password, or none.
    pub fn write_quick_join(
        &self,
        game: &str,
        version: Option<&str>,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        self.write_quick_join_within(game, version, now, usize::MAX, out);
    }

    /// [`write_quick_join`](Self::write_quick_join), passing over the lobbies of other fleet
    /// servers whose answer (longer: it names the server) would be over `limit` bytes: a short
    /// request is offered this server's lobbies only, a padded one the whole fleet's.
    pub fn write_quick_join_within(
        &self,
        game: &str,
        version: Option<&str>,
        now: Instant,
        limit: usize,
        out: &mut Vec<u8>,
    ) {
        let filter = Filter {
            free_only: true,
            open_only: true,
            version,
            mode: None,
        };
        let inner = self.inner.read();
        let scope = Scope::Game(game.to_string());
        let mut answer = Vec::with_capacity(64);
        let found = inner
            .select(&scope, &filter, Order::Fullest, START)
            .1
            .find(|e| {
                e.listing.origin.is_none() || {
                    answer.clear();
                    write_quick_join(&mut answer, Some(&e.listing.view(now)));
                    answer.len() <= limit
                }
            });
        write_quick_join(out, found.map(|e| e.listing.view(now)).as_ref());
    }

    /// The lobbies of `scope` that `filter` keeps, in `order`, at most `limit`, with the total
    /// the filter keeps (for the HTTP view).
    pub fn select(
        &self,
        scope: &Scope,
        filter: &Filter<'_>,
        order: Order,
        limit: usize,
    ) -> (usize, Vec<Listing>) {
        let inner = self.inner.read();
        let (total, walk) = inner.select(scope, filter, order, START);
        (total, walk.take(limit).map(|e| e.listing.clone()).collect())
    }
}
