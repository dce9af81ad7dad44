//! The lobby directory's load around a ping flood (`ping --lobbies N --list-rate R`): public
//! lobbies listed before the flood, and a listing flood from sockets of its own while it runs,
//! so the ping rate can be compared with and without them (docs/lobbies.md).
//!
//! Lobbies: each has a host socket of its own on one of `--lobby-sources`, which hosts the
//! session (`h:`) and makes it public. The first half (rounded up) is made public with
//! FusionV1's `d:S:True:1.0:Some mode` (listed by `l:`), the rest with
//! `a:1:S:rabid.flood:1:1.0:Some mode:` (listed by `b:1:rabid.flood`), so each kind of listing in
//! the flood walks a full scope. Their host sockets are closed once the lobby is listed: 100 000
//! sockets would not fit under the open-files limit. The hosts therefore never ping again, and
//! the server must be run with a `--player-timeout` (and `--session-lifetime`) longer than the
//! run, and a `--max-sessions` above the lobbies plus the ping flood's sessions. A lobby that
//! times out anyway shows as a wrong `b:1:` total.
//!
//! The listing flood: an open loop at `--list-rate` requests per second, alternating `l:` and a
//! padded `b:1:` first page (newest first) that earns a full page, round-robin over
//! `--list-sockets` sockets on `--list-sources` (one address each by default, so the per-IP send
//! budget answers them all). Each reply is checked: `l:` entries of this run's `d:` lobbies, and
//! `b:1:` with the exact number of `a:1:` lobbies as its total. Listings without a reply within
//! 250 ms are counted as unanswered, not failures (the server may drop listings under load: that is its design). The thread sleeps
//! a millisecond between rounds, so it takes little of the generator's core.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::net::{Conn, RecvBatch};
use crate::proto::{self, Names};
use crate::report::Failures;
use crate::threads::Together;

/// The game the `a:1:` lobbies are announced for, and the `b:1:` pages list.
pub const GAME: &str = "rabid.flood";
/// Version and mode of every lobby.
const VERSION: &str = "1.0";
const MODE: &str = "Some mode";
/// Lobbies hosted together: enough to hide round trips, few enough not to overflow the
/// server's receive buffer.
const WINDOW: usize = 256;
/// A host without its reply this long re-sends.
const RETRY: Duration = Duration::from_millis(500);
/// A step with hosts still missing their reply after this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Longest reply the server sends (docs/lobbies.md, Sizes).
const MAX_REPLY: usize = 1200;
/// Filler that earns a full `b:1:` page (3 times the request, at most 1200 bytes).
const PAD: usize = 400;
/// A listing without a reply this long counts as unanswered.
const LIST_TIMEOUT: Duration = Duration::from_millis(250);
/// Pause between two rounds of the listing flood.
const LIST_TICK: Duration = Duration::from_millis(1);
/// Attempts to get a host address not used by an earlier lobby of the run.
const FRESH_TRIES: usize = 100;

/// The lobbies of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lobbies {
    /// Made public with `d:`, listed by `l:`.
    pub compat: usize,
    /// Announced with `a:1:` for [`GAME`], listed by `b:1:`.
    pub game: usize,
    /// How long hosting and listing them took.
    pub setup: Duration,
}

impl Lobbies {
    pub fn total(&self) -> usize {
        self.compat + self.game
    }
}

/// How the lobbies split between the two listings.
pub fn split(count: usize) -> (usize, usize) {
    let compat = count.div_ceil(2);
    (compat, count - compat)
}

/// `d:S:True:1.0:Some mode`: make `session` public in the compatible listing.
pub fn lobby_data(session: &str) -> Vec<u8> {
    format!("d:{session}:True:{VERSION}:{MODE}").into_bytes()
}

/// `a:1:S:rabid.flood:1:1.0:Some mode:`: list `session` in [`GAME`]'s directory.
pub fn announce(session: &str) -> Vec<u8> {
    format!("a:1:{session}:{GAME}:1:{VERSION}:{MODE}:").into_bytes()
}

/// `b:1:rabid.flood::::n::<pad>`: the first page, newest first, padded to earn a full page.
pub fn browse() -> Vec<u8> {
    format!("b:1:{GAME}::::n::{}", "x".repeat(PAD)).into_bytes()
}

/// Hosts `count` lobbies, sessions `first..first + count` of `names`, and lists them; returns
/// once every one is listed (its `d:` was followed by the right reply to a ping from the same
/// socket, or its `a:1:` answered `a:1:ok`) and a `b:1:` page counts every `a:1:` lobby.
pub fn create(
    target: SocketAddr,
    sources: &[IpAddr],
    names: &Names,
    first: u64,
    count: usize,
    batch: &mut RecvBatch,
) -> Result<Lobbies, String> {
    let began = Instant::now();
    let (compat, game) = split(count);
    let host = proto::player(0);
    let hosted = proto::info(std::slice::from_ref(&host));
    let mut fresh = Fresh::new(sources, target);
    let mut k = 0;
    while k < count {
        let window: Vec<usize> = (k..(k + WINDOW).min(count)).collect();
        let conns = window
            .iter()
            .map(|_| fresh.open())
            .collect::<Result<Vec<Conn>, String>>()?;
        let sessions: Vec<String> = window
            .iter()
            .map(|&i| names.session(first + i as u64))
            .collect();
        exchange(&conns, &sessions, batch, None, |s| {
            (vec![proto::host(&sessions[s], &host, 4)], hosted.clone())
        })?;
        // A retried `h:` may still bring a second `i:p0`: not an error.
        exchange(&conns, &sessions, batch, Some(hosted.as_slice()), |s| {
            if window[s] < compat {
                // No reply to `d:` when it works: the ping behind it, answered in order by the
                // session's worker, says it was taken (an error would have come first).
                let ping = proto::ping(&sessions[s], &host);
                (vec![lobby_data(&sessions[s]), ping], hosted.clone())
            } else {
                (vec![announce(&sessions[s])], b"a:1:ok".to_vec())
            }
        })?;
        k += window.len();
        // The sockets close here; `fresh` keeps their addresses from being handed out again.
    }
    if game > 0 {
        confirm_total(&mut fresh, game, batch)?;
    }
    Ok(Lobbies {
        compat,
        game,
        setup: began.elapsed(),
    })
}

/// Sockets whose addresses no earlier lobby of the run used: a host's address is its identity
/// on the server, and the kernel may hand out a closed socket's port again.
struct Fresh<'a> {
    sources: &'a [IpAddr],
    target: SocketAddr,
    next: usize,
    used: HashSet<SocketAddr>,
    /// Sockets that came with a used address, kept open so the kernel does not return it again.
    held: Vec<Conn>,
}

impl<'a> Fresh<'a> {
    fn new(sources: &'a [IpAddr], target: SocketAddr) -> Self {
        Self {
            sources,
            target,
            next: 0,
            used: HashSet::new(),
            held: Vec::new(),
        }
    }

    fn open(&mut self) -> Result<Conn, String> {
        for _ in 0..FRESH_TRIES {
            let src = self.sources[self.next % self.sources.len()];
            self.next += 1;
            let conn = Conn::open(src, self.target)
                .map_err(|e| format!("cannot open a lobby host socket on {src}: {e}"))?;
            if self.used.insert(conn.local) {
                return Ok(conn);
            }
            self.held.push(conn);
        }
        Err(format!(
            "no unused host address in {FRESH_TRIES} tries: use more --lobby-sources"
        ))
    }
}

/// Sends each socket's requests and waits until each got its expected reply; any other reply
/// (but `stale`, the previous step's, which a retry may bring late) fails the run. Retries
/// after [`RETRY`], gives up after [`GIVE_UP`].
fn exchange(
    conns: &[Conn],
    sessions: &[String],
    batch: &mut RecvBatch,
    stale: Option<&[u8]>,
    what: impl Fn(usize) -> (Vec<Vec<u8>>, Vec<u8>),
) -> Result<(), String> {
    let send = |s: usize| -> Result<(), String> {
        for request in what(s).0 {
            conns[s]
                .send(&request)
                .map_err(|e| crate::setup::io_failure(&e, &sessions[s], "p0"))?;
        }
        Ok(())
    };
    (0..conns.len()).try_for_each(send)?;
    let mut waiting: Vec<usize> = (0..conns.len()).collect();
    let began = Instant::now();
    let mut last_send = began;
    while !waiting.is_empty() {
        let mut i = 0;
        while i < waiting.len() {
            let s = waiting[i];
            let n = batch
                .recv(conns[s].fd())
                .map_err(|e| crate::setup::io_failure(&e, &sessions[s], "p0"))?;
            let expected = what(s).1;
            let mut done = false;
            for d in 0..n {
                let (data, truncated) = batch.get(d);
                if data == expected.as_slice() && !truncated {
                    done = true;
                } else if stale != Some(data) {
                    return Err(format!(
                        "lobby {}: unexpected reply {:?} (expected {:?})",
                        sessions[s],
                        proto::show(data),
                        proto::show(&expected)
                    ));
                }
            }
            if done {
                waiting.swap_remove(i);
            } else {
                i += 1;
            }
        }
        let now = Instant::now();
        if !waiting.is_empty() && now.duration_since(last_send) >= RETRY {
            if now.duration_since(began) >= GIVE_UP {
                return Err(format!(
                    "{} lobby host(s) got no reply within {GIVE_UP:?} (first: {}); is the server \
                     running, with --max-sessions above the lobbies and the sessions?",
                    waiting.len(),
                    sessions[waiting[0]]
                ));
            }
            waiting.iter().try_for_each(|&s| send(s))?;
            last_send = now;
        }
    }
    Ok(())
}

/// Asks for `b:1:` pages until one counts `game` lobbies (the directory is read by another
/// thread of the server than the one that wrote it), within [`GIVE_UP`].
fn confirm_total(fresh: &mut Fresh, game: usize, batch: &mut RecvBatch) -> Result<(), String> {
    let conn = fresh.open()?;
    let request = browse();
    let want = format!("b:1:{game}:");
    let began = Instant::now();
    let mut last = String::new();
    loop {
        let sent = Instant::now();
        conn.send(&request)
            .map_err(|e| format!("listing after set-up: {e}"))?;
        while sent.elapsed() < RETRY {
            let n = batch
                .recv(conn.fd())
                .map_err(|e| format!("listing after set-up: {e}"))?;
            for d in 0..n {
                let data = batch.get(d).0;
                if data.starts_with(want.as_bytes()) {
                    return Ok(());
                }
                last = proto::show(data);
            }
        }
        if began.elapsed() >= GIVE_UP {
            return Err(format!(
                "after set-up, b:1: pages did not count the {game} lobbies announced (last: \
                 {last:?})"
            ));
        }
    }
}

/// What the listing flood saw in the measured window.
#[derive(Default)]
pub struct ListOutcome {
    pub sent: u64,
    pub replies: u64,
    /// Listings sent in the window without a reply within [`LIST_TIMEOUT`].
    pub unanswered: u64,
    /// Requests not sent because the socket buffer was full.
    pub blocked: u64,
    pub wrong: Failures,
}

/// The listing flood's settings.
pub struct ListPlan<'a> {
    pub target: SocketAddr,
    pub sources: &'a [IpAddr],
    pub sockets: usize,
    /// Requests per second.
    pub rate: u64,
    pub max: u64,
    pub warmup: Duration,
    pub duration: Duration,
    pub lobbies: Lobbies,
}

/// The listing flood's thread: opens its sockets, meets the ping threads at the start, and
/// floods until the ping threads' measured window is over (or `max` requests, or an abort).
pub fn list_thread(plan: &ListPlan, together: &Together) -> Result<ListOutcome, String> {
    let (conns, t0, _) = together.set_up(|| {
        crate::net::open_many(plan.sockets, 0, plan.sources, plan.target).map_err(|e| e.to_string())
    })?;
    let result = flood(plan, &conns, t0, together);
    if result.is_err() {
        together.abort();
    }
    result
}

fn flood(
    plan: &ListPlan,
    conns: &[Conn],
    t0: Instant,
    together: &Together,
) -> Result<ListOutcome, String> {
    let mut out = ListOutcome::default();
    let check = Check::new(plan.lobbies);
    let requests = [b"l:".to_vec(), browse()];
    let interval = Duration::from_secs_f64(1.0 / plan.rate as f64);
    // Whatever happens to the ping threads, the flood ends by then.
    let hard_end = t0 + plan.warmup + plan.duration + Duration::from_secs(2);
    let mut end = hard_end;
    let mut measuring = false;
    let mut next_due = t0;
    let mut total = 0u64;
    let mut cursor = 0usize;
    // Per socket: listings sent, and listings settled (answered, or given up on), oldest
    // first. In send order: (socket, its number on the socket, sent at, counted).
    let mut sent = vec![0u64; conns.len()];
    let mut settled = vec![0u64; conns.len()];
    let mut fifo: VecDeque<(usize, u64, Instant, bool)> = VecDeque::new();
    let mut batch = RecvBatch::new();
    loop {
        let now = Instant::now();
        if !measuring {
            if let Some(at) = together.window_started() {
                measuring = true;
                end = (at + plan.duration).min(hard_end);
            }
        }
        if now >= end || total >= plan.max || together.aborted() {
            break;
        }
        while next_due <= now && total < plan.max {
            let s = cursor % conns.len();
            let request = &requests[(total % 2) as usize];
            cursor += 1;
            total += 1;
            next_due += interval;
            match conns[s].send(request) {
                Ok(()) => {
                    sent[s] += 1;
                    fifo.push_back((s, sent[s], now, measuring));
                    if measuring {
                        out.sent += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.blocked += 1,
                Err(e) => return Err(format!("{}: listing not sent: {e}", conns[s].local)),
            }
        }
        // Read every socket with a listing out; replies come within the tick, as a rule.
        let mut seen = 0;
        for &(s, _, _, _) in &fifo {
            if settled[s] >= sent[s] {
                continue;
            }
            seen += 1;
            loop {
                let n = batch
                    .recv_one(conns[s].fd())
                    .map_err(|e| format!("{}: receive failed: {e}", conns[s].local))?;
                if n == 0 {
                    break;
                }
                let (data, truncated) = batch.get(0);
                if measuring {
                    out.replies += 1;
                }
                if let Err(why) = check.reply(data, truncated) {
                    out.wrong.add(|| format!("{}: {why}", conns[s].local));
                }
                settled[s] += 1;
                if settled[s] >= sent[s] {
                    break;
                }
            }
            if seen > conns.len() {
                break;
            }
        }
        // Answered listings leave from the front; old ones count as unanswered.
        while let Some(&(s, seq, at, counted)) = fifo.front() {
            if seq > settled[s] {
                if now.saturating_duration_since(at) < LIST_TIMEOUT {
                    break;
                }
                // The socket's older listings left the front before this one.
                settled[s] = seq;
                if counted {
                    out.unanswered += 1;
                }
            }
            fifo.pop_front();
        }
        std::thread::sleep(LIST_TICK);
    }
    Ok(out)
}

/// The replies a listing may get in this run.
struct Check {
    lobbies: Lobbies,
    /// `b:1:<game lobbies>:`
    page: Vec<u8>,
}

impl Check {
    fn new(lobbies: Lobbies) -> Self {
        Self {
            lobbies,
            page: format!("b:1:{}:", lobbies.game).into_bytes(),
        }
    }

    /// Whether `data` is a right reply to `l:` or to the padded `b:1:` page.
    fn reply(&self, data: &[u8], truncated: bool) -> Result<(), String> {
        let bad = |why: &str| Err(format!("{why}: {:?}", proto::show(data)));
        if truncated || data.len() > MAX_REPLY {
            return bad(&format!("listing longer than {MAX_REPLY} bytes"));
        }
        if let Some(list) = data.strip_prefix(b"l:") {
            // Newest first, every one of this run's `d:` lobbies: host p0, 1 of 4 players.
            let Ok(text) = std::str::from_utf8(list) else {
                return bad("l: listing not UTF-8");
            };
            if self.lobbies.compat == 0 {
                return if text.is_empty() {
                    Ok(())
                } else {
                    bad("l: listing with entries, but no d: lobby was made")
                };
            }
            let right = !text.is_empty()
                && text.split(':').all(|e| {
                    let f: Vec<&str> = e.split('|').collect();
                    f.len() == 5
                        && f[0] == "p0"
                        && f[2] == "1 / 4"
                        && f[3] == VERSION
                        && f[4] == MODE
                });
            return if right {
                Ok(())
            } else {
                bad("l: listing not of this run's lobbies")
            };
        }
        if data.starts_with(&self.page) {
            // A full page: a total, no cursor when everything fits, then whole entries.
            let entries = data[self.page.len()..].split(|&b| b == b':').skip(1);
            let mut n = 0;
            for e in entries {
                let f: Vec<&[u8]> = e.split(|&b| b == b'|').collect();
                if f.len() != 9 || f[1] != b"p0" || f[2] != b"1" || f[3] != b"4" {
                    return bad("b:1: entry not of this run's lobbies");
                }
                n += 1;
            }
            return if n > 0 || self.lobbies.game == 0 {
                Ok(())
            } else {
                bad("b:1: page without entries")
            };
        }
        if data.starts_with(b"b:1:") {
            return bad(&format!(
                "b:1: page whose total is not the {} lobbies announced",
                self.lobbies.game
            ));
        }
        bad("not a listing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::PingArgs;
    use crate::ping;
    use rabid_punch::runtime::{Server, ServerConfig};

    fn lobbies(compat: usize, game: usize) -> Lobbies {
        Lobbies {
            compat,
            game,
            setup: Duration::ZERO,
        }
    }

    #[test]
    fn requests_follow_docs_lobbies() {
        assert_eq!(split(5), (3, 2));
        assert_eq!(split(100_000), (50_000, 50_000));
        assert_eq!(lobby_data("s1"), b"d:s1:True:1.0:Some mode".to_vec());
        assert_eq!(
            announce("s1"),
            b"a:1:s1:rabid.flood:1:1.0:Some mode:".to_vec()
        );
        let b = browse();
        assert!(b.starts_with(b"b:1:rabid.flood::::n::xxx"));
        assert!(3 * b.len() >= MAX_REPLY, "the pad earns a full page");
    }

    #[test]
    fn listings_are_checked() {
        let c = Check::new(lobbies(2, 3));
        assert!(c
            .reply(
                b"l:p0|abc|1 / 4|1.0|Some mode:p0|abd|1 / 4|1.0|Some mode",
                false
            )
            .is_ok());
        assert!(c.reply(b"l:", false).is_err(), "the d: lobbies are missing");
        assert!(c.reply(b"l:p0|abc|2 / 4|1.0|Some mode", false).is_err());
        assert!(c
            .reply(
                b"b:1:3::s1|p0|1|4|0|1.0|Some mode||0:s2|p0|1|4|0|1.0|Some mode||1",
                false
            )
            .is_ok());
        assert!(c
            .reply(b"b:1:2::s1|p0|1|4|0|1.0|Some mode||0", false)
            .unwrap_err()
            .contains("total"));
        assert!(c.reply(b"b:1:3::", false).is_err());
        assert!(c.reply(b"i:p0", false).is_err());
        assert!(c.reply(&[b'l'; 10], true).is_err());
        let none = Check::new(lobbies(0, 0));
        assert!(none.reply(b"l:", false).is_ok());
        assert!(none.reply(b"b:1:0:", false).is_ok());
    }

    fn args(target: SocketAddr) -> PingArgs {
        PingArgs {
            target,
            sessions: 10,
            players: 2,
            outstanding: 4,
            rate: None,
            duration: 0.5,
            warmup: 0.1,
            max_pings: 1_000_000,
            timeout_ms: 1000,
            echo: false,
            threads: 1,
            sources: None,
            allow_remote: false,
            server_pid: None,
            json: false,
            lobbies: 601,
            lobby_sources: None,
            list_rate: Some(2000),
            list_sockets: 64,
            list_sources: None,
            max_listings: 1_000_000,
        }
    }

    /// Against the real server: the lobbies are listed (both kinds), the listing flood is
    /// answered with listings of exactly them, and the ping flood beside it stays exact.
    #[test]
    fn lobbies_and_a_listing_flood_beside_the_pings() {
        let server = Server::start(ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            ..ServerConfig::default()
        })
        .unwrap();
        let o = ping::run(&args(server.local_addr())).unwrap();
        assert_eq!(o.wrong.count, 0, "{:?}", o.wrong.samples);
        assert_eq!(o.lost, 0);
        assert!(o.replies > 0);
        let l = o.lobbies.unwrap();
        assert_eq!((l.compat, l.game), (301, 300));
        assert_eq!(server.directory().len(), 601, "every lobby is still listed");
        let listing = o.listing.unwrap();
        assert_eq!(listing.wrong.count, 0, "{:?}", listing.wrong.samples);
        // 2000/s over a window of 0.5 s or a little more.
        assert!((500..=1600).contains(&listing.sent), "{}", listing.sent);
        assert!(
            listing.replies + listing.unanswered >= listing.sent / 2 && listing.replies > 0,
            "{} sent, {} replies",
            listing.sent,
            listing.replies
        );
        server.shutdown();
    }

    #[test]
    fn a_listing_flood_needs_the_real_server() {
        let mut a = args("127.0.0.1:9".parse().unwrap());
        a.echo = true;
        assert!(ping::run(&a).err().unwrap().contains("--echo"));
        a.echo = false;
        a.list_rate = Some(0);
        assert!(ping::run(&a).err().unwrap().contains("--list-rate"));
    }
}
