//! `rabid-punch client ...`: the scriptable client and the operator's smoke test.
//!
//! A normal run hosts or joins, punches, optionally exchanges a test payload with the peers,
//! and ends with one summary line (`--json`: one JSON object). `--probe` checks a deployed
//! server instead: it says whether the server answered, how fast, and which public address it
//! saw. Exit status: 0 on success, 1 on failure, 2 on bad usage.

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

#[derive(FromArgs, Debug)]
/// Host or join a session on a rabid-punch server, punch through NAT to the other players
/// exactly as the Godot plugin does, and report the port to use. With --probe: check that a
/// server answers and show the public address it sees.
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
    if args.probe {
        return probe(&args, server, deadline);
    }
    if args.payload.as_ref().is_some_and(|p| p.len() > MAX_PAYLOAD) {
        eprintln!("--payload is limited to {MAX_PAYLOAD} bytes (one datagram)");
        return ExitCode::from(2);
    }
    let (Some(session), Some(name)) = (&args.session, &args.name) else {
        eprintln!("--session and --name are required (or use --probe)");
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
    let started = Instant::now();
    let verbose = !args.json;
    let mut attempts = 1;
    let mut outcome = run(server, request.clone(), args.local_port, deadline, verbose);
    if let Some(why) = punch_failure(&outcome).filter(|_| args.retry) {
        if verbose {
            eprintln!("punch failed ({why}); trying once more");
        }
        attempts = 2;
        outcome = retry(server, request, args.local_port, deadline, verbose);
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
            json_summary(&outcome, elapsed, attempts, exchange.as_ref())
        );
    } else {
        println!(
            "{}",
            text_summary(&outcome, elapsed, attempts, exchange.as_ref())
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prefers IPv4: the Godot plugin cannot parse IPv6 peers, so games meet over IPv4.
fn resolve(server: &str) -> Result<SocketAddr, String> {
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

/// The second attempt of `--retry`: the host hosts again at once; a client joins again, and
/// while its host has not hosted again yet (`session_non_existent`), asks again every
/// [`REJOIN_EVERY`] for up to [`REJOIN_WAIT`].
fn retry(
    server: SocketAddr,
    request: Request,
    local_port: u16,
    deadline: Instant,
    verbose: bool,
) -> Result<Connected, Error> {
    let give_up = Instant::now() + REJOIN_WAIT;
    loop {
        let outcome = run(server, request.clone(), local_port, deadline, verbose);
        let not_yet = matches!(outcome, Err(Error::Server(ServerError::SessionNonExistent)))
            && request.role == Role::Join;
        let next = Instant::now() + REJOIN_EVERY;
        if !not_yet || next > give_up || next > deadline {
            return outcome;
        }
        std::thread::sleep(REJOIN_EVERY);
    }
}

fn run(
    server: SocketAddr,
    request: Request,
    local_port: u16,
    deadline: Instant,
    verbose: bool,
) -> Result<Connected, Error> {
    let session_name = request.session.clone();
    let session = Session::open_from(server, request, local_port)?;
    run_session(session, Some(deadline), |session, event| {
        if !verbose {
            return;
        }
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
            LobbyEvent::Failed(_) => {}
        }
    })
}

fn text_summary(
    outcome: &Result<Connected, Error>,
    elapsed: Duration,
    attempts: u32,
    exchange: Option<&Result<payload::Exchange, Error>>,
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
    line
}

fn json_summary(
    outcome: &Result<Connected, Error>,
    elapsed: Duration,
    attempts: u32,
    exchange: Option<&Result<payload::Exchange, Error>>,
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
        );
        assert!(line.starts_with(
            r#"{"outcome":"unreachable_self","self_port":null,"host_ip":null,"host_port":null,"elapsed_ms":1500,"attempts":2,"error":"#
        ));
        assert!(!line.contains('\n'));
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
