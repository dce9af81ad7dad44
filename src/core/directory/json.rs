//! The HTTP view of the directory (`GET /lobbies?game=G`): the query it takes and the JSON it
//! returns, for a game's website, launcher or Discord bot. Never an address.

use std::fmt::Write as _;
use std::time::Instant;

use rabid_wire::lobby::Order;

use super::page::Filter;
use super::{Directory, Scope};

/// Most lobbies one HTTP answer lists.
pub const MAX_LIMIT: usize = 500;
/// Lobbies listed when the query does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// `GET /lobbies?...` parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpQuery {
    /// `None`: the compatible lobbies (`d:`).
    pub game: Option<String>,
    pub free_only: bool,
    pub open_only: bool,
    pub version: Option<String>,
    pub mode: Option<String>,
    pub order: Order,
    pub limit: usize,
}

/// A query the view cannot answer: the one line for the 400 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseQueryError(pub String);

impl HttpQuery {
    /// Parses the part of a URL after `?` (percent-encoded, `+` for a space).
    pub fn parse(query: &str) -> Result<Self, ParseQueryError> {
        let mut q = HttpQuery {
            game: None,
            free_only: false,
            open_only: false,
            version: None,
            mode: None,
            order: Order::Newest,
            limit: DEFAULT_LIMIT,
        };
        let bad = |what: &str| ParseQueryError(what.to_string());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value).ok_or_else(|| bad("a value is not percent-encoded UTF-8"))?;
            let flag = || match value.as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(bad("free and open take 1 or 0")),
            };
            let given = |v: String| (!v.is_empty()).then_some(v);
            match key {
                "game" => q.game = given(value),
                "free" => q.free_only = flag()?,
                "open" => q.open_only = flag()?,
                // Empty means any, as in `b:1:`.
                "version" => q.version = given(value),
                "mode" => q.mode = given(value),
                "order" => {
                    q.order = match value.as_str() {
                        "new" => Order::Newest,
                        "full" => Order::Fullest,
                        _ => return Err(bad("order takes new or full")),
                    }
                }
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| bad("limit takes 1 to 500"))?
                }
                // Others (a web page's cache-buster, say) mean nothing here.
                _ => {}
            }
        }
        Ok(q)
    }
}

/// `%XX` and `+` decoded; `None` when not valid.
fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(b) = rest.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

impl Directory {
    /// The JSON answer to `query`.
    pub fn to_json(&self, query: &HttpQuery, now: Instant) -> String {
        let scope = match &query.game {
            Some(game) => Scope::Game(game.clone()),
            None => Scope::Compat,
        };
        let filter = Filter {
            free_only: query.free_only,
            open_only: query.open_only,
            version: query.version.as_deref(),
            mode: query.mode.as_deref(),
        };
        let (total, lobbies) = self.select(&scope, &filter, query.order, query.limit);
        let mut out = String::from("{\"game\":");
        match &query.game {
            Some(game) => push_str(&mut out, game),
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"total\":{total},\"lobbies\":[");
        for (i, listing) in lobbies.iter().enumerate() {
            let e = listing.view(now);
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"session\":");
            push_str(&mut out, e.session);
            out.push_str(",\"host\":");
            push_str(&mut out, e.host);
            let _ = write!(
                out,
                ",\"players\":{},\"max\":{},\"password\":{},\"version\":",
                e.players, e.max_players, e.password
            );
            push_str(&mut out, e.version);
            out.push_str(",\"mode\":");
            push_str(&mut out, e.mode);
            out.push_str(",\"description\":");
            push_str(&mut out, e.description);
            let _ = write!(out, ",\"age_s\":{}", e.age_secs);
            if let Some(at) = &e.server {
                out.push_str(",\"server\":");
                push_str(&mut out, &format!("{}:{}", at.host, at.port));
                out.push_str(",\"region\":");
                push_str(&mut out, at.region);
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// Appends `s` as a JSON string (RFC 8259 escaping).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
