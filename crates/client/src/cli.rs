//! `rabid-punch client ...`: the scriptable client and the operator's smoke test.
//!
//! A normal run hosts or joins, punches, optionally exchanges a test payload with the peers,
//! and ends with one summary line (`--json`: one JSON object). `--probe` checks a deployed
//! server instead: it says whether the server answered, how fast, and which public address it
//! saw. Exit status: 0 on success, 1 on failure, 2 on bad usage.
//!
//! The lobby directory (docs/lobbies.md): `--list` prints a game's lobbies (`--game`, with
//! filters) or FusionV1's compatible list; `--quick-join` joins a lobby of `--game` found by
//! the server; a host with `--public` lists its session; `--chat` says a line once joined.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use argh::FromArgs;

use super::driver::{run_session, Connected, Session};
use super::error::{Error, ServerError};
use super::lobby::{LobbyEvent, Request, Role};
use super::payload;

mod directory;
mod list;

use directory::{browse_query, check_directory_flags, quick_join, text_or_empty};

/// How long the payload exchange may take after the punch. Clients finish their countdown up
/// to 3 s after the host, so the host must wait at least that long for them.
const PAYLOAD_BOUND: Duration = Duration::from_secs(10);
/// Longest `--payload`: it travels in one datagram with its header.
const MAX_PAYLOAD: usize = 1000;
/// With `--retry`, how long a client that failed first keeps asking to join the session again
/// before its host has hosted it again. Players of one group end their punch within a few
/// seconds of each other (a client gives up after the greetings, about 12 s after the start; a
/// host whose countdown ran out at about 15 s), so this leaves ample room.
const REJOIN_WAIT: Duration = Duration::from_secs(20);
/// Between two joins while the retried session does not exist yet: the plugin's re-send period.
const REJOIN_EVERY: Duration = Duration::from_millis(500);
/// `--quick-join` asks the server again this many times in all when the lobby it found is full
/// by the time we join (docs/lobbies.md, `q:1:`).
const QUICK_JOIN_TRIES: u32 = 3;

#[derive(FromArgs, Debug)]
/// Host or join a session on a rabid-punch server, punch through NAT to the other players
/// exactly as the Godot plugin does, and report the port to use. With --probe: check that a
/// server answers and show the public address it sees. With --list: show the lobby directory.
struct Args {
    /// the server, HOST:PORT
    #[argh(option)]
    server: String,
    /// session name (1-10 letters or digits)
    #[argh(option)]
    session: Option<String>,
    /// player name (1-12 letters or digits)
    #[argh(option)]
    name: Option<String>,
    /// host the session (default: join it)
    #[argh(switch)]
    host: bool,
    /// capacity of a hosted session, 2-12 (default 4)
    #[argh(option, default = "4")]
    max_players: u8,
    /// session password (1-12 letters or digits)
    #[argh(option)]
    password: Option<String>,
    /// while host, start the session once this many players are listed (default for a host:
    /// --max-players)
    #[argh(option)]
    start_when: Option<usize>,
    /// bound on the whole run, in seconds (default 60)
    #[argh(option, default = "60.0")]
    timeout: f64,
    /// print one JSON line at the end instead of text
    #[argh(switch)]
    json: bool,
    /// after punching, exchange this text peer to peer (clients send it, the host echoes it)
    /// and fail unless every expected peer was heard
    #[argh(option)]
    payload: Option<String>,
    /// smoke-test the server: host a random session, join it from a second socket, start it,
    /// and report round trip time and the public address the server saw
    #[argh(switch)]
    probe: bool,
    /// local UDP port to talk to the server from (default: any free port)
    #[argh(option, default = "0")]
    local_port: u16,
    /// when the punch fails, try once more in the same session (the host hosts it again, the
    /// others join again), as a game does after a failed punch; a server with the default
    /// --relay auto relays that retry
    #[argh(switch)]
    retry: bool,
    /// list lobbies instead: --game's directory (filters: --free, --open, --version-text,
    /// --mode, --order), or without --game FusionV1's compatible list; a table, or --json
    #[argh(switch)]
    list: bool,
    /// the game's id in the lobby directory (1-32 letters, digits, '.', '_', '-'), for --list,
    /// --quick-join and --public
    #[argh(option)]
    game: Option<String>,
    /// with --list: only lobbies with a free slot
    #[argh(switch)]
    free: bool,
    /// with --list: only lobbies without a password
    #[argh(switch)]
    open: bool,
    /// with --list: new (newest first, the default) or full (fullest first)
    #[argh(option)]
    order: Option<String>,
    /// join, as --name, a lobby of --game (and --version-text) with a free slot and no
    /// password, the fullest the server has
    #[argh(switch)]
    quick_join: bool,
    /// while host, list the session: in --game's directory (with --version-text, --mode,
    /// --description), or without --game in FusionV1's compatible list
    #[argh(switch)]
    public: bool,
    /// version text (0-32 bytes): shown by a --public session; a filter of --list and
    /// --quick-join
    #[argh(option)]
    version_text: Option<String>,
    /// mode text (0-32 bytes): shown by a --public session; a filter of --list
    #[argh(option)]
    mode: Option<String>,
    /// a --public session's description in --game's directory (0-64 bytes)
    #[argh(option)]
    description: Option<String>,
    /// say this in the lobby once joined (sent once; 1-200 bytes)
    #[argh(option)]
    chat: Option<String>,
}

/// Runs `rabid-punch client` with `args`, the arguments after `client`.
pub fn run_cli(args: &[String]) -> ExitCode {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = match Args::from_args(&["rabid-punch client"], &strs) {
        Ok(args) => args,
        Err(early) => {
            return if early.status.is_ok() {
                println!("{}", early.output);
                ExitCode::SUCCESS
            } else {
                eprintln!("{}", early.output);
                ExitCode::from(2)
            };
        }
    };
    if !args.timeout.is_finite() || args.timeout <= 0.0 || args.timeout > 86_400.0 {
        eprintln!("--timeout must be a number of seconds in (0, 86400]");
        return ExitCode::from(2);
    }
    let server = match resolve(&args.server) {
        Ok(addr) => addr,
        Err(why) => {
            eprintln!("--server {}: {why}", args.server);
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    if let Err(why) = check_directory_flags(&args) {
        eprintln!("{why}");
        return ExitCode::from(2);
    }
    if args.probe {
        return probe(&args, server, deadline);
    }
    if args.list {
        let query = args.game.as_deref().map(|game| browse_query(&args, game));
        return list::list(server, query.as_ref(), args.json);
    }
    if args.payload.as_ref().is_some_and(|p| p.len() > MAX_PAYLOAD) {
        eprintln!("--payload is limited to {MAX_PAYLOAD} bytes (one datagram)");
        return ExitCode::from(2);
    }
    let verbose = !args.json;
    let game = args.game.as_deref().unwrap_or_default();
    // A lobby found by --quick-join may be on another server of a fleet: joined there.
    let mut join_at = server;
    let session = if args.quick_join {
        match quick_join(server, game, args.version_text.as_deref(), verbose) {
            Ok((found, at)) => {
                join_at = at;
                Some(found)
            }
            Err(code) => return code,
        }
    } else {
        args.session.clone()
    };
    let (Some(session), Some(name)) = (&session, &args.name) else {
        eprintln!("--session and --name are required (or use --probe, --list or --quick-join)");
        return ExitCode::from(2);
    };
    let mut request = if args.host {
        Request::host(session, name, args.max_players)
    } else {
        Request::join(session, name)
    };
    request.password = args.password.clone();
    // A host must start at some point, and the CLI has no prompt: by default, when full.
    request.start_when = args
        .start_when
        .or(args.host.then_some(usize::from(args.max_players)));
    if args.public {
        let (version, mode) = (text_or_empty(&args.version_text), text_or_empty(&args.mode));
        request = match &args.game {
            Some(game) => request.public(game, version, mode, text_or_empty(&args.description)),
            None => request.public_compat(version, mode),
        };
        if let Err(e) = request.validate() {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let started = Instant::now();
    let mut runner = Runner {
        server: join_at,
        local_port: args.local_port,
        deadline,
        verbose,
        chat: args.chat.as_deref(),
        lobby: LobbyNews::default(),
    };
    let mut attempts = 1;
    let mut outcome = runner.run(request.clone());
    // A lobby found by --quick-join may be full by the time we join: ask again.
    let mut asked = 1;
    while args.quick_join
        && matches!(outcome, Err(Error::Server(ServerError::SessionFull)))
        && asked < QUICK_JOIN_TRIES
    {
        if verbose {
            eprintln!(
                "{} is full by now: asking for another lobby",
                request.session
            );
        }
        match quick_join(server, game, args.version_text.as_deref(), verbose) {
            Ok((session, at)) => {
                request.session = session;
                runner.server = at;
            }
            Err(code) => return code,
        }
        asked += 1;
        outcome = runner.run(request.clone());
    }
    if let Some(why) = punch_failure(&outcome).filter(|_| args.retry) {
        if verbose {
            eprintln!("punch failed ({why}); trying once more");
        }
        attempts = 2;
        outcome = runner.retry(request);
    }
    let elapsed = started.elapsed();
    let exchange = match (&outcome, &args.payload) {
        (Ok(connected), Some(text)) => {
            let bound = PAYLOAD_BOUND.min(deadline.saturating_duration_since(Instant::now()));
            Some(payload::exchange(connected, name, text, bound))
        }
        _ => None,
    };
    let ok = outcome.is_ok()
        && exchange
            .as_ref()
            .is_none_or(|e| e.as_ref().is_ok_and(|e| e.complete));
    if args.json {
        println!(
            "{}",
            json_summary(
                &outcome,
                elapsed,
                attempts,
                exchange.as_ref(),
                &runner.lobby
            )
        );
    } else {
        println!(
            "{}",
            text_summary(
                &outcome,
                elapsed,
                attempts,
                exchange.as_ref(),
                &runner.lobby
            )
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prefers IPv4: the Godot plugin cannot parse IPv6 peers, so games meet over IPv4.
pub(crate) fn resolve(server: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "resolves to no address".to_string())
}

/// Why `outcome` is a punch that a second attempt, relayed, could make, if it is one: the
/// server and the peers were there, their NATs were not passable. A host whose countdown ran
/// out reports success, as the plugin does, even if a client never reached it: that is a
/// failed punch too.
fn punch_failure(outcome: &Result<Connected, Error>) -> Option<&str> {
    match outcome {
        Err(e @ (Error::UnreachableSelf | Error::HostNotConfirmed)) => Some(e.code()),
        Ok(c) if c.punched.host.is_none() && c.punched.peers.iter().any(|p| !p.confirmed) => {
            Some("a client never confirmed")
        }
        _ => None,
    }
}

/// What every run of a session shares: the flags, and what the lobby said.
struct Runner<'a> {
    server: SocketAddr,
    local_port: u16,
    deadline: Instant,
    verbose: bool,
    /// `--chat`: said once joined.
    chat: Option<&'a str>,
    lobby: LobbyNews,
}

/// What the lobby said besides players and the start, for the summary.
#[derive(Default)]
struct LobbyNews {
    /// A `--public` session's listing: `ok` (`a:1:ok`), `sent` (FusionV1's `d:`, which has
    /// no answer), or why not (an error code).
    listing: Option<String>,
    /// Chat lines heard in the lobby, ours included: (player, text).
    chat: Vec<(String, String)>,
}

impl Runner<'_> {
    /// The second attempt of `--retry`: the host hosts again at once; a client joins again,
    /// and while its host has not hosted again yet (`session_non_existent`), asks again every
    /// [`REJOIN_EVERY`] for up to [`REJOIN_WAIT`].
    fn retry(&mut self, request: Request) -> Result<Connected, Error> {
        let give_up = Instant::now() + REJOIN_WAIT;
        loop {
            let outcome = self.run(request.clone());
            let not_yet = matches!(outcome, Err(Error::Server(ServerError::SessionNonExistent)))
                && request.role == Role::Join;
            let next = Instant::now() + REJOIN_EVERY;
            if !not_yet || next > give_up || next > self.deadline {
                return outcome;
            }
            std::thread::sleep(REJOIN_EVERY);
        }
    }

    fn run(&mut self, request: Request) -> Result<Connected, Error> {
        let session_name = request.session.clone();
        let compat = request.publish.as_ref().is_some_and(|p| p.game.is_none());
        let session = Session::open_from(self.server, request, self.local_port)?;
        let (verbose, chat, news) = (self.verbose, self.chat, &mut self.lobby);
        run_session(session, Some(self.deadline), |session, event| {
            match event {
                LobbyEvent::Joined(_) => {
                    if compat && session.lobby().is_host() {
                        news.listing = Some("sent".to_string());
                    }
                    if let Some(text) = chat {
                        if let Err(e) = session.chat(text) {
                            eprintln!("--chat not sent: {e}");
                        }
                    }
                }
                LobbyEvent::Listed => news.listing = Some("ok".to_string()),
                LobbyEvent::ListingFailed(e) => news.listing = Some(e.code().to_string()),
                LobbyEvent::Chat { player, text } => news.chat.push((player.clone(), text.clone())),
                _ => {}
            }
            if verbose {
                print_event(&session_name, session, event);
            }
        })
    }
}

/// A lobby event as a line of progress on stderr.
fn print_event(session_name: &str, session: &Session, event: &LobbyEvent) {
    match event {
        LobbyEvent::Joined(players) => eprintln!(
            "in session {session_name} ({}): {}",
            if session.lobby().is_host() {
                "host"
            } else {
                "client"
            },
            players.join(", ")
        ),
        LobbyEvent::Players(players) => eprintln!("players: {}", players.join(", ")),
        LobbyEvent::Started(info) => {
            let peers: Vec<String> = info
                .peers
                .iter()
                .map(|p| format!("{} {}", p.name, p.addr))
                .collect();
            eprintln!(
                "started: the server sees us on port {}; peers: {}; punching (about 15 s)",
                info.own_port,
                peers.join(", ")
            );
        }
        LobbyEvent::Listed => eprintln!("listed in the lobby directory"),
        LobbyEvent::ListingFailed(e) => eprintln!(
            "not listed: {} ({e}); the session goes on unlisted",
            e.code()
        ),
        LobbyEvent::Chat { player, text } => eprintln!("chat {player}: {text}"),
        LobbyEvent::Failed(_) => {}
    }
}

fn text_summary(
    outcome: &Result<Connected, Error>,
    elapsed: Duration,
    attempts: u32,
    exchange: Option<&Result<payload::Exchange, Error>>,
    lobby: &LobbyNews,
) -> String {
    let secs = elapsed.as_secs_f64();
    let mut line = match outcome {
        Ok(c) => match c.punched.host {
            Some(host) => format!(
                "success in {secs:.1} s: use local port {}, the host is at {host}",
                c.punched.self_port
            ),
            None => format!(
                "success in {secs:.1} s: host on local port {}",
                c.punched.self_port
            ),
        },
        Err(e) => format!("failed in {secs:.1} s: {} ({e})", e.code()),
    };
    if attempts > 1 {
        let _ = write!(line, " (after {attempts} attempts)");
    }
    match exchange {
        Some(Ok(x)) => {
            let heard: Vec<String> = x
                .heard
                .iter()
                .map(|(n, (a, t))| format!("{n}@{a}={t:?}"))
                .collect();
            let verdict = if x.complete { "ok" } else { "FAILED" };
            let _ = write!(line, "; payload {verdict}: {}", heard.join(", "));
        }
        Some(Err(e)) => {
            let _ = write!(line, "; payload FAILED: {e}");
        }
        None => {}
    }
    match lobby.listing.as_deref() {
        Some("ok") => line.push_str("; listed"),
        Some("sent") => line.push_str("; listed with d: (no answer to check)"),
        Some(code) => {
            let _ = write!(line, "; not listed ({code})");
        }
        None => {}
    }
    line
}

fn json_summary(
    outcome: &Result<Connected, Error>,
    elapsed: Duration,
    attempts: u32,
    exchange: Option<&Result<payload::Exchange, Error>>,
    lobby: &LobbyNews,
) -> String {
    let (code, self_port, host) = match outcome {
        Ok(c) => ("success", Some(c.punched.self_port), c.punched.host),
        Err(e) => (e.code(), None, None),
    };
    let mut out = String::from("{\"outcome\":");
    push_json_str(&mut out, code);
    let _ = write!(out, ",\"self_port\":{}", opt_num(self_port));
    out.push_str(",\"host_ip\":");
    match host {
        Some(h) => push_json_str(&mut out, &h.ip().to_string()),
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"host_port\":{}", opt_num(host.map(|h| h.port())));
    let _ = write!(out, ",\"elapsed_ms\":{}", elapsed.as_millis());
    let _ = write!(out, ",\"attempts\":{attempts}");
    if let Err(e) = outcome {
        out.push_str(",\"error\":");
        push_json_str(&mut out, &e.to_string());
    }
    if let Some(exchange) = exchange {
        out.push_str(",\"payload\":");
        match exchange {
            Ok(x) => {
                push_json_str(&mut out, if x.complete { "ok" } else { "incomplete" });
                out.push_str(",\"payload_peers\":{");
                for (i, (name, (addr, text))) in x.heard.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_str(&mut out, name);
                    out.push_str(":{\"addr\":");
                    push_json_str(&mut out, &addr.to_string());
                    out.push_str(",\"text\":");
                    push_json_str(&mut out, text);
                    out.push('}');
                }
                out.push('}');
            }
            Err(e) => push_json_str(&mut out, e.code()),
        }
    }
    if let Some(listing) = &lobby.listing {
        out.push_str(",\"listing\":");
        push_json_str(&mut out, listing);
    }
    if !lobby.chat.is_empty() {
        out.push_str(",\"chat\":[");
        for (i, (player, text)) in lobby.chat.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"player\":");
            push_json_str(&mut out, player);
            out.push_str(",\"text\":");
            push_json_str(&mut out, text);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    out
}

fn opt_num(n: Option<u16>) -> String {
    n.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A random `probe` + 5 characters session name, so concurrent probes do not collide.
fn random_session_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    let mut n = hasher.finish();
    let mut name = String::from("probe");
    for _ in 0..5 {
        let digit = (n % 36) as u32;
        n /= 36;
        name.push(char::from_digit(digit, 36).unwrap_or('x'));
    }
    name
}

/// What the probe measured.
struct ProbeReport {
    rtt: Duration,
    public: SocketAddr,
    local_port: u16,
}

/// The smoke test. Hosting alone only returns `i:<name>`, which says nothing about addresses;
/// the start message is the only reply that carries one. So the probe hosts a random 2-player
/// session, joins it from a second socket and starts it: the joiner's start message lists the
/// host socket's public address as the server saw it. Both sides answer `y:` so the server
/// stops re-sending, and the server forgets a started session by itself, so nothing is left
/// behind.
fn probe(args: &Args, server: SocketAddr, deadline: Instant) -> ExitCode {
    let session = random_session_name();
    let started = Instant::now();
    let result = probe_steps(server, &session, args.local_port, deadline);
    let elapsed = started.elapsed();
    let answered = matches!(&result, Ok(_) | Err((true, _)));
    if args.json {
        let mut out = String::from("{\"outcome\":");
        match &result {
            Ok(_) => push_json_str(&mut out, "success"),
            Err((_, e)) => push_json_str(&mut out, e.code()),
        }
        let _ = write!(out, ",\"server_answered\":{answered}");
        match &result {
            Ok(r) => {
                let _ = write!(
                    out,
                    ",\"rtt_ms\":{:.3},\"public_addr\":",
                    r.rtt.as_secs_f64() * 1000.0
                );
                push_json_str(&mut out, &r.public.to_string());
                let _ = write!(out, ",\"local_port\":{}", r.local_port);
            }
            Err((_, e)) => {
                out.push_str(",\"error\":");
                push_json_str(&mut out, &e.to_string());
            }
        }
        let _ = write!(out, ",\"elapsed_ms\":{}}}", elapsed.as_millis());
        println!("{out}");
    } else {
        match &result {
            Ok(r) => println!(
                "server {server} answered in {:.1} ms; it sees this machine as {} (local port {}: {})",
                r.rtt.as_secs_f64() * 1000.0,
                r.public,
                r.local_port,
                if r.local_port == r.public.port() { "the NAT, if any, kept the port" } else { "the NAT changed the port" }
            ),
            Err((true, e)) => println!("server {server} answered, but the probe failed: {} ({e})", e.code()),
            Err((false, e)) => println!("server {server} did not answer: {} ({e})", e.code()),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The probe's steps; an error says whether the server had answered before it.
fn probe_steps(
    server: SocketAddr,
    session: &str,
    local_port: u16,
    deadline: Instant,
) -> Result<ProbeReport, (bool, Error)> {
    let first = Instant::now();
    let mut host = Session::open_from(server, Request::host(session, "probe", 2), local_port)
        .map_err(|e| (false, e))?;
    wait_for(&mut host, deadline, |e| matches!(e, LobbyEvent::Joined(_)))
        .map_err(|e| (false, e))?;
    let rtt = first.elapsed();
    let outcome = (|| {
        let mut joiner = Session::open(server, Request::join(session, "probe2"))?;
        wait_for(&mut joiner, deadline, |e| {
            matches!(e, LobbyEvent::Joined(_))
        })?;
        wait_for(
            &mut host,
            deadline,
            |e| matches!(e, LobbyEvent::Players(p) if p.len() == 2),
        )?;
        host.start();
        wait_for(&mut host, deadline, |e| matches!(e, LobbyEvent::Started(_)))?;
        let info = wait_for(&mut joiner, deadline, |e| {
            matches!(e, LobbyEvent::Started(_))
        })?;
        let LobbyEvent::Started(info) = info else {
            return Err(Error::Deadline);
        };
        let public = info.peers.first().map(|p| p.addr).ok_or(Error::Deadline)?;
        Ok(ProbeReport {
            rtt,
            public,
            local_port: host.local_port()?,
        })
    })();
    if outcome.is_err() {
        // Leave no session behind (best effort, bounded).
        host.exit();
        let _ = wait_for(
            &mut host,
            (Instant::now() + Duration::from_secs(1)).min(deadline),
            |_| false,
        );
    }
    outcome.map_err(|e| (true, e))
}

/// Drives `session` until an event matching `wanted` (returned), an error, or `deadline`.
fn wait_for(
    session: &mut Session,
    deadline: Instant,
    wanted: impl Fn(&LobbyEvent) -> bool,
) -> Result<LobbyEvent, Error> {
    loop {
        match session.next_event(Some(deadline))? {
            Some(event) if wanted(&event) => return Ok(event),
            Some(_) => {}
            None => return Err(Error::Deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn failure_summary_is_one_json_line() {
        let line = json_summary(
            &Err(Error::UnreachableSelf),
            Duration::from_millis(1500),
            2,
            None,
            &LobbyNews::default(),
        );
        assert!(line.starts_with(
            r#"{"outcome":"unreachable_self","self_port":null,"host_ip":null,"host_port":null,"elapsed_ms":1500,"attempts":2,"error":"#
        ));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_summary_tells_the_listing_and_the_chat() {
        let lobby = LobbyNews {
            listing: Some("non_host_player".to_string()),
            chat: vec![("bob".to_string(), "gg: \"wp\"".to_string())],
        };
        let line = json_summary(&Err(Error::Deadline), Duration::ZERO, 1, None, &lobby);
        assert!(
            line.ends_with(
                r#","listing":"non_host_player","chat":[{"player":"bob","text":"gg: \"wp\""}]}"#
            ),
            "{line}"
        );
        let text = text_summary(&Err(Error::Deadline), Duration::ZERO, 1, None, &lobby);
        assert!(text.ends_with("; not listed (non_host_player)"), "{text}");
    }

    #[test]
    fn probe_names_are_valid_session_names() {
        let name = random_session_name();
        assert_eq!(name.len(), 10);
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run_cli(&["--bogus".to_string()]), ExitCode::from(2));
        let args: Vec<String> = ["--server", "127.0.0.1:1", "--timeout", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(run_cli(&args), ExitCode::from(2));
        let args: Vec<String> = ["--server", "127.0.0.1:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(run_cli(&args), ExitCode::from(2));
    }
}
