//! The measured part of a relay flood: a closed loop in which every player keeps `--window`
//! game datagrams in flight towards its peer, a sweep that reads the receivers of the oldest
//! datagrams first, and the timeouts that count a datagram lost. Warm-up first, then the
//! measured window, then a drain of what is still in flight.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::game::{game_datagram, game_header};
use super::{Outcome, Plan, Player, Share};
use crate::meter::{Snapshot, Window};
use crate::net::RecvBatch;
use crate::proto;
use crate::threads::Together;

/// How often datagrams that never arrived are looked for.
const TIMEOUT_SCAN: Duration = Duration::from_millis(5);

/// The flood itself: warm-up, measured window, then a drain of the datagrams still in flight.
///
/// The measured window opens at [`Together::window_start`] and lasts `--duration` for every
/// thread; thread 0 takes the closing snapshot.
pub(super) fn flood(
    plan: &Plan,
    share: &Share,
    players: &mut [Player],
    batch: &mut RecvBatch,
    t0: Instant,
    together: &Together,
) -> Result<Outcome, String> {
    let mut out = Outcome::new();
    let mut ready = (0..plan.window)
        .flat_map(|_| 0..players.len())
        .collect::<VecDeque<usize>>();
    // With a total, the first slots go to the first players; each then moves on in turn.
    let turn = share.in_flight.map(|n| {
        ready.truncate(n);
        let mut slots = vec![0; players.len()];
        for &p in &ready {
            slots[p] += 1;
        }
        Turn {
            slots,
            next: n % players.len(),
            window: plan.window,
        }
    });
    let mut run = Run {
        turn,
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
    // Moved to the window's start plus its duration once the window starts.
    let mut end = warm_end + plan.duration;
    let mut first_snap: Option<Snapshot> = None;
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
        if now >= end || total_sent >= share.max_datagrams {
            break;
        }
        if let Some(why) = run.refused.take() {
            together.abort();
            return Err(why);
        }
        if together.aborted() {
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

/// With `--in-flight`: whose turn a freed slot is.
struct Turn {
    /// Each player's slots: datagrams in flight and slots waiting in `ready`.
    slots: Vec<usize>,
    /// The player to look at first for the next free slot.
    next: usize,
    /// Slots a player may hold at most.
    window: usize,
}

/// The mutable state of one thread's flood.
struct Run<'a> {
    /// `None`: each player keeps its own slots.
    turn: Option<Turn>,
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

    /// A datagram of player `p` arrived or was given up: its slot is free again, for `p`
    /// itself, or with `--in-flight` for the next player in turn with room in its window.
    fn free(&mut self, p: usize) {
        let Some(turn) = &mut self.turn else {
            self.ready.push_back(p);
            return;
        };
        turn.slots[p] -= 1;
        let n = turn.slots.len();
        // Some player has room: there are fewer slots in all than players x window.
        let mut q = turn.next;
        while turn.slots[q] >= turn.window {
            q = (q + 1) % n;
        }
        turn.slots[q] += 1;
        turn.next = (q + 1) % n;
        self.ready.push_back(q);
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
            self.free(s);
            if counted {
                out.lost += 1;
            }
        }
        match self.players[s].pending.front() {
            Some(&(first, sent, counted)) if first == seq => {
                self.players[s].pending.pop_front();
                self.in_flight -= 1;
                self.free(s);
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
                    self.free(p);
                    if counted {
                        out.lost += 1;
                    }
                }
            }
            self.fifo.pop_front();
        }
    }
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "connection refused (nothing listens there)".into()
    } else {
        e.to_string()
    }
}
