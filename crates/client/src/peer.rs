//! The peer phase: from the server's start message to a punched port, player to player, as a
//! sans-I/O state machine. The server is not involved any more.
//!
//! The messages and timings are the Godot plugin's, so Rust and Godot players punch to each
//! other. `own_port` is the port in our own start message (our port as the server saw it);
//! every peer's `ip:port` comes from the start message's list.
//!
//! 1. **Server finish wait.** The server socket is no longer read (the plugin closes it; the
//!    driver holds it, unread, so that the port stays ours). Wait 2 s (the server stops
//!    re-sending the start message within about 0.8 s), then [`Action::Bind`] `own_port`.
//! 2. **Greetings.** Each peer has a window of 17 ports to try: its port first, then port-8 ..
//!    port+8 except the port itself, ascending. A 50 ms tick sends every peer
//!    `g:<me>:<own_port>:<target_port>` at its current window port; after 5 sends to a port the
//!    next tick greets the next port (17 ports x 5 sends x 50 ms = 4.25 s, as protocol.md has
//!    it). Then wait 5.25 s more (`1 + 85 x 0.05`). Every greeting received counts its last field: the port
//!    the sender aimed at, which is our public port as that peer sees it. No greeting at all:
//!    [`Error::UnreachableSelf`]. Otherwise our port is the most frequent one (for punchable
//!    NATs all are equal); if it is not `own_port`, [`Action::Bind`] it.
//! 3. **Confirmations.** Every 50 ms each peer gets `c:<me>:<my_port>`. Until the peer has
//!    confirmed, each send goes to the next port of its 17-port window (rotating, its port
//!    first); a received `c:<peer>:<peer_port>` fixes that peer's port for all later sends.
//!    - Host: 2 s after entering this phase its message becomes `s:3` (clients start in 3 s)
//!      and a 1.5 s start timer runs; the host succeeds when it fires, or at once when every
//!      client has sent `y:`.
//!    - Client: without a `c:` from the host within 2 s it fails with
//!      [`Error::HostNotConfirmed`]. On the first `s:<n>` it arms an `n`-second timer and from
//!      then on sends the host `y:<me>:<my_port>` instead of `c:`; it succeeds when the timer
//!      fires. (The plugin waits for `s:<n>` forever; this client gives up with
//!      `host_not_confirmed` 6 s into the phase, and caps `n` at 30 s.)
//! 4. **Success**: our port, and for a client the host's ip (from the start message) and port
//!    (the one the host confirmed).
//!
//! The whole phase is bounded: at most about 10.4 s to the confirmations, then at most 3.5 s
//! for the host and 2 + 30 s (in practice 5 s) for a client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::error::Error;
use super::message::{self, PeerAddr, PeerMsg, StartInfo};

/// Wait between the start message and binding the peer socket.
pub const SERVER_FINISH_WAIT: Duration = Duration::from_secs(2);
/// Period of greetings and confirmations.
pub const TICK: Duration = Duration::from_millis(50);
/// Ports tried on each side of a peer's port.
pub const PORT_WINDOW: u16 = 8;
/// Greetings sent to each port of the window.
pub const GREETINGS_PER_PORT: u32 = 5;
/// Wait after the last greeting: `1 + 5 x 17 x 0.05` s, as in the plugin.
pub const GREETINGS_WAIT: Duration = Duration::from_millis(5250);
/// Host: time from entering confirmations to switching to the start order.
pub const HOST_SECONDS_TO_START: Duration = Duration::from_secs(2);
/// Client: time to get the host's `c:` before failing.
pub const CLIENT_MAX_HOST_WAIT: Duration = Duration::from_secs(2);
/// Host: time from the start order to success.
pub const HOST_START_TIMER: Duration = Duration::from_millis(1500);
/// What the host's start order tells clients: `2 x HOST_START_TIMER`, in whole seconds.
pub const CLIENT_START_IN_SECONDS: u32 = 3;
/// Client: bound on waiting for the host's start order (not in the plugin, which waits forever).
pub const CLIENT_START_ORDER_BOUND: Duration = Duration::from_secs(6);
/// Client: cap on the delay a start order may ask for.
pub const MAX_START_DELAY: Duration = Duration::from_secs(30);

const WINDOW_LEN: usize = 2 * PORT_WINDOW as usize + 1;

/// Something the driver must do to its peer socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close the peer socket, if any, and bind a new one on this local port, all interfaces.
    Bind(u16),
}

/// One peer as the punch left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PunchedPeer {
    /// The peer's name.
    pub name: String,
    /// Its address: the port it confirmed, or the server-seen port if it never confirmed.
    pub addr: SocketAddr,
    /// Whether it sent us its `c:` confirmation (its traffic reached us).
    pub confirmed: bool,
}

/// A successful punch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punched {
    /// The local port to use for game traffic (our public port as the peers see it).
    pub self_port: u16,
    /// For a client: the host's public ip and confirmed port. `None` for the host.
    pub host: Option<SocketAddr>,
    /// Every other player.
    pub peers: Vec<PunchedPeer>,
}

#[derive(Debug)]
struct Peer {
    name: String,
    addr: SocketAddr,
    is_host: bool,
    /// The 17 ports to try, exact port first; `None` for ports outside 1..=65535.
    window: [Option<u16>; WINDOW_LEN],
    cursor: usize,
    confirmed: Option<u16>,
    acked_start: bool,
}

impl Peer {
    fn new(addr: &PeerAddr, is_host: bool) -> Peer {
        let port = addr.addr.port();
        let mut window = [None; WINDOW_LEN];
        window[0] = Some(port);
        let low = i32::from(port) - i32::from(PORT_WINDOW);
        let others = (low..=low + 2 * i32::from(PORT_WINDOW)).filter(|&p| p != i32::from(port));
        for (slot, p) in window[1..].iter_mut().zip(others) {
            *slot = u16::try_from(p).ok().filter(|&p| p != 0);
        }
        Peer {
            name: addr.name.clone(),
            addr: addr.addr,
            is_host,
            window,
            cursor: 0,
            confirmed: None,
            acked_start: false,
        }
    }

    fn to(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    ServerWait {
        until: Instant,
    },
    Greeting {
        port_index: usize,
        sends: u32,
    },
    GreetWait {
        until: Instant,
    },
    Confirming {
        /// Host: when to switch to the start order. Client: when to give up on the host's `c:`.
        host_timer: Option<Instant>,
        /// When to succeed (host: armed at the switch; client: armed by `s:<n>`).
        start_timer: Option<Instant>,
        /// Client only: when to give up waiting for `s:<n>`.
        order_deadline: Option<Instant>,
        /// Host only: the start order replaced `c:`.
        ordering: bool,
    },
    Done,
}

/// The peer-phase state machine; see the module documentation.
#[derive(Debug)]
pub struct PeerPhase {
    me: String,
    is_host: bool,
    own_port: u16,
    self_port: u16,
    peers: Vec<Peer>,
    stage: Stage,
    next_tick: Instant,
    /// Ports named by received greetings, with their counts, in order of first sight.
    greeted_ports: Vec<(u16, u32)>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    actions: VecDeque<Action>,
    outcome: Option<Result<Punched, Error>>,
}

impl PeerPhase {
    /// Starts the phase at `now`, the moment the start message arrived. `is_host` says whether
    /// we are the host; for a client the first peer of `start` is the host.
    pub fn new(me: &str, is_host: bool, start: &StartInfo, now: Instant) -> PeerPhase {
        let peers = start
            .peers
            .iter()
            .filter(|p| p.name != me)
            .enumerate()
            .map(|(i, p)| Peer::new(p, !is_host && i == 0))
            .collect();
        PeerPhase {
            me: me.to_string(),
            is_host,
            own_port: start.own_port,
            self_port: start.own_port,
            peers,
            stage: Stage::ServerWait {
                until: now + SERVER_FINISH_WAIT,
            },
            next_tick: now + SERVER_FINISH_WAIT + TICK,
            greeted_ports: Vec::new(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            outcome: None,
        }
    }

    /// Feeds one datagram received on the peer socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, datagram: &[u8]) {
        // As in the plugin, a peer is identified by the name in its message, not its address.
        let Some(msg) = message::parse_peer(datagram) else {
            return;
        };
        let known = |name: &str| self.peers.iter().position(|p| p.name == name);
        match (&mut self.stage, msg) {
            (
                Stage::Greeting { .. } | Stage::GreetWait { .. },
                PeerMsg::Greeting { from, target_port },
            ) if known(from).is_some() => {
                match self
                    .greeted_ports
                    .iter_mut()
                    .find(|(p, _)| *p == target_port)
                {
                    Some((_, n)) => *n += 1,
                    None => self.greeted_ports.push((target_port, 1)),
                }
            }
            (Stage::Confirming { host_timer, .. }, PeerMsg::Confirm { from, port }) => {
                if let Some(i) = known(from) {
                    self.peers[i].confirmed = Some(port);
                    if !self.is_host && self.peers[i].is_host {
                        *host_timer = None;
                    }
                }
            }
            (Stage::Confirming { start_timer, .. }, PeerMsg::StartIn { seconds })
                if !self.is_host && start_timer.is_none() =>
            {
                // Capped before converting: from_secs_f64 panics on huge values.
                let delay = Duration::from_secs_f64(seconds.min(MAX_START_DELAY.as_secs_f64()));
                *start_timer = Some(now + delay);
            }
            (Stage::Confirming { .. }, PeerMsg::StartAck { from }) if self.is_host => {
                if let Some(i) = known(from) {
                    self.peers[i].acked_start = true;
                }
                if self.peers.iter().all(|p| p.acked_start) {
                    self.succeed();
                }
            }
            _ => {}
        }
    }

    /// Call when [`PeerPhase::poll_timeout`] has passed (early calls are harmless). Handles
    /// every timer and tick due by `now`, in time order.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            match self.stage {
                Stage::Done => return,
                Stage::ServerWait { until } => {
                    if now < until {
                        return;
                    }
                    self.actions.push_back(Action::Bind(self.own_port));
                    self.stage = Stage::Greeting {
                        port_index: 0,
                        sends: 0,
                    };
                    self.next_tick = until + TICK;
                }
                Stage::Greeting { .. } => {
                    if now < self.next_tick {
                        return;
                    }
                    let tick = self.next_tick;
                    self.next_tick += TICK;
                    self.greeting_tick(tick);
                }
                Stage::GreetWait { until } => {
                    if now < until {
                        return;
                    }
                    self.enter_confirming(until);
                }
                Stage::Confirming {
                    host_timer,
                    start_timer,
                    order_deadline,
                    ..
                } => {
                    // The earliest due event goes first; ticks last on ties.
                    let timers = [host_timer, start_timer, order_deadline];
                    let due = timers.iter().flatten().min().copied();
                    match due {
                        Some(t) if t <= now && t <= self.next_tick => self.confirm_timer(t),
                        _ if self.next_tick <= now => {
                            self.next_tick += TICK;
                            self.confirm_tick();
                        }
                        _ => return,
                    }
                }
            }
        }
    }

    fn greeting_tick(&mut self, tick: Instant) {
        let Stage::Greeting { port_index, sends } = &mut self.stage else {
            return;
        };
        if *sends >= GREETINGS_PER_PORT {
            // The next port is greeted in this same tick: 17 ports x 5 sends x 50 ms = 4.25 s.
            *sends = 0;
            *port_index += 1;
            if *port_index == WINDOW_LEN {
                self.stage = Stage::GreetWait {
                    until: tick + GREETINGS_WAIT,
                };
                return;
            }
        }
        *sends += 1;
        let index = *port_index;
        for peer in &self.peers {
            if let Some(port) = peer.window[index] {
                let text = message::greeting(&self.me, self.own_port, port);
                self.transmits.push_back((peer.to(port), text.into_bytes()));
            }
        }
    }

    fn enter_confirming(&mut self, at: Instant) {
        // The most frequent port; on a tie the one seen first.
        let mut best: Option<(u16, u32)> = None;
        for &(port, n) in &self.greeted_ports {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((port, n));
            }
        }
        let Some((port, _)) = best else {
            self.finish(Err(Error::UnreachableSelf));
            return;
        };
        if port != self.own_port {
            self.actions.push_back(Action::Bind(port));
        }
        self.self_port = port;
        self.stage = Stage::Confirming {
            host_timer: Some(
                at + if self.is_host {
                    HOST_SECONDS_TO_START
                } else {
                    CLIENT_MAX_HOST_WAIT
                },
            ),
            start_timer: None,
            order_deadline: (!self.is_host).then_some(at + CLIENT_START_ORDER_BOUND),
            ordering: false,
        };
        self.next_tick = at + TICK;
    }

    fn confirm_timer(&mut self, at: Instant) {
        let Stage::Confirming {
            host_timer,
            start_timer,
            order_deadline,
            ordering,
        } = &mut self.stage
        else {
            return;
        };
        if *host_timer == Some(at) {
            *host_timer = None;
            if self.is_host {
                *ordering = true;
                *start_timer = Some(at + HOST_START_TIMER);
            } else {
                self.finish(Err(Error::HostNotConfirmed));
            }
        } else if *start_timer == Some(at) {
            self.succeed();
        } else if *order_deadline == Some(at) {
            if start_timer.is_none() {
                self.finish(Err(Error::HostNotConfirmed));
            } else {
                *order_deadline = None;
            }
        }
    }

    fn confirm_tick(&mut self) {
        let Stage::Confirming {
            start_timer,
            ordering,
            ..
        } = self.stage
        else {
            return;
        };
        let confirm = if ordering {
            message::start_in(CLIENT_START_IN_SECONDS)
        } else {
            message::confirm(&self.me, self.self_port)
        };
        for peer in &mut self.peers {
            let text = if peer.is_host && start_timer.is_some() {
                message::start_ack(&self.me, self.self_port)
            } else {
                confirm.clone()
            };
            let port = match peer.confirmed {
                Some(port) => Some(port),
                None => {
                    let port = peer.window[peer.cursor];
                    peer.cursor = (peer.cursor + 1) % WINDOW_LEN;
                    port
                }
            };
            if let Some(port) = port {
                self.transmits.push_back((peer.to(port), text.into_bytes()));
            }
        }
    }

    fn succeed(&mut self) {
        let peers: Vec<PunchedPeer> = self
            .peers
            .iter()
            .map(|p| PunchedPeer {
                name: p.name.clone(),
                addr: p.to(p.confirmed.unwrap_or(p.addr.port())),
                confirmed: p.confirmed.is_some(),
            })
            .collect();
        let host = if self.is_host {
            None
        } else {
            peers.first().map(|p| p.addr)
        };
        self.finish(Ok(Punched {
            self_port: self.self_port,
            host,
            peers,
        }));
    }

    fn finish(&mut self, outcome: Result<Punched, Error>) {
        self.stage = Stage::Done;
        self.outcome = Some(outcome);
    }

    /// When [`PeerPhase::handle_timeout`] must next be called; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.stage {
            Stage::Done => None,
            Stage::ServerWait { until } | Stage::GreetWait { until } => Some(until),
            Stage::Greeting { .. } => Some(self.next_tick),
            Stage::Confirming {
                host_timer,
                start_timer,
                order_deadline,
                ..
            } => [
                host_timer,
                start_timer,
                order_deadline,
                Some(self.next_tick),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// The next socket action to perform, before sending anything queued after it.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next datagram to send from the peer socket, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The outcome, once the phase is over (taken once).
    pub fn take_outcome(&mut self) -> Option<Result<Punched, Error>> {
        self.outcome.take()
    }

    /// True once the phase succeeded or failed.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// The port we currently believe to be ours (the chosen one once greetings ended).
    pub fn self_port(&self) -> u16 {
        self.self_port
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
