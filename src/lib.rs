//! rabid-punch: a UDP rendezvous server for NAT hole punching that speaks the Rabid hole-punch
//! protocol (see `docs/protocol.md`), and a client for it.
//!
//! The crate is split by job:
//! - [`wire`]: the text format of requests and replies; no state, no I/O.
//! - [`core`]: the sessions of one shard as a pure state machine, handed the time by its caller.
//! - [`runtime`]: sockets, threads, channels and signals around the core; it only moves bytes.
//! - [`client`]: a client doing the whole flow of the Godot plugin, peer phase included.

pub mod budget;
pub mod cli;
pub mod core;
pub mod detach;
pub mod ip_key;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod runtime;
pub mod start;
/// The client, in its own crate (`crates/client`) so a game can embed it without the server.
pub use rabid_client as client;
/// The wire format, in its own crate (`crates/wire`) so the client shares it without the server.
pub use rabid_wire as wire;
