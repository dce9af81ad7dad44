//! The thin blocking driver: real UDP sockets and the real clock around the [`Lobby`] and
//! [`PeerPhase`] state machines. All protocol decisions live in those; this file only moves
//! datagrams and waits for the next deadline.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::error::Error;
use super::lobby::{Lobby, LobbyEvent, Request};
use super::message::StartInfo;
use super::peer::{Action, PeerPhase, Punched};

/// Largest datagram read; protocol datagrams are far smaller.
pub(crate) const RECV_BUFFER: usize = 2048;

/// A finished punch: the result and the socket already bound to [`Punched::self_port`], ready
/// for game traffic (or drop it and bind the port yourself, as the Godot plugin's users do).
#[derive(Debug)]
pub struct Connected {
    /// Ports and addresses.
    pub punched: Punched,
    /// The UDP socket bound to `punched.self_port` on all interfaces.
    pub socket: UdpSocket,
}

/// A lobby on a real socket: host or join, then wait for players, kick, exit or start, then
/// [`Session::punch`].
#[derive(Debug)]
pub struct Session {
    socket: UdpSocket,
    server: SocketAddr,
    lobby: Lobby,
    started: Option<(StartInfo, Instant)>,
}

impl Session {
    /// Binds an ephemeral local port and sends the host or join request to `server`.
    pub fn open(server: SocketAddr, request: Request) -> Result<Session, Error> {
        Session::open_from(server, request, 0)
    }

    /// As [`Session::open`], from local port `local_port` (0: any). A fixed port helps behind
    /// firewalls with port rules, and lets the NAT lab see how a NAT maps one port.
    pub fn open_from(
        server: SocketAddr,
        request: Request,
        local_port: u16,
    ) -> Result<Session, Error> {
        let lobby = Lobby::new(request, Instant::now())?;
        let socket = UdpSocket::bind(SocketAddr::new(unspecified(server.ip()), local_port))?;
        let mut session = Session {
            socket,
            server,
            lobby,
            started: None,
        };
        session.flush();
        Ok(session)
    }

    /// The local port of the server socket (the one the NAT maps for the server).
    pub fn local_port(&self) -> Result<u16, Error> {
        Ok(self.socket.local_addr()?.port())
    }

    /// The lobby state: players, whether we are the host.
    pub fn lobby(&self) -> &Lobby {
        &self.lobby
    }

    /// Asks the server to start (host only). See [`Lobby::start`].
    pub fn start(&mut self) -> bool {
        let sent = self.lobby.start(Instant::now());
        self.flush();
        sent
    }

    /// Kicks a player (host only). See [`Lobby::kick`].
    pub fn kick(&mut self, player: &str) -> bool {
        let sent = self.lobby.kick(player);
        self.flush();
        sent
    }

    /// Says `text` in the lobby, from this session's socket (the server takes chat only from
    /// the member's own address). See [`Lobby::chat`]; other members' lines, and ours, come
    /// back as [`LobbyEvent::Chat`].
    pub fn chat(&mut self, text: &str) -> Result<bool, Error> {
        let sent = self.lobby.chat(text)?;
        self.flush();
        Ok(sent)
    }

    /// Leaves the session; the next events end with `player_exited_session`.
    pub fn exit(&mut self) -> bool {
        let sent = self.lobby.exit(Instant::now());
        self.flush();
        sent
    }

    fn flush(&mut self) {
        while let Some(datagram) = self.lobby.poll_transmit() {
            if let Err(e) = self.socket.send_to(&datagram, self.server) {
                log::debug!("client: send to server {} failed: {e}", self.server);
            }
        }
    }

    /// Drives the lobby until its next event, or until `deadline` (`Ok(None)`). A failure of
    /// the lobby (a server error, 15 s of server silence) is returned as `Err`.
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<Option<LobbyEvent>, Error> {
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            self.flush();
            match self.lobby.poll_event() {
                Some(LobbyEvent::Failed(e)) => return Err(e),
                Some(LobbyEvent::Started(info)) => {
                    self.started = Some((info.clone(), Instant::now()));
                    return Ok(Some(LobbyEvent::Started(info)));
                }
                Some(event) => return Ok(Some(event)),
                None => {}
            }
            let Some(wake) = earliest(self.lobby.poll_timeout(), deadline) else {
                return Ok(None);
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let got = recv_queued_or_until(&self.socket, &mut buf, wake)?;
            let now = Instant::now();
            match got {
                Some((n, from)) if from == self.server => {
                    self.lobby.handle_datagram(now, &buf[..n])
                }
                _ => {} // nothing, or not the server: ignored
            }
            if now >= wake {
                self.lobby.handle_timeout(now);
            }
        }
    }

    /// Runs the peer phase after the start message (see [`super::peer`]): stops reading the
    /// server, then greets, confirms and counts down with the other players. Bounded by the
    /// phase's own timers (about 17 s at most in practice) and by `deadline`.
    pub fn punch(self, deadline: Option<Instant>) -> Result<Connected, Error> {
        let Some((info, started_at)) = self.started else {
            return Err(Error::InvalidArgument(
                "the session has not started yet".to_string(),
            ));
        };
        let me = self.lobby.request().player.clone();
        let is_host = self.lobby.is_host();
        run_peer_phase(
            PeerPhase::new(&me, is_host, &info, started_at),
            self.server.ip(),
            self.socket,
            deadline,
        )
    }
}

/// Hosts or joins, waits for the start (a host starts on its own once
/// [`Request::start_when`] players are listed), then punches. `timeout` bounds the whole run.
pub fn punch(
    server: SocketAddr,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Connected, Error> {
    let deadline = timeout.map(|t| Instant::now() + t);
    run_session(Session::open(server, request)?, deadline, |_, _| {})
}

/// Drives an opened session to its start, showing every lobby event to `on_event` (to print
/// progress, or to call [`Session::kick`] and the like), then punches. Bounded by `deadline`.
pub fn run_session(
    mut session: Session,
    deadline: Option<Instant>,
    mut on_event: impl FnMut(&mut Session, &LobbyEvent),
) -> Result<Connected, Error> {
    loop {
        match session.next_event(deadline)? {
            Some(event) => {
                on_event(&mut session, &event);
                if matches!(event, LobbyEvent::Started(_)) {
                    return session.punch(deadline);
                }
            }
            None => return Err(Error::Deadline),
        }
    }
}

/// Drives a peer phase on real sockets until it ends or `deadline` passes.
///
/// The plugin closes its server socket at the start and binds its port again 2 s later. Here
/// the `lobby` socket is held unread meanwhile instead, so that nothing else can take the
/// port in between; when the phase binds that port, what queued up in those 2 s is
/// discarded, as the plugin's closed socket would never have received it.
fn run_peer_phase(
    mut phase: PeerPhase,
    server_ip: IpAddr,
    lobby: UdpSocket,
    deadline: Option<Instant>,
) -> Result<Connected, Error> {
    let mut held = Some(lobby);
    let mut socket: Option<UdpSocket> = None;
    let mut buf = [0u8; RECV_BUFFER];
    loop {
        while let Some(Action::Bind(port)) = phase.poll_action() {
            drop(socket.take()); // close before re-binding: the new port may be the same
            let reused = held
                .take()
                .filter(|s| s.local_addr().is_ok_and(|a| a.port() == port));
            socket = Some(match reused {
                Some(s) => {
                    discard_queued(&s, &mut buf)?;
                    s
                }
                None => UdpSocket::bind(SocketAddr::new(unspecified(server_ip), port))?,
            });
        }
        while let Some((to, datagram)) = phase.poll_transmit() {
            if let Some(s) = &socket {
                if let Err(e) = s.send_to(&datagram, same_family(to, server_ip)) {
                    log::debug!("client: send to peer {to} failed: {e}");
                }
            }
        }
        if let Some(outcome) = phase.take_outcome() {
            let punched = outcome?;
            let socket = match socket {
                Some(s) => s,
                None => {
                    UdpSocket::bind(SocketAddr::new(unspecified(server_ip), punched.self_port))?
                }
            };
            return Ok(Connected { punched, socket });
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Deadline);
        }
        let Some(wake) = earliest(phase.poll_timeout(), deadline) else {
            return Err(Error::Deadline); // unreachable: a running phase always has a timer
        };
        match &socket {
            Some(s) => {
                if let Some((n, from)) = recv_queued_or_until(s, &mut buf, wake)? {
                    phase.handle_datagram(Instant::now(), from, &buf[..n]);
                }
            }
            None => std::thread::sleep(wake.saturating_duration_since(Instant::now())),
        }
        // It acts only on the timers that are due.
        phase.handle_timeout(Instant::now());
    }
}

/// Receives one datagram, or `None` once `wake` has passed. Transient errors (an ICMP error
/// reported on the socket, an interrupted call) count as "nothing received".
pub(crate) fn recv_until(
    socket: &UdpSocket,
    buf: &mut [u8],
    wake: Instant,
) -> Result<Option<(usize, SocketAddr)>, Error> {
    let wait = wake.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        return Ok(None);
    }
    socket.set_read_timeout(Some(wait))?;
    received(socket.recv_from(buf))
}

/// As [`recv_until`], but once `wake` has passed it still takes a datagram already queued.
/// A state machine's loop uses it: a reply that arrived while the caller was not driving the
/// loop is handled before the timer it answers fires (else a lobby re-sends a request the
/// server has already refused). The loop fires due timers after each datagram, so a stream
/// of datagrams cannot hold them off.
fn recv_queued_or_until(
    socket: &UdpSocket,
    buf: &mut [u8],
    wake: Instant,
) -> Result<Option<(usize, SocketAddr)>, Error> {
    if Instant::now() < wake {
        return recv_until(socket, buf, wake);
    }
    socket.set_nonblocking(true)?;
    let got = socket.recv_from(buf);
    socket.set_nonblocking(false)?;
    received(got)
}

/// A receive's result, with transient errors as "nothing received".
fn received(
    got: std::io::Result<(usize, SocketAddr)>,
) -> Result<Option<(usize, SocketAddr)>, Error> {
    match got {
        Ok(got) => Ok(Some(got)),
        Err(e) if e.kind() == ErrorKind::WouldBlock || is_transient(e.kind()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Errors a receive reports that say nothing about the socket's health: an ICMP error from an
/// earlier send, an interrupted or timed-out call.
fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
    )
}

/// Reads and drops every datagram already queued on `socket`.
fn discard_queued(socket: &UdpSocket, buf: &mut [u8]) -> Result<(), Error> {
    socket.set_nonblocking(true)?;
    let mut drained = 0usize;
    loop {
        match socket.recv_from(buf) {
            Ok(_) => drained += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if is_transient(e.kind()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    socket.set_nonblocking(false)?;
    log::debug!("client: {drained} datagrams of the 2 s wait discarded");
    Ok(())
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The wildcard address of the server's family: peer sockets listen on all interfaces.
pub(crate) fn unspecified(server_ip: IpAddr) -> IpAddr {
    match server_ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// On an IPv6 (dual-stack) socket an IPv4 peer must be written as `::ffff:a.b.c.d`.
fn same_family(to: SocketAddr, server_ip: IpAddr) -> SocketAddr {
    match (to.ip(), server_ip) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port())
        }
        _ => to,
    }
}
