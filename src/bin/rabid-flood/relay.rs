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
//! flight towards its peer. A datagram carries its sender and sequence number and filler
//! derived from both, and must arrive byte for byte; one that does not match is a failure, one
//! that never comes within the timeout is lost (reported). Latency is one way, sender to peer
//! through the server: the same single traversal of the server as an echo's round trip, which is
//! why `--echo` (every player's datagrams come back to itself from rabid-echo) is the yardstick.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use crate::cli::{self, RelayArgs};
use crate::meter::{Snapshot, Window};
use crate::net::{self, Conn, RecvBatch};
use crate::proto::{self, Names};
use crate::report::{Failures, Latency};
use crate::setup;

/// How often datagrams that never arrived are looked for.
const TIMEOUT_SCAN: Duration = Duration::from_millis(5);
/// Sessions started (or greeted) together during set-up: enough to hide round trips, few
/// enough that one burst does not overflow the server's receive buffer.
const SETUP_WINDOW: usize = 128;
/// A set-up step re-sends after this long without an answer, as the real client does.
const RETRY: Duration = Duration::from_millis(500);
/// A set-up step still missing answers after this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(10);
/// First bytes of every game datagram: not a peer-phase message (`g:`, `c:`, `y:`), so the relay
/// must pass it unchanged, as it does the game's own traffic.
const MAGIC: [u8; 2] = [0xd7, 0x01];
/// Magic, sender id (u32) and sequence number (u64) come before the filler.
const HEADER: usize = 14;
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
            max_datagrams: (args.max_datagrams / threads as u64).max(1),
        })
        .collect();
    let barrier = Barrier::new(threads);
    let t0 = OnceLock::new();
    let abort = AtomicBool::new(false);
    let results: Vec<Result<Outcome, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let (plan, barrier, t0, abort) = (&plan, &barrier, &t0, &abort);
                scope.spawn(move || thread(plan, share, barrier, t0, abort))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a generator thread panicked".into()))
            })
            .collect()
    });
    let mut total = Outcome::new();
    for r in results {
        total.merge(r?);
    }
    Ok(total)
}

/// Start of part `t` of `n` equal parts of `0..len`.
fn split_start(len: usize, n: usize, t: usize) -> usize {
    t * (len / n) + t.min(len % n)
}

/// Length of part `t` of `n` equal parts of `0..len`.
fn split_len(len: usize, n: usize, t: usize) -> usize {
    len / n + usize::from(t < len % n)
}

fn thread(
    plan: &Plan,
    share: &Share,
    barrier: &Barrier,
    t0: &OnceLock<Instant>,
    abort: &AtomicBool,
) -> Result<Outcome, String> {
    let mut batch = RecvBatch::new();
    let began = Instant::now();
    let prepared = prepare(plan, share, &mut batch);
    let setup = began.elapsed();
    // Every thread reaches the barrier, failed or not, so none waits forever.
    if prepared.is_err() {
        abort.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    let mut players = prepared?;
    if abort.load(Ordering::SeqCst) {
        return Err("stopped: another generator thread failed".into());
    }
    let start = *t0.get_or_init(Instant::now);
    let mut out = flood(plan, share, &mut players, &mut batch, start, abort)?;
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

/// Opens the thread's sockets and, unless `--echo`, brings every pair to the point where the
/// relay knows both players; returns the players with their sockets connected to where their
/// datagrams go.
fn prepare(plan: &Plan, share: &Share, batch: &mut RecvBatch) -> Result<Vec<Player>, String> {
    let first_socket = share.first_session * PLAYERS;
    let conns = net::open_many(
        share.sessions * PLAYERS,
        first_socket,
        &plan.sources,
        plan.target,
    )
    .map_err(|e| e.to_string())?;
    let mut tolerated = vec![Vec::new(); conns.len()];
    if !plan.echo {
        let sessions: Vec<String> = (0..share.sessions)
            .map(|s| plan.names.session((share.first_session + s) as u64))
            .collect();
        setup::fill(&conns, &sessions, PLAYERS, batch)?;
        let mut relay_addrs = vec![None; conns.len()];
        let mut first = 0;
        while first < sessions.len() {
            let last = (first + SETUP_WINDOW).min(sessions.len());
            start(
                &conns,
                &sessions,
                first..last,
                batch,
                &mut relay_addrs,
                &mut tolerated,
            )?;
            first = last;
        }
        // Where each player's datagrams go: the peer's relay port.
        let mut dest = Vec::with_capacity(conns.len());
        for (k, addr) in relay_addrs.into_iter().enumerate() {
            let addr = addr.ok_or_else(|| format!("player {k}: no start message"))?;
            cli::check_target(addr, plan.allow_remote)
                .map_err(|e| format!("the start message lists a relay address: {e}"))?;
            dest.push(addr);
        }
        for (conn, &to) in conns.iter().zip(&dest) {
            conn.reconnect(to)
                .map_err(|e| format!("{}: cannot connect to {to}: {e}", conn.local))?;
        }
        let mut first = 0;
        while first < sessions.len() {
            let last = (first + SETUP_WINDOW).min(sessions.len());
            greet(
                &conns,
                first * PLAYERS..last * PLAYERS,
                &dest,
                batch,
                &mut tolerated,
            )?;
            first = last;
        }
    }
    Ok(conns
        .into_iter()
        .zip(tolerated)
        .enumerate()
        .map(|(k, (conn, tolerated))| Player {
            conn,
            peer: if plan.echo { k } else { k ^ 1 },
            id: (first_socket + k) as u32,
            seq: 0,
            pending: VecDeque::new(),
            tolerated,
        })
        .collect())
}

/// Starts the sessions of `range`: each player must get a start message listing its peer at a
/// relay address (written to `relay_addrs`), and confirms it so the server stops re-sending.
fn start(
    conns: &[Conn],
    sessions: &[String],
    range: std::ops::Range<usize>,
    batch: &mut RecvBatch,
    relay_addrs: &mut [Option<SocketAddr>],
    tolerated: &mut [Vec<Vec<u8>>],
) -> Result<(), String> {
    let names = proto::players(PLAYERS);
    for s in range.clone() {
        conns[s * PLAYERS]
            .send(&proto::start(&sessions[s], &names[0]))
            .map_err(|e| io_failure(&e, &sessions[s], &names[0]))?;
    }
    let mut waiting: Vec<usize> = range
        .flat_map(|s| (0..PLAYERS).map(move |j| s * PLAYERS + j))
        .collect();
    let began = Instant::now();
    let mut last_send = began;
    while !waiting.is_empty() {
        let mut i = 0;
        while i < waiting.len() {
            let k = waiting[i];
            let (s, j) = (k / PLAYERS, k % PLAYERS);
            let n = batch
                .recv(conns[k].fd())
                .map_err(|e| io_failure(&e, &sessions[s], &names[j]))?;
            let mut done = false;
            for d in 0..n {
                let (data, truncated) = batch.get(d);
                if data.starts_with(b"s:") && !truncated {
                    let peer = k ^ 1;
                    let listed = proto::start_peer(data, conns[k].local.port(), &names[j ^ 1])
                        .map_err(|e| format!("session {} player {}: {e}", sessions[s], names[j]))?;
                    if listed == conns[peer].local {
                        return Err(format!(
                            "session {} was not relayed (its start message lists the peer's own \
                             address): run the server with --relay always and a --relay-ports \
                             range of at least two ports per session",
                            sessions[s]
                        ));
                    }
                    relay_addrs[k] = Some(listed);
                    tolerated[k].push(data.to_vec());
                    conns[k]
                        .send(&proto::confirm(&sessions[s], &names[j]))
                        .map_err(|e| io_failure(&e, &sessions[s], &names[j]))?;
                    done = true;
                } else if !proto::is_older_info(data, &names, PLAYERS + 1) {
                    return Err(format!(
                        "session {} player {}: unexpected {:?} while starting",
                        sessions[s],
                        names[j],
                        proto::show(data)
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
        if now.duration_since(last_send) >= RETRY && !waiting.is_empty() {
            if now.duration_since(began) >= GIVE_UP {
                return Err(format!(
                    "{} player(s) got no start message within {GIVE_UP:?}",
                    waiting.len()
                ));
            }
            for &k in &waiting {
                let (s, j) = (k / PLAYERS, k % PLAYERS);
                // Nobody of the session has it: the start itself was lost, so the host starts
                // again. Otherwise a ping gets a player its start message again.
                let none_yet = waiting.contains(&(k ^ 1));
                let request = if j == 0 && none_yet {
                    proto::start(&sessions[s], &names[0])
                } else {
                    proto::ping(&sessions[s], &names[j])
                };
                conns[k]
                    .send(&request)
                    .map_err(|e| io_failure(&e, &sessions[s], &names[j]))?;
            }
            last_send = now;
        }
    }
    Ok(())
}

/// Each player of `range` greets its peer's relay port (`dest`); returns once every peer got
/// the greeting, rewritten by the relay: `g:<sender>:<sender's port>:<receiver's own port>`.
fn greet(
    conns: &[Conn],
    range: std::ops::Range<usize>,
    dest: &[SocketAddr],
    batch: &mut RecvBatch,
    tolerated: &mut [Vec<Vec<u8>>],
) -> Result<(), String> {
    let names = proto::players(PLAYERS);
    let greeting =
        |k: usize| proto::greeting(&names[k % PLAYERS], conns[k].local.port(), dest[k].port());
    // What receiver `k` must get from its peer.
    let expected: Vec<Vec<u8>> = range
        .clone()
        .map(|k| {
            let from = k ^ 1;
            proto::greeting(
                &names[from % PLAYERS],
                conns[from].local.port(),
                conns[k].local.port(),
            )
        })
        .collect();
    let first = range.start;
    for k in range.clone() {
        let g = greeting(k);
        conns[k]
            .send(&g)
            .map_err(|e| format!("{}: sending a greeting: {e}", conns[k].local))?;
    }
    let mut waiting: Vec<usize> = range.clone().collect();
    let began = Instant::now();
    let mut last_send = began;
    while !waiting.is_empty() {
        let mut i = 0;
        while i < waiting.len() {
            let k = waiting[i];
            let n = batch
                .recv(conns[k].fd())
                .map_err(|e| format!("{}: receiving a greeting: {e}", conns[k].local))?;
            let want = &expected[k - first];
            let mut done = false;
            for d in 0..n {
                let (data, truncated) = batch.get(d);
                if data == want.as_slice() && !truncated {
                    done = true;
                } else if !tolerated[k].iter().any(|t| t == data) {
                    return Err(format!(
                        "{}: got {:?} from the relay, expected the rewritten greeting {:?}",
                        conns[k].local,
                        proto::show(data),
                        proto::show(want)
                    ));
                }
            }
            if done {
                // A re-sent greeting may still arrive during the flood.
                tolerated[k].push(want.clone());
                waiting.swap_remove(i);
            } else {
                i += 1;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_send) >= RETRY && !waiting.is_empty() {
            if now.duration_since(began) >= GIVE_UP {
                return Err(format!(
                    "{} player(s) got no greeting through the relay within {GIVE_UP:?} (first: \
                     {}); is the relay rate limit (--relay-session-rate, --relay-ip-rate) in \
                     the way?",
                    waiting.len(),
                    conns[waiting[0]].local
                ));
            }
            for &k in &waiting {
                let g = greeting(k ^ 1);
                conns[k ^ 1]
                    .send(&g)
                    .map_err(|e| format!("re-sending a greeting: {e}"))?;
            }
            last_send = now;
        }
    }
    Ok(())
}

/// Writes the game datagram number `seq` of sender `id`, `bytes` long, into `buf`.
fn game_datagram(id: u32, seq: u64, bytes: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    // Filler that differs with sender and number, so a datagram mixed up with another, or
    // damaged anywhere, does not compare equal.
    let mix = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id).rotate_left(32);
    buf.extend((HEADER..bytes).map(|i| (mix >> ((i % 8) * 8)) as u8 ^ i as u8));
}

/// The sender id and sequence number of a game datagram, if it looks like one.
fn game_header(data: &[u8]) -> Option<(u32, u64)> {
    if data.len() < HEADER || data[..2] != MAGIC {
        return None;
    }
    let id = u32::from_le_bytes(data[2..6].try_into().ok()?);
    let seq = u64::from_le_bytes(data[6..14].try_into().ok()?);
    Some((id, seq))
}

/// The flood itself: warm-up, measured window, then a drain of the datagrams still in flight.
fn flood(
    plan: &Plan,
    share: &Share,
    players: &mut [Player],
    batch: &mut RecvBatch,
    t0: Instant,
    abort: &AtomicBool,
) -> Result<Outcome, String> {
    let mut out = Outcome::new();
    let ready = (0..plan.window)
        .flat_map(|_| 0..players.len())
        .collect::<VecDeque<usize>>();
    let mut run = Run {
        players,
        fifo: VecDeque::new(),
        ready,
        in_flight: 0,
        measuring: false,
        bytes: plan.bytes,
        timeout: plan.timeout,
        refused: None,
        send_buf: Vec::with_capacity(plan.bytes),
        check_buf: Vec::with_capacity(plan.bytes),
    };
    let warm_end = t0 + plan.warmup;
    let end = warm_end + plan.duration;
    let mut first_snap: Option<Snapshot> = None;
    let mut total_sent = 0u64;
    let mut last_scan = t0;
    loop {
        let now = Instant::now();
        if !run.measuring && now >= warm_end {
            run.measuring = true;
            if share.thread == 0 {
                first_snap = Some(Snapshot::take(plan.server_pid));
            }
        }
        if now >= end || total_sent >= share.max_datagrams {
            break;
        }
        if let Some(why) = run.refused.take() {
            abort.store(true, Ordering::SeqCst);
            return Err(why);
        }
        if abort.load(Ordering::Relaxed) {
            return Err("stopped: another generator thread failed".into());
        }
        // At most one pass over the slots free now, so sends that keep failing cannot hold the
        // loop past its end time.
        for _ in 0..run.ready.len() {
            if total_sent >= share.max_datagrams {
                break;
            }
            let Some(p) = run.ready.pop_front() else {
                break;
            };
            total_sent += 1;
            run.send(p, Instant::now(), &mut out);
        }
        run.sweep(batch, &mut out, true);
        if now.duration_since(last_scan) >= TIMEOUT_SCAN {
            run.expire(now, &mut out);
            last_scan = now;
        }
    }
    if let Some(first) = first_snap {
        out.window = Some(Window::between(&first, &Snapshot::take(plan.server_pid)));
    }
    // Drain: nothing new; wait for what is still in flight, at most one timeout.
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
    /// Every datagram in flight, in send order, as (sender, sequence number); its receiver is
    /// the sender's peer. Entries of arrived datagrams stay until they reach the front.
    fifo: VecDeque<(usize, u64)>,
    /// Players with a free slot in their window, once per slot.
    ready: VecDeque<usize>,
    in_flight: usize,
    measuring: bool,
    bytes: usize,
    timeout: Duration,
    /// Set when a datagram was refused (ICMP port unreachable): nothing listens there.
    refused: Option<String>,
    send_buf: Vec<u8>,
    check_buf: Vec<u8>,
}

/// A sweep stops after this many receivers in a row had nothing (datagrams arrive roughly in
/// send order), as in the ping mode, whose measurements showed that reading every socket with
/// something in flight makes the generator the limit.
const EMPTY_POLLS: u32 = 2;
/// Datagrams older than this do not end a sweep when their receiver is empty.
const STALLED: Duration = Duration::from_millis(5);

impl Run<'_> {
    /// Player `p` sends its next datagram, stamped `at`. A full socket buffer gives the slot
    /// back for a later try; another error loses it (the socket is broken).
    fn send(&mut self, p: usize, at: Instant, out: &mut Outcome) {
        let player = &mut self.players[p];
        let seq = player.seq + 1;
        game_datagram(player.id, seq, self.bytes, &mut self.send_buf);
        match player.conn.send(&self.send_buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                out.blocked += 1;
                self.ready.push_back(p);
                return;
            }
            Err(e) => {
                let why = format!("{}: send failed: {}", player.conn.local, describe(&e));
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.refused = Some(why);
                } else {
                    out.wrong.add(|| why);
                }
                return;
            }
        }
        player.seq = seq;
        if self.measuring {
            out.sent += 1;
        }
        player.pending.push_back((seq, at, self.measuring));
        self.fifo.push_back((p, seq));
        self.in_flight += 1;
    }

    /// Whether datagram `seq` of sender `p` has neither arrived nor expired.
    fn waiting(&self, p: usize, seq: u64) -> bool {
        self.players[p]
            .pending
            .front()
            .is_some_and(|&(first, _, _)| first <= seq)
    }

    /// Reads the receivers of the oldest datagrams first, until a few in a row had nothing.
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
            let receiver = self.players[p].peer;
            if self.read(receiver, batch, out, counting) > 0 {
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

    /// Reads one datagram of receiver `r`, if any, and checks it; returns how many came.
    fn read(
        &mut self,
        r: usize,
        batch: &mut RecvBatch,
        out: &mut Outcome,
        counting: bool,
    ) -> usize {
        let got = match batch.recv_one(self.players[r].conn.fd()) {
            Ok(n) => n,
            Err(e) => {
                let receiver = &mut self.players[r];
                let why = format!("{}: receive failed: {}", receiver.conn.local, describe(&e));
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.refused = Some(why);
                } else {
                    out.wrong.add(|| why);
                }
                return 0;
            }
        };
        if got == 0 {
            return 0;
        }
        let now = Instant::now();
        let s = self.players[r].peer;
        let (data, truncated) = batch.get(0);
        let header = game_header(data).filter(|&(id, _)| id == self.players[s].id);
        let right = match header {
            Some((id, seq)) if !truncated => {
                game_datagram(id, seq, self.bytes, &mut self.check_buf);
                data == self.check_buf.as_slice()
            }
            _ => false,
        };
        if !right {
            if !self.players[r].tolerated.iter().any(|t| t == data) {
                let receiver = &self.players[r];
                let from = &self.players[s];
                out.wrong.add(|| {
                    format!(
                        "{} (from {}'s datagrams): got {:?}",
                        receiver.conn.local,
                        from.conn.local,
                        proto::show(data)
                    )
                });
            }
            return 1;
        }
        let seq = header.map_or(0, |(_, seq)| seq);
        if counting {
            out.forwarded += 1;
        }
        // One path keeps order: datagrams of this sender older than this one will not come.
        while let Some(&(first, _, counted)) = self.players[s].pending.front() {
            if first >= seq {
                break;
            }
            self.players[s].pending.pop_front();
            self.in_flight -= 1;
            self.ready.push_back(s);
            if counted {
                out.lost += 1;
            }
        }
        match self.players[s].pending.front() {
            Some(&(first, sent, counted)) if first == seq => {
                self.players[s].pending.pop_front();
                self.in_flight -= 1;
                self.ready.push_back(s);
                if counted {
                    out.latency.record(now.saturating_duration_since(sent));
                }
            }
            _ => out.late += 1,
        }
        1
    }

    /// Counts datagrams older than the timeout as lost and frees their slots. The fifo is in
    /// send order, so the walk stops at the first one young enough.
    fn expire(&mut self, now: Instant, out: &mut Outcome) {
        while let Some(&(p, seq)) = self.fifo.front() {
            let player = &mut self.players[p];
            if let Some(&(first, sent, counted)) = player.pending.front() {
                if first == seq {
                    if now.saturating_duration_since(sent) < self.timeout {
                        break;
                    }
                    player.pending.pop_front();
                    self.in_flight -= 1;
                    self.ready.push_back(p);
                    if counted {
                        out.lost += 1;
                    }
                }
            }
            self.fifo.pop_front();
        }
    }
}

fn io_failure(e: &io::Error, session: &str, player: &str) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        format!(
            "session {session} player {player}: connection refused: nothing listens at the target"
        )
    } else {
        format!("session {session} player {player}: socket error: {e}")
    }
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "connection refused (nothing listens there)".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_datagrams_carry_sender_and_number_and_differ() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        game_datagram(7, 42, 100, &mut a);
        assert_eq!(a.len(), 100);
        assert_eq!(game_header(&a), Some((7, 42)));
        assert_ne!(a[1], b':', "must not look like a peer-phase message");
        game_datagram(7, 43, 100, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
        game_datagram(8, 42, 100, &mut b);
        assert_ne!(a[HEADER..], b[HEADER..]);
        game_datagram(7, 42, 100, &mut b);
        assert_eq!(a, b);
        assert_eq!(game_header(b"g:p0:1:2"), None);
    }

    #[test]
    fn splits_cover_the_range_exactly() {
        for (len, n) in [(10, 3), (1000, 1), (7, 7), (64, 5)] {
            let mut next = 0;
            for t in 0..n {
                assert_eq!(split_start(len, n, t), next);
                next += split_len(len, n, t);
            }
            assert_eq!(next, len);
        }
    }
}
