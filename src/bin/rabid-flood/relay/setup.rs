//! Set-up of a relay flood: every two-player session is hosted and joined (as the ping mode
//! does), started, each player reads its start message for its peer's relay address and
//! confirms it, then greets its peer's relay port until the peer receives the greeting
//! rewritten. Only then does the relay know both players' addresses, and only then can the
//! flood measure forwarding rather than learning. A step that does not complete fails the run:
//! a session the server did not relay would make the flood measure nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Plan, Player, Share, PLAYERS};
use crate::cli;
use crate::net::{self, Conn, RecvBatch};
use crate::proto;
use crate::setup::io_failure;

/// Sessions started (or greeted) together during set-up: enough to hide round trips, few
/// enough that one burst does not overflow the server's receive buffer.
const SETUP_WINDOW: usize = 128;
/// A set-up step re-sends after this long without an answer, as the real client does.
const RETRY: Duration = Duration::from_millis(500);
/// A set-up step still missing answers after this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Opens the thread's sockets and, unless `--echo`, brings every pair to the point where the
/// relay knows both players; returns the players with their sockets connected to where their
/// datagrams go.
pub(super) fn prepare(
    plan: &Plan,
    share: &Share,
    batch: &mut RecvBatch,
) -> Result<Vec<Player>, String> {
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
        crate::setup::fill(&conns, &sessions, PLAYERS, batch)?;
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
