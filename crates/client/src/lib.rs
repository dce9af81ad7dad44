//! A client for the Rabid hole-punch protocol: the whole flow of the Godot 3 plugin, so Rust
//! games can use a rabid-punch server and punch to Godot players.
//!
//! It is a crate of its own so that a game depends on it without the server: it needs only the
//! wire format (`rabid-wire`), `log` and, for [`run_cli`], `argh`. The server re-exports it as
//! `rabid_punch::client`.
//!
//! # Shape
//! The protocol lives in two sans-I/O state machines, fed `(now, datagram)` and asked what to
//! send and when to wake; they read no clock and touch no socket, so every timer is unit-tested
//! on a fake clock:
//! - [`Lobby`] ([`lobby`]): host (`h:`) or join (`c:`), pings, kick, exit, start, up to the
//!   server's start message.
//! - [`PeerPhase`] ([`peer`]): greetings, confirmations and the host's countdown, player to
//!   player; its module documentation describes the phase step by step.
//!
//! [`Session`] and [`punch()`] ([`driver`]) run them on blocking `std` UDP sockets;
//! [`run_cli`] ([`cli`]) is the `rabid-punch client` command.
//!
//! The lobby directory (docs/lobbies.md) is [`directory`]: [`Directory`] lists a game's public
//! lobbies with filters and paging, quick-joins and reads FusionV1's compatible list, each
//! query a sans-I/O [`directory::Exchange`] re-sent every 0.5 s; a host lists its own session
//! with [`Request::public`], and members chat with [`Session::chat`] ([`LobbyEvent::Chat`]).
//!
//! # Example
//! ```no_run
//! use rabid_client::{self as client, Request};
//! use std::time::Duration;
//!
//! let server = "127.0.0.1:7777".parse().unwrap();
//! // The host starts the session by itself once 2 players are listed.
//! let request = Request::host("Room1", "alice", 4).password("secret").start_when(2);
//! match client::punch(server, request, Some(Duration::from_secs(60))) {
//!     Ok(connected) => {
//!         // Host: serve the game on connected.socket (bound to punched.self_port).
//!         // Client: send to connected.punched.host from connected.socket.
//!         println!("punched, local port {}", connected.punched.self_port);
//!     }
//!     Err(e) => eprintln!("failed: {} ({e})", e.code()),
//! }
//! ```
//!
//! # Every wait is bounded
//! - directory: a query is sent 10 times, 0.5 s apart, then is
//!   [`DirectoryError::Timeout`] (5 s); a host's `a:1:` likewise, as
//!   [`LobbyEvent::ListingFailed`];
//! - lobby: 15 s of server silence is [`Error::ServerTimeout`]; waiting for other players is
//!   bounded only by the caller's deadline (the server's own session lifetime ends it too);
//! - peer phase: about 10.4 s to the confirmations, then 3.5 s for the host and at most 6 s
//!   (or the host's start delay, capped at 30 s) for a client.

pub mod cli;
pub mod directory;
pub mod driver;
pub mod error;
pub mod lobby;
pub mod message;
pub mod payload;
pub mod peer;

pub use cli::run_cli;
pub use directory::{Directory, DirectoryError, Publish, Query};
pub use driver::{punch, run_session, Connected, Session};
pub use error::{Error, ServerError};
pub use lobby::{Lobby, LobbyEvent, Request, Role};
pub use message::{PeerAddr, StartInfo};
pub use peer::{PeerPhase, Punched, PunchedPeer};
