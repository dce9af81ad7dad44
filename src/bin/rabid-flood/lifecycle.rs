//! Lifecycle mode: whole sessions, as the real client runs them, as fast as the server allows.
//!
//! Each slot owns P sockets and runs one session at a time: the host sends `h:`, then each
//! player in turn sends `c:` and every player already in must receive the new `i:` list; the host
//! sends `s:`, every player must receive its own exact start message (own port, then the others
//! as `name:ip:port` in join order) and confirms it with `y:`. A player missing a reply for 0.5 s
//! re-sends (its `h:`/`c:`, else a ping, which also fetches a lost start message), like the real
//! client's 0.5 s ping. Any other reply fails the lifecycle; so does one taking longer than
//! `--timeout-ms`. The slot then gets new sockets, so nothing of a failed session leaks into the
//! next one.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use crate::cli::{self, LifecycleArgs, MAX_PLAYERS};
use crate::meter::{Snapshot, Window};
use crate::net::{self, Conn, RecvBatch};
use crate::proto::{self, Names};
use crate::report::{Failures, Latency};

/// Silence after which a waiting player re-sends.
const RETRY: Duration = Duration::from_millis(500);

/// What a run (or one thread of it) saw.
pub struct Outcome {
    /// Duration of each completed lifecycle (first `h:` to last start message).
    pub latency: Latency,
    pub started: u64,
    pub completed: u64,
    pub failed: Failures,
    /// Copies of start messages arriving after their player already had one (normal: the
    /// server's re-sends crossing the confirmation), whether they arrive while their session
    /// runs or after it completed (then they are read while the slot's next session runs; those
    /// of a slot's last session are never read).
    pub duplicates: u64,
    /// Set by the caller around the whole run.
    pub window: Window,
}

impl Outcome {
    fn new() -> Self {
        Self {
            latency: Latency::new(),
            started: 0,
            completed: 0,
            failed: Failures::default(),
            duplicates: 0,
            window: Window::default(),
        }
    }

    fn merge(&mut self, o: Outcome) {
        self.latency.merge(&o.latency);
        self.started += o.started;
        self.completed += o.completed;
        self.failed.merge(o.failed);
        self.duplicates += o.duplicates;
    }
}

/// Settings shared by every thread.
struct Plan {
    target: SocketAddr,
    sources: Vec<IpAddr>,
    names: Names,
    players: Vec<String>,
    /// `infos[j]`: the `i:` list once players `0..=j` are in.
    infos: Vec<Vec<u8>>,
    count: u64,
    duration: Duration,
    timeout: Duration,
}

pub fn run(args: &LifecycleArgs) -> Result<Outcome, String> {
    cli::check_target(args.target, args.allow_remote)?;
    if args.players < 2 || args.players > MAX_PLAYERS {
        return Err(format!(
            "--players must be 2..={MAX_PLAYERS} (a start needs two)"
        ));
    }
    if args.threads == 0 || args.threads > 64 {
        return Err("--threads must be 1..=64".into());
    }
    if args.concurrency < args.threads || args.concurrency > 100_000 {
        return Err("--concurrency must be at least --threads (and at most 100000)".into());
    }
    if args.count == 0 || args.count > proto::MAX_SESSIONS {
        return Err(format!("--count must be 1..={}", proto::MAX_SESSIONS));
    }
    if args.timeout_ms < 100 || args.timeout_ms > 60_000 {
        return Err("--timeout-ms must be 100..=60000".into());
    }
    let players = proto::players(args.players);
    let plan = Plan {
        target: args.target,
        sources: cli::sources(args.sources.as_deref(), args.target)?,
        names: Names::new(),
        infos: (1..=players.len())
            .map(|n| proto::info(&players[..n]))
            .collect(),
        players,
        count: args.count,
        duration: cli::seconds("duration", args.duration, false)?,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    // Failed slots replace their sockets, closing the old ones first, so this is the peak.
    net::ensure_files(args.concurrency * args.players)?;

    let threads = args.threads;
    let next = AtomicU64::new(0);
    let barrier = Barrier::new(threads + 1);
    let t0 = OnceLock::new();
    let abort = AtomicBool::new(false);
    let (results, window) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let slots =
                    args.concurrency / threads + usize::from(t < args.concurrency % threads);
                let first_slot =
                    t * (args.concurrency / threads) + t.min(args.concurrency % threads);
                let (plan, next, barrier, t0, abort) = (&plan, &next, &barrier, &t0, &abort);
                scope.spawn(move || thread(plan, slots, first_slot, next, barrier, t0, abort))
            })
            .collect();
        barrier.wait();
        let first = Snapshot::take(args.server_pid);
        let results: Vec<Result<Outcome, String>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a generator thread panicked".into()))
            })
            .collect();
        (
            results,
            Window::between(&first, &Snapshot::take(args.server_pid)),
        )
    });
    let mut total = Outcome::new();
    for r in results {
        total.merge(r?);
    }
    total.window = window;
    Ok(total)
}

fn thread(
    plan: &Plan,
    slots: usize,
    first_slot: usize,
    next: &AtomicU64,
    barrier: &Barrier,
    t0: &OnceLock<Instant>,
    abort: &AtomicBool,
) -> Result<Outcome, String> {
    let p = plan.players.len();
    let opened: Result<Vec<Slot>, String> = (0..slots)
        .map(|s| {
            net::open_many(p, (first_slot + s) * p, &plan.sources, plan.target)
                .map(|conns| Slot {
                    conns,
                    first_socket: (first_slot + s) * p,
                    previous: vec![Vec::new(); p],
                    live: None,
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    if opened.is_err() {
        abort.store(true, Ordering::SeqCst);
    }
    // Every thread reaches the barrier, failed or not, so none waits forever.
    barrier.wait();
    let mut slots = opened?;
    if abort.load(Ordering::SeqCst) {
        return Err("stopped: another generator thread failed".into());
    }
    let start = *t0.get_or_init(Instant::now);
    let mut ctx = Ctx {
        plan,
        next,
        end: start + plan.duration,
        out: Outcome::new(),
        batch: RecvBatch::new(),
    };
    let now = Instant::now();
    for slot in &mut slots {
        ctx.begin(slot, now)?;
    }
    // Lifecycles started before `end` get their own timeout to finish, then the run stops.
    let hard_end = ctx.end + plan.timeout + RETRY;
    loop {
        let now = Instant::now();
        let mut live = false;
        for slot in &mut slots {
            if slot.live.is_some() {
                live = true;
                ctx.poll(slot, now)?;
            }
        }
        if !live {
            break;
        }
        if now >= hard_end {
            for slot in &mut slots {
                if let Some(l) = slot.live.take() {
                    ctx.out
                        .failed
                        .add(|| format!("session {}: still running when the run ended", l.session));
                }
            }
            break;
        }
    }
    Ok(ctx.out)
}

/// P sockets that run one session after another.
struct Slot {
    conns: Vec<Conn>,
    /// Global index of the slot's first socket, to pick its source addresses.
    first_socket: usize,
    /// Each player's start message of the previous session: late copies of it are expected.
    previous: Vec<Vec<u8>>,
    live: Option<Live>,
}

/// The session a slot is running.
struct Live {
    session: String,
    step: Step,
    begun: Instant,
    last_send: Instant,
    /// Which players have what the current step waits for.
    got: Vec<bool>,
    /// Each player's expected start message (filled when the start is sent).
    starts: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Step {
    /// Player `j` is joining (hosting when 0).
    Join(usize),
    Start,
}

/// A thread's shared state while it runs its slots.
struct Ctx<'a> {
    plan: &'a Plan,
    next: &'a AtomicU64,
    end: Instant,
    out: Outcome,
    batch: RecvBatch,
}

/// Why a lifecycle ended early: a failure of that session, or of the whole run.
enum Stop {
    Session(String),
    Fatal(String),
}

impl Ctx<'_> {
    /// Start the next session in `slot`, if the run still wants one.
    fn begin(&mut self, slot: &mut Slot, now: Instant) -> Result<(), String> {
        slot.live = None;
        if now >= self.end {
            return Ok(());
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if index >= self.plan.count {
            return Ok(());
        }
        let p = self.plan.players.len();
        let session = self.plan.names.session(index);
        let request = proto::host(&session, &self.plan.players[0], p);
        self.out.started += 1;
        slot.live = Some(Live {
            session,
            step: Step::Join(0),
            begun: now,
            last_send: now,
            got: vec![false; p],
            starts: Vec::new(),
        });
        match slot.conns[0].send(&request) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(slot, stop_for(&e, "sending h:"), now),
        }
    }

    /// Read what the slot's waiting players received, advance the session, re-send or time out.
    fn poll(&mut self, slot: &mut Slot, now: Instant) -> Result<(), String> {
        let result = self.advance(slot, now);
        match result {
            Ok(()) => Ok(()),
            Err(stop) => self.fail(slot, stop, now),
        }
    }

    fn advance(&mut self, slot: &mut Slot, now: Instant) -> Result<(), Stop> {
        let plan = self.plan;
        let p = plan.players.len();
        let Some(live) = slot.live.as_mut() else {
            return Ok(());
        };
        let waiting = match live.step {
            Step::Join(j) => j + 1,
            Step::Start => p,
        };
        // Lists that may still arrive: shorter ones while joining (retries crossing a join),
        // and the full one once starting (the reply to a ping sent just before the start).
        let older_upto = match live.step {
            Step::Join(j) => j + 1,
            Step::Start => p + 1,
        };
        for k in 0..waiting {
            if live.got[k] {
                continue;
            }
            let n = self
                .batch
                .recv(slot.conns[k].fd())
                .map_err(|e| stop_for(&e, "receiving"))?;
            for d in 0..n {
                let (data, truncated) = self.batch.get(d);
                let expected: &[u8] = match live.step {
                    Step::Join(j) => &plan.infos[j],
                    Step::Start => &live.starts[k],
                };
                if data == expected && !truncated {
                    if live.got[k] {
                        self.out.duplicates += 1;
                        continue;
                    }
                    live.got[k] = true;
                    if live.step == Step::Start {
                        let confirm = proto::confirm(&live.session, &plan.players[k]);
                        slot.conns[k]
                            .send(&confirm)
                            .map_err(|e| stop_for(&e, "sending y:"))?;
                    }
                } else if !slot.previous[k].is_empty() && data == slot.previous[k].as_slice() {
                    // A late copy of the previous session's start message: a duplicate like
                    // the one above, read after its session completed. Counting it here too
                    // makes the count the copies that arrived, not the copies that happened
                    // to be queued when the player's socket was first read after the start.
                    self.out.duplicates += 1;
                } else if proto::is_older_info(data, &plan.players, older_upto)
                    || data == slot.previous[k].as_slice()
                {
                    // An overtaken list (or an empty datagram before any start): harmless.
                } else {
                    return Err(Stop::Session(format!(
                        "session {} player {} in step {:?}: got {:?}, expected {:?}",
                        live.session,
                        plan.players[k],
                        live.step,
                        proto::show(data),
                        proto::show(expected)
                    )));
                }
            }
        }

        if live.got[..waiting].iter().all(|&g| g) {
            live.got.iter_mut().for_each(|g| *g = false);
            live.last_send = now;
            match live.step {
                Step::Join(j) if j + 1 < p => {
                    live.step = Step::Join(j + 1);
                    let request = proto::join(&live.session, &plan.players[j + 1]);
                    slot.conns[j + 1]
                        .send(&request)
                        .map_err(|e| stop_for(&e, "sending c:"))?;
                }
                Step::Join(_) => {
                    let addrs: Vec<SocketAddr> = slot.conns.iter().map(|c| c.local).collect();
                    live.starts = (0..p)
                        .map(|k| proto::start_message(k, &plan.players, &addrs))
                        .collect();
                    live.step = Step::Start;
                    let request = proto::start(&live.session, &plan.players[0]);
                    slot.conns[0]
                        .send(&request)
                        .map_err(|e| stop_for(&e, "sending s:"))?;
                }
                Step::Start => {
                    self.out.completed += 1;
                    self.out
                        .latency
                        .record(now.saturating_duration_since(live.begun));
                    slot.previous = std::mem::take(&mut live.starts);
                    self.begin(slot, now).map_err(Stop::Fatal)?;
                }
            }
            return Ok(());
        }

        if now.saturating_duration_since(live.begun) >= plan.timeout {
            let missing: Vec<&str> = (0..waiting)
                .filter(|&k| !live.got[k])
                .map(|k| plan.players[k].as_str())
                .collect();
            return Err(Stop::Session(format!(
                "session {}: no reply within {:?} in step {:?} for {}",
                live.session,
                plan.timeout,
                live.step,
                missing.join(",")
            )));
        }
        if now.saturating_duration_since(live.last_send) >= RETRY {
            live.last_send = now;
            let none_yet = !live.got.iter().any(|&g| g);
            for k in 0..waiting {
                if live.got[k] {
                    continue;
                }
                let request = match live.step {
                    Step::Join(0) => proto::host(&live.session, &plan.players[0], p),
                    Step::Join(j) if k == j => proto::join(&live.session, &plan.players[k]),
                    // Lost `s:` (nobody got a start message): the host starts again; a
                    // re-sent `s:` to a session already starting gets no reply.
                    Step::Start if k == 0 && none_yet => {
                        proto::start(&live.session, &plan.players[0])
                    }
                    _ => proto::ping(&live.session, &plan.players[k]),
                };
                slot.conns[k]
                    .send(&request)
                    .map_err(|e| stop_for(&e, "re-sending"))?;
            }
        }
        Ok(())
    }

    /// Count a failed lifecycle, give the slot fresh sockets and start the next session; a
    /// fatal stop (nothing listening) ends the run.
    fn fail(&mut self, slot: &mut Slot, stop: Stop, now: Instant) -> Result<(), String> {
        let why = match stop {
            Stop::Fatal(why) => return Err(why),
            Stop::Session(why) => why,
        };
        self.out.failed.add(|| why);
        let p = self.plan.players.len();
        // Close the old sockets before opening new ones: the files limit was sized for one set.
        slot.conns.clear();
        slot.conns = net::open_many(p, slot.first_socket, &self.plan.sources, self.plan.target)
            .map_err(|e| e.to_string())?;
        slot.previous = vec![Vec::new(); p];
        self.begin(slot, now)
    }
}

fn stop_for(e: &io::Error, doing: &str) -> Stop {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Stop::Fatal(format!(
            "{doing}: connection refused: nothing listens at the target"
        ))
    } else {
        Stop::Session(format!("{doing}: socket error: {e}"))
    }
}
