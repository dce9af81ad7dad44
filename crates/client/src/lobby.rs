//! The lobby: everything between the first `h:`/`c:` request and the server's start message,
//! as a sans-I/O state machine.
//!
//! The caller owns the socket and the clock. It feeds [`Lobby::handle_datagram`] every datagram
//! that came from the server and [`Lobby::handle_timeout`] whenever [`Lobby::poll_timeout`]
//! passes, then drains [`Lobby::poll_transmit`] (datagrams for the server) and
//! [`Lobby::poll_event`]. The timings are the Godot plugin's:
//! - the `h:`/`c:` request is sent at once and re-sent every 0.5 s until `i:` or an error comes;
//! - in the session a ping `p:S:P` goes out every 0.5 s; after [`Lobby::start`] the ping is
//!   replaced by `s:S:P` (re-sent until the start message arrives), after [`Lobby::exit`] by
//!   `x:S:P`;
//! - 15 s without any datagram from the server is [`Error::ServerTimeout`];
//! - `error:non_host_player` and `error:only_one_player_in_session` only turn a pending start
//!   back into pings; every other error ends the lobby;
//! - an `i:` whose first name is ours makes us the host (host migration).
//!
//! Unlike the plugin, the lobby answers the first start message with one `y:S:P`, so the
//! server stops re-sending it (the plugin never confirms; the server copes either way).
//!
//! The lobby directory (docs/lobbies.md), from the session's own socket, since the server takes
//! these only from the host's or the member's address:
//! - a host whose [`Request::publish`] is set publishes its session once its `i:` arrives: in a
//!   game's directory with `a:1:` (an [`Exchange`], re-sent every 0.5 s until `a:1:ok`, then
//!   [`LobbyEvent::Listed`], or `a:1:error:<code>` or silence, then
//!   [`LobbyEvent::ListingFailed`]: either way the session goes on), or in FusionV1's listing
//!   with `d:` (no reply on success: sent 3 times, 0.5 s apart);
//! - [`Lobby::chat`] sends `m:S:P:<text>` once; every `m:<player>:<text>` from the server is a
//!   [`LobbyEvent::Chat`].
//!
//! The directory's replies (`a:`, `b:`, `q:`, `l:`, `m:`) are never taken for `i:`, `s:` or
//! an error of the session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::directory::reply::parse_chat;
use super::directory::{chat_request, DirectoryError, Exchange, Publish};
use super::error::{Error, ServerError};
use super::message::{self, Reply, StartInfo};

/// How often a pending request or a ping is (re-)sent.
pub const RESEND_INTERVAL: Duration = Duration::from_millis(500);
/// Server silence after which the lobby fails with [`Error::ServerTimeout`].
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a host sends FusionV1's `d:`, which has no reply on success.
pub const COMPAT_PUBLISH_SENDS: u8 = 3;

/// Host a new session or join an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Create the session (`h:`) for at most `max_players` players (2..=12).
    Host {
        /// The session's capacity, 2..=12.
        max_players: u8,
    },
    /// Join an existing session (`c:`).
    Join,
}

/// What to ask the server for: session, player, role, password, and when to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Session name: 1-10 ASCII letters or digits.
    pub session: String,
    /// Player name: 1-12 ASCII letters or digits.
    pub player: String,
    /// Host or join.
    pub role: Role,
    /// Optional password: 1-12 ASCII letters or digits.
    pub password: Option<String>,
    /// While we are the host, send the start request as soon as this many players are listed.
    /// `None`: only [`Lobby::start`] starts.
    pub start_when: Option<usize>,
    /// A host's lobby in the directory: where, and what it shows. `None`: not listed.
    pub publish: Option<Publish>,
}

impl Request {
    /// A request to host `session` as `player` for at most `max_players` players.
    pub fn host(session: &str, player: &str, max_players: u8) -> Request {
        Request {
            session: session.to_string(),
            player: player.to_string(),
            role: Role::Host { max_players },
            password: None,
            start_when: None,
            publish: None,
        }
    }

    /// A request to join `session` as `player`.
    pub fn join(session: &str, player: &str) -> Request {
        Request {
            session: session.to_string(),
            player: player.to_string(),
            role: Role::Join,
            password: None,
            start_when: None,
            publish: None,
        }
    }

    /// Sets the session password.
    pub fn password(mut self, password: &str) -> Request {
        self.password = Some(password.to_string());
        self
    }

    /// Starts automatically (while host) once `players` players are listed.
    pub fn start_when(mut self, players: usize) -> Request {
        self.start_when = Some(players);
        self
    }

    /// Lists the hosted session in `game`'s directory (`a:1:`), showing `version`, `mode` and
    /// `description` (docs/lobbies.md has their rules).
    pub fn public(mut self, game: &str, version: &str, mode: &str, description: &str) -> Request {
        self.publish = Some(Publish {
            game: Some(game.to_string()),
            version: version.to_string(),
            mode: mode.to_string(),
            description: description.to_string(),
        });
        self
    }

    /// Lists the hosted session in FusionV1's compatible listing (`d:`, read with `l:`).
    pub fn public_compat(mut self, version: &str, mode: &str) -> Request {
        self.publish = Some(Publish {
            game: None,
            version: version.to_string(),
            mode: mode.to_string(),
            description: String::new(),
        });
        self
    }

    /// Checks the field rules of the protocol, so a bad name fails here and not as a silent
    /// `error:invalid_request` round trip.
    pub fn validate(&self) -> Result<(), Error> {
        check_field("session name", &self.session, 10)?;
        check_field("player name", &self.player, 12)?;
        if let Some(w) = &self.password {
            if !w.is_empty() {
                check_field("password", w, 12)?;
            }
        }
        let capacity = match self.role {
            Role::Host { max_players } if !(2..=12).contains(&max_players) => {
                return Err(Error::InvalidArgument(format!(
                    "max players must be 2..12, not {max_players}"
                )));
            }
            Role::Host { max_players } => usize::from(max_players),
            Role::Join if self.publish.is_some() => {
                return Err(Error::InvalidArgument(
                    "only a host can make its session public".to_string(),
                ));
            }
            Role::Join => 12,
        };
        if let Some(publish) = &self.publish {
            publish
                .to_datagram(&self.session)
                .map_err(invalid_argument)?;
        }
        match self.start_when {
            Some(n) if !(2..=capacity).contains(&n) => Err(Error::InvalidArgument(format!(
                "start when {n} players: must be 2..{capacity}, the session's capacity"
            ))),
            _ => Ok(()),
        }
    }

    fn first_datagram(&self) -> String {
        let password = self.password.as_deref();
        match self.role {
            Role::Host { max_players } => {
                message::host_request(&self.session, &self.player, max_players, password)
            }
            Role::Join => message::connect_request(&self.session, &self.player, password),
        }
    }
}

/// A directory request that breaks the rules, as the lobby's own error.
fn invalid_argument(e: DirectoryError) -> Error {
    match e {
        DirectoryError::InvalidArgument(why) => Error::InvalidArgument(why),
        other => Error::InvalidArgument(other.to_string()),
    }
}

fn check_field(what: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidArgument(format!(
            "{what} must be 1-{max} ASCII letters or digits, not {value:?}"
        )));
    }
    Ok(())
}

/// What happened in the lobby.
#[derive(Debug)]
pub enum LobbyEvent {
    /// The server accepted us (first `i:`): the session's players, host first.
    Joined(Vec<String>),
    /// The player list changed (someone joined, left, was kicked or timed out).
    Players(Vec<String>),
    /// The start message arrived: the lobby is over, the peer phase begins now.
    Started(StartInfo),
    /// The lobby ended with an error (our own exit ends it with `player_exited_session`).
    Failed(Error),
    /// The server listed our session in its game's directory (`a:1:ok`).
    Listed,
    /// Our session could not be listed (`a:1:error:<code>`, or no answer): it goes on unlisted.
    ListingFailed(DirectoryError),
    /// A chat line in our lobby (`m:<player>:<text>`), ours included.
    Chat {
        /// Who said it.
        player: String,
        /// What was said.
        text: String,
    },
}

/// Where a host's publishing of its lobby stands.
#[derive(Debug)]
enum Publishing {
    /// Not asked for, or not begun yet.
    Idle,
    /// FusionV1's `d:`, sent `sends_left` more times on the 0.5 s grid.
    Compat { datagram: Vec<u8>, sends_left: u8 },
    /// `a:1:`, until its answer.
    Announce(Exchange),
    /// Answered, given up, or all `d:` sent.
    Over,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the answer to `h:`/`c:`.
    Requesting,
    /// In the session.
    InSession,
    /// Started or failed; nothing more happens.
    Done,
}

/// The lobby state machine; see the module documentation.
#[derive(Debug)]
pub struct Lobby {
    request: Request,
    stage: Stage,
    is_host: bool,
    start_sent: bool,
    players: Vec<String>,
    /// The datagram re-sent every [`RESEND_INTERVAL`]: the request, a ping, a start or an exit.
    repeat: String,
    next_send: Instant,
    server_deadline: Instant,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<LobbyEvent>,
    publishing: Publishing,
}

impl Lobby {
    /// Validates `request` and queues its first datagram.
    pub fn new(request: Request, now: Instant) -> Result<Lobby, Error> {
        request.validate()?;
        let repeat = request.first_datagram();
        let mut lobby = Lobby {
            is_host: matches!(request.role, Role::Host { .. }),
            request,
            stage: Stage::Requesting,
            start_sent: false,
            players: Vec::new(),
            repeat,
            next_send: now + RESEND_INTERVAL,
            server_deadline: now + SERVER_TIMEOUT,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            publishing: Publishing::Idle,
        };
        lobby.transmits.push_back(lobby.repeat.clone().into_bytes());
        Ok(lobby)
    }

    /// The request this lobby was made for.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether we are the session's host (also after host migration).
    pub fn is_host(&self) -> bool {
        self.is_host
    }

    /// The last player list the server sent, host first.
    pub fn players(&self) -> &[String] {
        &self.players
    }

    /// True once the lobby started or failed.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Feeds one datagram received from the server.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.stage == Stage::Done {
            return;
        }
        if self.stage == Stage::InSession {
            // Any datagram from the server proves it is alive (as in the plugin).
            self.server_deadline = now + SERVER_TIMEOUT;
        }
        if self.stage == Stage::InSession && self.on_directory_reply(now, datagram) {
            return;
        }
        match message::parse_reply(datagram) {
            Some(Reply::Error(code)) => match ServerError::from_code(code) {
                Some(error) => self.on_error(error),
                // Unknown to us: like every error but two, it ends the session.
                None => self.fail(Error::UnknownServerError(code.to_string())),
            },
            Some(Reply::Info(names)) => self.on_info(now, names),
            Some(Reply::Start(info)) if self.stage == Stage::InSession => {
                self.stage = Stage::Done;
                self.transmits.push_back(
                    message::session_command('y', &self.request.session, &self.request.player)
                        .into_bytes(),
                );
                self.events.push_back(LobbyEvent::Started(info));
            }
            _ => {}
        }
    }

    fn on_error(&mut self, error: ServerError) {
        let recoverable = self.stage == Stage::InSession
            && matches!(
                error,
                ServerError::NonHostPlayer | ServerError::OnlyOnePlayerInSession
            );
        if recoverable {
            // A start we were not allowed to make: back to plain pings.
            self.start_sent = false;
            self.repeat = self.ping();
            return;
        }
        self.fail(Error::Server(error));
    }

    fn on_info(&mut self, now: Instant, names: Vec<&str>) {
        let names: Vec<String> = names.into_iter().map(str::to_string).collect();
        self.is_host = names.first() == Some(&self.request.player);
        if self.stage == Stage::Requesting {
            self.stage = Stage::InSession;
            self.server_deadline = now + SERVER_TIMEOUT;
            self.repeat = self.ping();
            self.next_send = now + RESEND_INTERVAL;
            self.players = names.clone();
            self.events.push_back(LobbyEvent::Joined(names));
            if self.is_host {
                self.begin_publishing(now);
            }
        } else if names != self.players {
            self.players = names.clone();
            self.events.push_back(LobbyEvent::Players(names));
        }
        if let Some(n) = self.request.start_when {
            if self.is_host && !self.start_sent && self.players.len() >= n.max(2) {
                self.start(now);
            }
        }
    }

    /// Says `text` in the lobby: `m:S:P:<text>`, sent once (a re-send would say it twice).
    /// `Ok(false)` when not in a session; an error when the server would refuse the text
    /// (its `error:invalid_request` would end the session).
    pub fn chat(&mut self, text: &str) -> Result<bool, Error> {
        let datagram = chat_request(&self.request.session, &self.request.player, text)
            .map_err(invalid_argument)?;
        if self.stage != Stage::InSession {
            return Ok(false);
        }
        self.transmits.push_back(datagram);
        Ok(true)
    }

    /// Starts publishing our session, as the request says (host only, on our first `i:`).
    fn begin_publishing(&mut self, now: Instant) {
        let Some(publish) = &self.request.publish else {
            return;
        };
        let session = &self.request.session;
        self.publishing = match &publish.game {
            Some(_) => match Exchange::announce(session, publish, now) {
                Ok(exchange) => Publishing::Announce(exchange),
                Err(e) => {
                    // Checked by Request::validate: cannot happen.
                    self.events.push_back(LobbyEvent::ListingFailed(e));
                    Publishing::Over
                }
            },
            None => match publish.to_datagram(session) {
                Ok(datagram) => {
                    self.transmits.push_back(datagram.clone());
                    Publishing::Compat {
                        datagram,
                        sends_left: COMPAT_PUBLISH_SENDS - 1,
                    }
                }
                Err(e) => {
                    self.events.push_back(LobbyEvent::ListingFailed(e));
                    Publishing::Over
                }
            },
        };
        self.drive_publishing(now);
    }

    /// Moves the `a:1:` exchange's datagrams and result into the lobby's.
    fn drive_publishing(&mut self, now: Instant) {
        let Publishing::Announce(exchange) = &mut self.publishing else {
            return;
        };
        exchange.handle_timeout(now);
        while let Some(datagram) = exchange.poll_transmit() {
            self.transmits.push_back(datagram);
        }
        if let Some(result) = exchange.poll_result() {
            self.publishing = Publishing::Over;
            self.events.push_back(match result {
                Ok(_) => LobbyEvent::Listed,
                Err(e) => LobbyEvent::ListingFailed(e),
            });
        }
    }

    /// Handles a reply of the directory (`a:1:`'s answer, a chat line); true when it was one.
    /// The other directory replies (`b:`, `q:`, `l:`, meant for a query's own socket) are
    /// dropped here too, so that they never reach the reading of `i:`, `s:` and `error:`.
    fn on_directory_reply(&mut self, now: Instant, datagram: &[u8]) -> bool {
        match datagram {
            [b'a', b':', ..] => {
                if let Publishing::Announce(exchange) = &mut self.publishing {
                    exchange.handle_datagram(now, datagram);
                    self.drive_publishing(now);
                }
                true
            }
            [b'm', b':', ..] => {
                if let Some((player, text)) = parse_chat(datagram) {
                    self.events.push_back(LobbyEvent::Chat {
                        player: player.to_string(),
                        text: text.to_string(),
                    });
                }
                true
            }
            [b'b' | b'q' | b'l', b':', ..] => true,
            _ => false,
        }
    }

    fn ping(&self) -> String {
        message::session_command('p', &self.request.session, &self.request.player)
    }

    fn fail(&mut self, error: Error) {
        self.stage = Stage::Done;
        self.events.push_back(LobbyEvent::Failed(error));
    }

    /// Asks the server to start the session (host only; ignored otherwise, as in the plugin).
    /// The start request replaces the ping until the start message arrives.
    pub fn start(&mut self, now: Instant) -> bool {
        if self.stage != Stage::InSession || !self.is_host {
            return false;
        }
        self.start_sent = true;
        self.send_repeating(now, 's');
        true
    }

    /// Leaves the session: `x:S:P` replaces the ping until the server's
    /// `error:player_exited_session` ends the lobby.
    pub fn exit(&mut self, now: Instant) -> bool {
        if self.stage != Stage::InSession {
            return false;
        }
        self.send_repeating(now, 'x');
        true
    }

    /// Kicks `player` (host only, and only a listed player; sent once, as in the plugin).
    pub fn kick(&mut self, player: &str) -> bool {
        if self.stage != Stage::InSession
            || !self.is_host
            || !self.players.iter().any(|p| p == player)
        {
            return false;
        }
        self.transmits
            .push_back(message::session_command('k', &self.request.session, player).into_bytes());
        true
    }

    fn send_repeating(&mut self, now: Instant, letter: char) {
        self.repeat = message::session_command(letter, &self.request.session, &self.request.player);
        self.transmits.push_back(self.repeat.clone().into_bytes());
        self.next_send = now + RESEND_INTERVAL;
    }

    /// Call when [`Lobby::poll_timeout`] has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stage == Stage::Done {
            return;
        }
        if now >= self.server_deadline {
            self.fail(Error::ServerTimeout);
            return;
        }
        self.drive_publishing(now);
        if now >= self.next_send {
            if let Publishing::Compat {
                datagram,
                sends_left,
            } = &mut self.publishing
            {
                self.transmits.push_back(datagram.clone());
                *sends_left -= 1;
                if *sends_left == 0 {
                    self.publishing = Publishing::Over;
                }
            }
            self.transmits.push_back(self.repeat.clone().into_bytes());
            // On the 0.5 s grid, so that a late wake-up does not push every later send back;
            // after a stall longer than that, the grid restarts from now rather than bursting.
            self.next_send += RESEND_INTERVAL;
            if self.next_send <= now {
                self.next_send = now + RESEND_INTERVAL;
            }
        }
    }

    /// When [`Lobby::handle_timeout`] must next be called; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stage == Stage::Done {
            return None;
        }
        let lobby = self.next_send.min(self.server_deadline);
        Some(match &self.publishing {
            Publishing::Announce(exchange) => {
                exchange.poll_timeout().map_or(lobby, |t| t.min(lobby))
            }
            _ => lobby,
        })
    }

    /// The next datagram to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LobbyEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(lobby: &mut Lobby) -> Vec<String> {
        std::iter::from_fn(|| lobby.poll_transmit())
            .map(|d| String::from_utf8(d).unwrap())
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn host_request_is_resent_every_half_second_until_info() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::host("Room", "alice", 4).password("pw"), t0).unwrap();
        assert_eq!(drain(&mut lobby), ["h:Room:alice:4:pw"]);
        assert_eq!(lobby.poll_timeout(), Some(t0 + ms(500)));
        lobby.handle_timeout(t0 + ms(499));
        assert!(drain(&mut lobby).is_empty());
        lobby.handle_timeout(t0 + ms(500));
        assert_eq!(drain(&mut lobby), ["h:Room:alice:4:pw"]);
        lobby.handle_datagram(t0 + ms(600), b"i:alice");
        assert!(matches!(lobby.poll_event(), Some(LobbyEvent::Joined(p)) if p == ["alice"]));
        assert!(lobby.is_host());
        lobby.handle_timeout(t0 + ms(1100));
        assert_eq!(drain(&mut lobby), ["p:Room:alice"]);
    }

    #[test]
    fn late_wake_ups_keep_the_half_second_grid_and_a_long_stall_restarts_it() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        drain(&mut lobby);
        // Woken 40 ms late: the next send is still due at 1 s, not at 1.04 s.
        lobby.handle_timeout(t0 + ms(540));
        assert_eq!(drain(&mut lobby), ["c:Room:bob"]);
        assert_eq!(lobby.poll_timeout(), Some(t0 + ms(1000)));
        // Stalled past two sends: one send, then 0.5 s on from now, no burst to catch up.
        lobby.handle_timeout(t0 + ms(2200));
        assert_eq!(drain(&mut lobby), ["c:Room:bob"]);
        lobby.handle_timeout(t0 + ms(2200));
        assert!(drain(&mut lobby).is_empty());
        assert_eq!(lobby.poll_timeout(), Some(t0 + ms(2700)));
    }

    #[test]
    fn join_without_answer_times_out_after_15_s() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        let mut now = t0;
        let mut sent = 0;
        while !lobby.is_done() {
            sent += drain(&mut lobby).len();
            now = lobby.poll_timeout().unwrap();
            lobby.handle_timeout(now);
        }
        assert_eq!(now, t0 + SERVER_TIMEOUT);
        assert_eq!(sent, 30, "one request every 0.5 s for 15 s");
        assert!(matches!(
            lobby.poll_event(),
            Some(LobbyEvent::Failed(Error::ServerTimeout))
        ));
    }

    #[test]
    fn every_datagram_in_session_restarts_the_server_timer() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        lobby.handle_datagram(t0, b"i:alice:bob");
        lobby.handle_datagram(t0 + Duration::from_secs(10), b"i:alice:bob");
        lobby.handle_timeout(t0 + Duration::from_secs(15));
        assert!(!lobby.is_done());
        lobby.handle_timeout(t0 + Duration::from_secs(25));
        assert!(lobby.is_done());
    }

    #[test]
    fn server_errors_end_the_request() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        lobby.handle_datagram(t0, b"error:password_mismatch");
        assert!(matches!(
            lobby.poll_event(),
            Some(LobbyEvent::Failed(Error::Server(
                ServerError::PasswordMismatch
            )))
        ));
        assert_eq!(lobby.poll_timeout(), None);
    }

    #[test]
    fn start_when_sends_start_and_only_one_player_reverts_to_ping() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::host("Room", "alice", 4).start_when(2), t0).unwrap();
        drain(&mut lobby);
        lobby.handle_datagram(t0, b"i:alice");
        assert!(drain(&mut lobby).is_empty());
        lobby.handle_datagram(t0 + ms(100), b"i:alice:bob");
        assert_eq!(drain(&mut lobby), ["s:Room:alice"]);
        lobby.handle_timeout(t0 + ms(600));
        assert_eq!(drain(&mut lobby), ["s:Room:alice"]);
        lobby.handle_datagram(t0 + ms(700), b"error:only_one_player_in_session");
        assert!(!lobby.is_done());
        lobby.handle_timeout(t0 + ms(1100));
        assert_eq!(drain(&mut lobby), ["p:Room:alice"]);
    }

    #[test]
    fn start_message_ends_lobby_with_confirmation() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        drain(&mut lobby);
        lobby.handle_datagram(t0, b"i:alice:bob");
        assert!(!lobby.is_host());
        assert!(!lobby.start(t0), "a non-host cannot start");
        lobby.poll_event();
        lobby.handle_datagram(t0 + ms(10), b"s:5001:alice:127.0.0.1:5000");
        assert_eq!(drain(&mut lobby), ["y:Room:bob"]);
        let Some(LobbyEvent::Started(info)) = lobby.poll_event() else {
            panic!()
        };
        assert_eq!(info.own_port, 5001);
        assert_eq!(info.peers[0].name, "alice");
        assert!(lobby.is_done());
    }

    #[test]
    fn host_migration_kick_and_exit() {
        let t0 = Instant::now();
        let mut lobby = Lobby::new(Request::join("Room", "bob"), t0).unwrap();
        drain(&mut lobby);
        lobby.handle_datagram(t0, b"i:alice:bob:carol");
        assert!(!lobby.kick("carol"));
        lobby.handle_datagram(t0, b"i:bob:carol");
        assert!(lobby.is_host());
        assert!(matches!(lobby.poll_event(), Some(LobbyEvent::Joined(_))));
        assert!(
            matches!(lobby.poll_event(), Some(LobbyEvent::Players(p)) if p == ["bob", "carol"])
        );
        assert!(!lobby.kick("nobody"));
        assert!(lobby.kick("carol"));
        assert_eq!(drain(&mut lobby), ["k:Room:carol"]);
        assert!(lobby.exit(t0));
        assert_eq!(drain(&mut lobby), ["x:Room:bob"]);
        lobby.handle_timeout(t0 + ms(500));
        assert_eq!(drain(&mut lobby), ["x:Room:bob"]);
        lobby.handle_datagram(t0 + ms(600), b"error:player_exited_session");
        assert!(matches!(
            lobby.poll_event(),
            Some(LobbyEvent::Failed(Error::Server(
                ServerError::PlayerExitedSession
            )))
        ));
    }

    #[test]
    fn bad_fields_are_rejected_before_sending() {
        let t0 = Instant::now();
        for req in [
            Request::host("", "a", 2),
            Request::host("elevenchars", "a", 2),
            Request::host("R", "a:b", 2),
            Request::host("R", "a", 13),
            Request::host("R", "a", 1),
            Request::join("R", "thirteenchars"),
            Request::join("R", "a").password("bad pw"),
            Request::host("R", "a", 4).start_when(5),
            Request::host("R", "a", 4).start_when(1),
        ] {
            assert!(matches!(
                Lobby::new(req, t0),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}

#[cfg(test)]
#[path = "lobby_directory_tests.rs"]
mod directory_tests;
