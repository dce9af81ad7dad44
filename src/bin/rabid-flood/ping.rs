//! Ping mode: S sessions x P players are joined, then pinged round-robin over all their sockets,
//! either in a closed loop (`--outstanding` pings in flight in total, split over the threads) or
//! an open loop (`--rate` pings per second, latency counted from each ping's scheduled time so a
//! slow server cannot hide its queueing). Every reply must be the exact `i:` list of the player's
//! session (or, with `--echo`, the ping's own bytes).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::cli::{self, PingArgs, MAX_PLAYERS};
use crate::lobbies::{self, ListOutcome, ListPlan, Lobbies};
use crate::meter::{Snapshot, Window};
use crate::net::{self, Conn, RecvBatch};
use crate::proto::{self, Names};
use crate::report::{Failures, Latency};
use crate::setup;
use crate::threads::{self, split_len, split_start, Together};

/// How often pings without a reply are looked for.
const TIMEOUT_SCAN: Duration = Duration::from_millis(5);

/// What one run (or one thread of it) saw.
pub struct Outcome {
    pub latency: Latency,
    /// Pings sent in the measured window.
    pub sent: u64,
    /// Replies received in the measured window (whenever their ping was sent).
    pub replies: u64,
    /// Pings sent in the window that got no reply within the timeout.
    pub lost: u64,
    /// Right replies that came after their ping had been counted lost.
    pub late: u64,
    /// Pings not sent because the socket buffer was full.
    pub blocked: u64,
    /// Receive calls made in the window, most of them finding nothing: the generator's own
    /// overhead, reported so a generator-bound run can be told from a server-bound one.
    pub polls: u64,
    pub wrong: Failures,
    pub setup: Duration,
    /// Set by the thread that reads the clocks.
    pub window: Option<Window>,
    /// The server's resident memory before the sockets were opened and after every player
    /// joined (read with `--server-pid`): its cost per player over real sockets.
    pub server_rss: Option<(u64, u64)>,
    /// The server's resident memory when measuring began (read by thread 0).
    joined_rss: Option<u64>,
    /// The public lobbies listed before the flood (`--lobbies`).
    pub lobbies: Option<Lobbies>,
    /// What the listing flood saw in the window (`--list-rate`).
    pub listing: Option<ListOutcome>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            latency: Latency::new(),
            sent: 0,
            replies: 0,
            lost: 0,
            late: 0,
            blocked: 0,
            polls: 0,
            wrong: Failures::default(),
            setup: Duration::ZERO,
            window: None,
            server_rss: None,
            joined_rss: None,
            lobbies: None,
            listing: None,
        }
    }

    fn merge(&mut self, o: Outcome) {
        self.latency.merge(&o.latency);
        self.sent += o.sent;
        self.replies += o.replies;
        self.lost += o.lost;
        self.late += o.late;
        self.blocked += o.blocked;
        self.polls += o.polls;
        self.wrong.merge(o.wrong);
        self.setup = self.setup.max(o.setup);
        self.window = self.window.or(o.window);
        self.joined_rss = self.joined_rss.or(o.joined_rss);
    }
}

/// The settings every thread shares.
struct Plan {
    target: SocketAddr,
    sources: Vec<IpAddr>,
    names: Names,
    players: usize,
    echo: bool,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    server_pid: Option<u32>,
}

/// One thread's share.
struct Share {
    thread: usize,
    first_session: usize,
    sessions: usize,
    window: usize,
    /// Time between two pings of this thread in an open loop.
    interval: Option<Duration>,
    max_pings: u64,
}

pub fn run(args: &PingArgs) -> Result<Outcome, String> {
    cli::check_target(args.target, args.allow_remote)?;
    if args.players == 0 || args.players > MAX_PLAYERS {
        return Err(format!("--players must be 1..={MAX_PLAYERS}"));
    }
    if args.sessions == 0 || args.sessions as u64 > proto::MAX_SESSIONS {
        return Err("--sessions must be at least 1".into());
    }
    let threads = args.threads;
    if threads == 0 || threads > 64 || threads > args.sessions {
        return Err("--threads must be 1..=64 and at most --sessions".into());
    }
    if args.rate.is_none() && (args.outstanding < threads) {
        return Err("--outstanding must be at least --threads".into());
    }
    if args.rate == Some(0) || args.rate.is_some_and(|r| r > 100_000_000) {
        return Err("--rate must be 1..=100000000 pings per second".into());
    }
    if args.timeout_ms == 0 || args.timeout_ms > 60_000 {
        return Err("--timeout-ms must be 1..=60000".into());
    }
    if args.echo && (args.lobbies > 0 || args.list_rate.is_some()) {
        return Err("--lobbies and --list-rate need rabid-punch, not --echo".into());
    }
    if args.lobbies as u64 > proto::MAX_SESSIONS / 2 {
        return Err("--lobbies is too large".into());
    }
    if args.list_rate == Some(0) || args.list_rate.is_some_and(|r| r > 10_000_000) {
        return Err("--list-rate must be 1..=10000000 listings per second".into());
    }
    if args.list_rate.is_some() && (args.list_sockets == 0 || args.list_sockets > 65_536) {
        return Err("--list-sockets must be 1..=65536".into());
    }
    let plan = Plan {
        target: args.target,
        sources: cli::sources(args.sources.as_deref(), args.target)?,
        names: Names::new(),
        players: args.players,
        echo: args.echo,
        warmup: cli::seconds("warmup", args.warmup, true)?,
        duration: cli::seconds("duration", args.duration, false)?,
        timeout: Duration::from_millis(args.timeout_ms),
        server_pid: args.server_pid,
    };
    let list_sockets = if args.list_rate.is_some() {
        args.list_sockets
    } else {
        0
    };
    // The lobby hosts' sockets are open a window at a time, plus a few held back.
    let lobby_sockets = if args.lobbies > 0 { 1024 } else { 0 };
    net::ensure_files(args.sessions * args.players + list_sockets + lobby_sockets)?;
    let lobby_sources = cli::sources_or(
        args.lobby_sources.as_deref(),
        "127.1.0.0-127.1.3.255",
        args.target,
    )?;
    let list_sources = cli::sources_or(
        args.list_sources.as_deref(),
        "127.2.0.0-127.2.15.255",
        args.target,
    )?;
    // Lobbies are sessions of this run after the flood's own.
    let lobbies = if args.lobbies > 0 {
        Some(lobbies::create(
            plan.target,
            &lobby_sources,
            &plan.names,
            args.sessions as u64,
            args.lobbies,
            &mut RecvBatch::new(),
        )?)
    } else {
        None
    };
    let list_plan = args.list_rate.map(|rate| ListPlan {
        target: plan.target,
        sources: &list_sources,
        sockets: list_sockets,
        rate,
        max: args.max_listings,
        warmup: plan.warmup,
        duration: plan.duration,
        lobbies: lobbies.unwrap_or_default(),
    });

    let shares: Vec<Share> = (0..threads)
        .map(|t| Share {
            thread: t,
            first_session: split_start(args.sessions, threads, t),
            sessions: split_len(args.sessions, threads, t),
            window: split_len(args.outstanding, threads, t),
            interval: args
                .rate
                .map(|r| Duration::from_secs_f64(threads as f64 / r as f64)),
            max_pings: split_len(args.max_pings as usize, threads, t) as u64,
        })
        .collect();
    let before = Snapshot::take(plan.server_pid);
    // The listing flood, when there is one, is one more thread at the meeting points.
    let together = Together::new(threads + usize::from(list_plan.is_some()));
    let (results, listing) = std::thread::scope(|scope| {
        let lister = list_plan
            .as_ref()
            .map(|lp| scope.spawn(|| lobbies::list_thread(lp, &together)));
        let results = threads::run_each(&shares, |share| thread(&plan, share, &together));
        let listing = lister.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("the listing thread panicked".into()))
        });
        (results, listing)
    });
    // A listing flood that failed stopped the ping threads: its reason comes first.
    if let Some(Err(why)) = &listing {
        if !why.starts_with("stopped") {
            return Err(why.clone());
        }
    }
    let mut total = Outcome::new();
    for r in results {
        total.merge(r?);
    }
    total.listing = listing.transpose()?;
    total.lobbies = lobbies;
    if let (Some(a), Some(b)) = (before.server_rss, total.joined_rss) {
        total.server_rss = Some((a, b));
    }
    Ok(total)
}

fn thread(plan: &Plan, share: &Share, together: &Together) -> Result<Outcome, String> {
    let mut batch = RecvBatch::new();
    let (mut players, start, setup) = together.set_up(|| prepare(plan, share, &mut batch))?;
    let mut out = flood(plan, share, &mut players, &mut batch, start, together)?;
    out.setup = setup;
    Ok(out)
}

/// One simulated player during the flood.
struct Player {
    conn: Conn,
    ping: Vec<u8>,
    /// Pings without a reply yet, oldest first: sequence number, send time, whether it counts.
    pending: VecDeque<(u64, Instant, bool)>,
}

fn prepare(plan: &Plan, share: &Share, batch: &mut RecvBatch) -> Result<Vec<Player>, String> {
    let first_socket = share.first_session * plan.players;
    let conns = net::open_many(
        share.sessions * plan.players,
        first_socket,
        &plan.sources,
        plan.target,
    )
    .map_err(|e| e.to_string())?;
    let sessions: Vec<String> = (0..share.sessions)
        .map(|s| plan.names.session((share.first_session + s) as u64))
        .collect();
    if !plan.echo {
        setup::fill(&conns, &sessions, plan.players, batch)?;
    }
    let names = proto::players(plan.players);
    Ok(conns
        .into_iter()
        .enumerate()
        .map(|(k, conn)| Player {
            conn,
            ping: proto::ping(&sessions[k / plan.players], &names[k % plan.players]),
            pending: VecDeque::new(),
        })
        .collect())
}

/// The flood itself: warm-up, measured window, then a drain of the last replies.
///
/// The measured window opens at [`Together::window_start`] and lasts `--duration` for every
/// thread; thread 0 takes the closing snapshot.
fn flood(
    plan: &Plan,
    share: &Share,
    players: &mut [Player],
    batch: &mut RecvBatch,
    t0: Instant,
    together: &Together,
) -> Result<Outcome, String> {
    let info = proto::info(&proto::players(plan.players));
    let mut out = Outcome::new();
    let mut run = Run {
        players,
        fifo: VecDeque::new(),
        seq: 0,
        cursor: 0,
        in_flight: 0,
        measuring: false,
        echo: plan.echo,
        info: &info,
        timeout: plan.timeout,
        refused: None,
    };
    let warm_end = t0 + plan.warmup;
    // Moved to the window's start plus its duration once the window starts.
    let mut end = warm_end + plan.duration;
    let mut first_snap: Option<Snapshot> = None;
    let mut next_due = t0;
    let mut total_sent = 0u64;
    let mut last_scan = t0;
    loop {
        let now = Instant::now();
        if !run.measuring && now >= warm_end {
            run.measuring = true;
            let first = together.window_start(plan.server_pid);
            end = first.at + plan.duration;
            if share.thread == 0 {
                first_snap = Some(first);
            }
        }
        if now >= end || total_sent >= share.max_pings {
            break;
        }
        // Nothing listens at the target (or another thread found so): flooding a closed port
        // measures nothing.
        if let Some(why) = run.refused.take() {
            together.abort();
            return Err(why);
        }
        if together.aborted() {
            return Err("stopped: another generator thread failed".into());
        }
        match share.interval {
            None => {
                // At most one window of attempts per round, so sends that keep failing (and
                // so never count as in flight) cannot hold the loop past its end time.
                let mut tries = 0;
                while run.in_flight < share.window
                    && total_sent < share.max_pings
                    && tries < share.window
                {
                    tries += 1;
                    total_sent += 1;
                    run.send_next(Instant::now(), &mut out);
                }
            }
            Some(interval) => {
                while next_due <= now && total_sent < share.max_pings {
                    total_sent += 1;
                    run.send_next(next_due, &mut out);
                    next_due += interval;
                }
            }
        }
        run.sweep(batch, &mut out, true);
        if now.duration_since(last_scan) >= TIMEOUT_SCAN {
            run.expire(now, &mut out);
            last_scan = now;
        }
    }
    if let Some(first) = first_snap {
        out.joined_rss = first.server_rss;
        out.window = Some(Window::between(&first, &Snapshot::take(plan.server_pid)));
    }
    // Drain: no new pings; wait for the answers still due, at most one timeout.
    let drain_end = Instant::now() + plan.timeout;
    while run.in_flight > 0 {
        let now = Instant::now();
        if now >= drain_end {
            run.expire(now + plan.timeout, &mut out);
            break;
        }
        run.sweep(batch, &mut out, false);
        run.expire(now, &mut out);
    }
    Ok(out)
}

/// The mutable state of one thread's flood.
struct Run<'a> {
    players: &'a mut [Player],
    /// Every ping without a reply yet, in send order, as (player, sequence number). Entries
    /// whose ping was answered stay until they reach the front, and are skipped for free.
    fifo: VecDeque<(usize, u64)>,
    seq: u64,
    cursor: usize,
    in_flight: usize,
    measuring: bool,
    echo: bool,
    info: &'a [u8],
    timeout: Duration,
    /// Set when the target refused a datagram (ICMP port unreachable).
    refused: Option<String>,
}

/// A sweep stops after this many sockets in a row had nothing: replies come back roughly in
/// send order, so the sockets after them are unlikely to have anything either. Reading every
/// socket with a ping out instead costs about ten empty receive calls per reply, which made the
/// generator, not the target, the limit.
const EMPTY_POLLS: u32 = 2;
/// Pings older than this do not end a sweep when their socket is empty (they are probably lost,
/// or stuck behind a slow server thread): otherwise they would hide the replies behind them.
const STALLED: Duration = Duration::from_millis(5);

impl Run<'_> {
    /// Ping the next player in round-robin order (so every player keeps pinging and none
    /// times out on the server), stamped with `at`.
    fn send_next(&mut self, at: Instant, out: &mut Outcome) {
        let p = self.cursor;
        self.cursor = (self.cursor + 1) % self.players.len();
        let player = &mut self.players[p];
        match player.conn.send(&player.ping) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                out.blocked += 1;
                return;
            }
            Err(e) => {
                let local = player.conn.local;
                let why = format!("{local}: send failed: {}", describe(&e));
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.refused = Some(why);
                } else {
                    out.wrong.add(|| why);
                }
                return;
            }
        }
        if self.measuring {
            out.sent += 1;
        }
        self.seq += 1;
        player.pending.push_back((self.seq, at, self.measuring));
        self.fifo.push_back((p, self.seq));
        self.in_flight += 1;
    }

    /// Whether the ping `seq` of player `p` still waits for its reply.
    fn waiting(&self, p: usize, seq: u64) -> bool {
        // A player's pings are answered (or expire) oldest first.
        self.players[p]
            .pending
            .front()
            .is_some_and(|&(first, _, _)| first <= seq)
    }

    /// Read the sockets of the oldest pings first and check what came, until a few sockets in a
    /// row had nothing.
    fn sweep(&mut self, batch: &mut RecvBatch, out: &mut Outcome, in_window: bool) {
        let counting = in_window && self.measuring;
        let mut empty = 0;
        let mut i = 0;
        let now = Instant::now();
        while i < self.fifo.len() && empty < EMPTY_POLLS {
            let (p, seq) = self.fifo[i];
            if !self.waiting(p, seq) {
                if i == 0 {
                    self.fifo.pop_front();
                } else {
                    i += 1;
                }
                continue;
            }
            i += 1;
            if counting {
                out.polls += 1;
            }
            let got = self.read(p, batch, out, counting);
            if got > 0 {
                empty = 0;
            } else if self.players[p]
                .pending
                .front()
                .is_none_or(|&(_, sent, _)| now.saturating_duration_since(sent) < STALLED)
            {
                empty += 1;
            }
        }
    }

    /// Read what player `p`'s socket holds; returns how many datagrams came.
    fn read(
        &mut self,
        p: usize,
        batch: &mut RecvBatch,
        out: &mut Outcome,
        counting: bool,
    ) -> usize {
        let player = &mut self.players[p];
        match batch.recv_one(player.conn.fd()) {
            Ok(0) => 0,
            Ok(n) => {
                let now = Instant::now();
                let expected = if self.echo {
                    &player.ping[..]
                } else {
                    self.info
                };
                for d in 0..n {
                    let (data, truncated) = batch.get(d);
                    let right = data == expected && !truncated;
                    if counting {
                        out.replies += 1;
                    }
                    match player.pending.pop_front() {
                        Some((_, sent, counted)) => {
                            self.in_flight -= 1;
                            if right {
                                if counted {
                                    out.latency.record(now.saturating_duration_since(sent));
                                }
                            } else {
                                wrong(out, player, data, expected);
                            }
                        }
                        None if right => out.late += 1,
                        None => wrong(out, player, data, expected),
                    }
                }
                n
            }
            Err(e) => {
                let local = player.conn.local;
                let why = format!("{local}: receive failed: {}", describe(&e));
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.refused = Some(why);
                } else {
                    out.wrong.add(|| why);
                }
                // The socket is broken: forget its pings rather than spin on it.
                let dropped = player.pending.len();
                player.pending.clear();
                self.in_flight -= dropped;
                0
            }
        }
    }

    /// Count pings older than the timeout as lost and free their slot. The fifo is in send
    /// order, so the walk stops at the first ping young enough.
    fn expire(&mut self, now: Instant, out: &mut Outcome) {
        while let Some(&(p, seq)) = self.fifo.front() {
            let player = &mut self.players[p];
            match player.pending.front() {
                Some(&(first, sent, counted)) if first == seq => {
                    if now.saturating_duration_since(sent) < self.timeout {
                        break;
                    }
                    player.pending.pop_front();
                    self.in_flight -= 1;
                    if counted {
                        out.lost += 1;
                    }
                }
                // Answered already.
                _ => {}
            }
            self.fifo.pop_front();
        }
    }
}

fn wrong(out: &mut Outcome, player: &Player, data: &[u8], expected: &[u8]) {
    out.wrong.add(|| {
        format!(
            "{} ({}): got {:?}, expected {:?}",
            player.conn.local,
            proto::show(&player.ping),
            proto::show(data),
            proto::show(expected)
        )
    });
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "connection refused (nothing listens at the target)".into()
    } else {
        e.to_string()
    }
}
