//! Filling sessions before a ping flood: every session is hosted, then joined player by player,
//! and each step waits until every player already in the session holds the new `i:` list, so no
//! join broadcast is still in flight when the measured pings start.

use std::io;
use std::time::{Duration, Instant};

use crate::net::{Conn, RecvBatch};
use crate::proto;

/// Sessions filled together: enough to hide round trips, few enough not to overflow the
/// server's receive buffer with one burst.
const WINDOW: usize = 256;
/// A player without its list this long re-sends (its join, or a ping), as the real client does.
const RETRY: Duration = Duration::from_millis(500);
/// A step with players still missing their list after this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Joined players not heard for this long are pinged while the set-up goes on.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// Host and join every session. `conns` holds the players session by session
/// (`conns[s * players + j]` is player `j` of `sessions[s]`).
pub fn fill(
    conns: &[Conn],
    sessions: &[String],
    players: usize,
    batch: &mut RecvBatch,
) -> Result<(), String> {
    let names = proto::players(players);
    // Sessions filled so far, and when their players were last heard by the server.
    let mut filled: Vec<(std::ops::Range<usize>, Instant)> = Vec::new();
    let mut first = 0;
    while first < sessions.len() {
        let last = (first + WINDOW).min(sessions.len());
        for j in 0..players {
            step(conns, sessions, &names, first..last, j, Action::Join, batch)?;
        }
        filled.push((first..last, Instant::now()));
        first = last;
        // A long set-up (thousands of sockets on a busy machine) would let the first players
        // time out on the server (5 s by default) before the flood pings them: ping them.
        for (range, heard) in &mut filled {
            if heard.elapsed() >= KEEP_ALIVE {
                step(
                    conns,
                    sessions,
                    &names,
                    range.clone(),
                    players - 1,
                    Action::Ping,
                    batch,
                )?;
                *heard = Instant::now();
            }
        }
    }
    Ok(())
}

/// What a step's players send.
#[derive(Clone, Copy, PartialEq)]
enum Action {
    /// Player `j` hosts or joins; the others wait for the new list (pinging on retries).
    Join,
    /// Every player pings and waits for the list: keeps them alive on the server.
    Ping,
}

/// With [`Action::Join`], player `j` of every session in `range` joins (hosts when `j == 0`);
/// with [`Action::Ping`], players `0..=j` ping. Returns once players `0..=j` of each session
/// all received the list of `j + 1` names.
fn step(
    conns: &[Conn],
    sessions: &[String],
    names: &[String],
    range: std::ops::Range<usize>,
    j: usize,
    action: Action,
    batch: &mut RecvBatch,
) -> Result<(), String> {
    let players = names.len();
    let expected = proto::info(&names[..=j]);
    let request = |s: usize, k: usize| -> Vec<u8> {
        match k {
            _ if action == Action::Ping => proto::ping(&sessions[s], &names[k]),
            0 if j == 0 => proto::host(&sessions[s], &names[0], players),
            _ if k == j => proto::join(&sessions[s], &names[k]),
            _ => proto::ping(&sessions[s], &names[k]),
        }
    };
    let send = |s: usize, k: usize| -> Result<(), String> {
        conns[s * players + k]
            .send(&request(s, k))
            .map_err(|e| io_failure(&e, &sessions[s], &names[k]))
    };
    for s in range.clone() {
        match action {
            Action::Join => send(s, j)?,
            Action::Ping => (0..=j).try_for_each(|k| send(s, k))?,
        }
    }
    // (session, player) still waiting for `expected`.
    let mut waiting: Vec<(usize, usize)> =
        range.flat_map(|s| (0..=j).map(move |k| (s, k))).collect();
    let began = Instant::now();
    let mut last_send = began;
    while !waiting.is_empty() {
        let mut i = 0;
        while i < waiting.len() {
            let (s, k) = waiting[i];
            let conn = &conns[s * players + k];
            let n = batch
                .recv(conn.fd())
                .map_err(|e| io_failure(&e, &sessions[s], &names[k]))?;
            let mut done = false;
            for d in 0..n {
                let (data, truncated) = batch.get(d);
                if data == expected.as_slice() && !truncated {
                    done = true;
                } else if !proto::is_older_info(data, names, j + 1) {
                    return Err(format!(
                        "session {} player {}: unexpected reply {:?} while joining (expected {:?})",
                        sessions[s],
                        names[k],
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
        if now.duration_since(last_send) >= RETRY && !waiting.is_empty() {
            if now.duration_since(began) >= GIVE_UP {
                let (s, k) = waiting[0];
                return Err(format!(
                    "{} player(s) got no {:?} within {GIVE_UP:?} (first: session {} player {}); \
                     is the server running at the target?",
                    waiting.len(),
                    proto::show(&expected),
                    sessions[s],
                    names[k]
                ));
            }
            for &(s, k) in &waiting {
                send(s, k)?;
            }
            last_send = now;
        }
    }
    Ok(())
}

/// Why a socket call for `player` of `session` failed, for the run's error: a refusal means
/// nothing listens at the target (the whole run stops), anything else is that socket's.
pub fn io_failure(e: &io::Error, session: &str, player: &str) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        format!(
            "session {session} player {player}: connection refused: nothing listens at the target"
        )
    } else {
        format!("session {session} player {player}: socket error: {e}")
    }
}
