//! Relay mode: game traffic through rabid-punch's relay (`--relay always`), measured against
//! the same load on rabid-echo.
//!
//! Set-up, per two-player session: host and join (as the ping mode does), start, read each
//! player's start message for its peer's relay address (a session the server did not relay is a
//! failure: the flood would measure nothing), confirm, then each player greets its peer's relay
//! port once and the peer must receive the greeting rewritten (target port = its own port): that
//! is how the relay learns who sends from which address. Each socket is then connected to its
//! peer's relay port, so the kernel delivers only datagrams from there.
//!
//! Flood: a closed loop where every player keeps `--window` datagrams of `--bytes` bytes in
//! flight towards its peer (or, with `--in-flight N`, N datagrams in flight in all, each slot
//! passed on to the next player in turn when its datagram arrives). A datagram carries its sender and sequence number and filler
//! derived from both, and must arrive byte for byte; one that does not match is a failure, one
//! that never comes within the timeout is lost (reported). Latency is one way, sender to peer
//! through the server: the same single traversal of the server as an echo's round trip, which is
//! why `--echo` (every player's datagrams come back to itself from rabid-echo) is the yardstick.
//!
//! The files, one job each: this one runs the threads and gathers what they saw; `setup.rs`
//! brings every pair to the point where the relay knows both players (start, confirm, greet);
//! `game.rs` writes and reads the game datagrams the flood sends; `flood.rs` is the measured
//! closed loop itself (send, sweep the receivers, expire what never came).

mod flood;
mod game;
mod setup;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::cli::{self, RelayArgs};
use crate::meter::Window;
use crate::net::{self, Conn, RecvBatch};
use crate::proto::Names;
use crate::report::{Failures, Latency};
use crate::threads::{self, split_len, split_start, Together};

pub const MIN_BYTES: usize = 16;
pub const MAX_BYTES: usize = 1400;
/// Players per session: the relay's unit is a pair of peers.
pub const PLAYERS: usize = 2;

/// What one run (or one thread of it) saw.
pub struct Outcome {
    pub latency: Latency,
    /// Datagrams sent in the measured window.
    pub sent: u64,
    /// Datagrams that arrived at their receiver in the measured window (whenever sent).
    pub forwarded: u64,
    /// Datagrams sent in the window that did not arrive within the timeout (or were overtaken
    /// by a later one of the same sender, which on one path means they will not come).
    pub lost: u64,
    /// Right datagrams that came after they had been counted lost.
    pub late: u64,
    /// Datagrams not sent because the socket buffer was full.
    pub blocked: u64,
    /// Receive calls in the window, most finding nothing: the generator's own overhead.
    pub polls: u64,
    pub wrong: Failures,
    pub setup: Duration,
    /// Set by the thread that reads the clocks.
    pub window: Option<Window>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            latency: Latency::new(),
            sent: 0,
            forwarded: 0,
            lost: 0,
            late: 0,
            blocked: 0,
            polls: 0,
            wrong: Failures::default(),
            setup: Duration::ZERO,
            window: None,
        }
    }

    fn merge(&mut self, o: Outcome) {
        self.latency.merge(&o.latency);
        self.sent += o.sent;
        self.forwarded += o.forwarded;
        self.lost += o.lost;
        self.late += o.late;
        self.blocked += o.blocked;
        self.polls += o.polls;
        self.wrong.merge(o.wrong);
        self.setup = self.setup.max(o.setup);
        self.window = self.window.or(o.window);
    }
}

/// The settings every thread shares.
struct Plan {
    target: SocketAddr,
    sources: Vec<IpAddr>,
    names: Names,
    echo: bool,
    window: usize,
    bytes: usize,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    server_pid: Option<u32>,
    allow_remote: bool,
}

/// One thread's share.
struct Share {
    thread: usize,
    first_session: usize,
    sessions: usize,
    /// This thread's share of `--in-flight`.
    in_flight: Option<usize>,
    max_datagrams: u64,
}

pub fn run(args: &RelayArgs) -> Result<Outcome, String> {
    cli::check_target(args.target, args.allow_remote)?;
    if args.sessions == 0 || args.sessions > 16_384 {
        return Err("--sessions must be 1..=16384".into());
    }
    let threads = args.threads;
    if threads == 0 || threads > 64 || threads > args.sessions {
        return Err("--threads must be 1..=64 and at most --sessions".into());
    }
    if args.window == 0 || args.window > 1024 {
        return Err("--window must be 1..=1024".into());
    }
    let players = args.sessions * PLAYERS;
    let in_flight = match args.in_flight {
        Some(n) if n == 0 || n > players * args.window => {
            return Err(format!(
                "--in-flight must be 1..={} (--window x players)",
                players * args.window
            ))
        }
        Some(n) if n < threads => return Err("--in-flight must be at least --threads".into()),
        other => other,
    };
    if !(MIN_BYTES..=MAX_BYTES).contains(&args.bytes) {
        return Err(format!("--bytes must be {MIN_BYTES}..={MAX_BYTES}"));
    }
    if args.timeout_ms == 0 || args.timeout_ms > 60_000 {
        return Err("--timeout-ms must be 1..=60000".into());
    }
    if args.max_datagrams == 0 {
        return Err("--max-datagrams must be at least 1".into());
    }
    let plan = Plan {
        target: args.target,
        sources: cli::sources(args.sources.as_deref(), args.target)?,
        names: Names::new(),
        echo: args.echo,
        window: args.window,
        bytes: args.bytes,
        warmup: cli::seconds("warmup", args.warmup, true)?,
        duration: cli::seconds("duration", args.duration, false)?,
        timeout: Duration::from_millis(args.timeout_ms),
        server_pid: args.server_pid,
        allow_remote: args.allow_remote,
    };
    net::ensure_files(args.sessions * PLAYERS)?;

    let shares: Vec<Share> = (0..threads)
        .map(|t| Share {
            thread: t,
            first_session: split_start(args.sessions, threads, t),
            sessions: split_len(args.sessions, threads, t),
            in_flight: in_flight.map(|n| split_len(n, threads, t)),
            max_datagrams: (args.max_datagrams / threads as u64).max(1),
        })
        .collect();
    let together = Together::new(threads);
    let results = threads::run_each(&shares, |share| thread(&plan, share, &together));
    let mut total = Outcome::new();
    for r in results {
        total.merge(r?);
    }
    Ok(total)
}

fn thread(plan: &Plan, share: &Share, together: &Together) -> Result<Outcome, String> {
    let mut batch = RecvBatch::new();
    let (mut players, start, setup) =
        together.set_up(|| setup::prepare(plan, share, &mut batch))?;
    let mut out = flood::flood(plan, share, &mut players, &mut batch, start, together)?;
    out.setup = setup;
    Ok(out)
}

/// One simulated player during the flood.
struct Player {
    conn: Conn,
    /// Index of the player that receives what this one sends: its peer, or itself with
    /// `--echo`. Pairs are symmetric, so it is also whom this player receives from.
    peer: usize,
    /// Written into its datagrams, so a datagram delivered to the wrong player is noticed.
    id: u32,
    /// Sequence number of its last datagram.
    seq: u64,
    /// Its datagrams that have not arrived yet, oldest first: sequence number, send time,
    /// whether it counts (sent in the measured window).
    pending: VecDeque<(u64, Instant, bool)>,
    /// Set-up datagrams that may still arrive late (a re-sent start message or greeting): not
    /// game traffic, but not a failure either.
    tolerated: Vec<Vec<u8>>,
}
