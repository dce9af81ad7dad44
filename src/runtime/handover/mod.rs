//! Hot restart: a running server hands its sockets and its whole state to a successor process,
//! which serves on from the first datagram queued in the kernel (`--control-socket`,
//! `--takeover`; README, "Upgrades without losing a game").
//!
//! UDP makes this simpler than for the TCP servers that did it first (Envoy, HAProxy, nginx):
//! the successor gets the very same sockets (`SCM_RIGHTS`), so a datagram that arrives while the
//! two processes talk waits in the socket's receive buffer, whichever process reads it.
//!
//! - [`unix`]: the control socket (`SOCK_SEQPACKET`), peer credentials, descriptors passed;
//! - [`messages`]: what the two processes say, and the offer the successor checks;
//! - [`pause`]: parking the readers, freezing the workers, and the latch a successor's threads
//!   wait on;
//! - [`freeze`]: the running server's side ([`Handover`]): freeze, then commit or thaw;
//! - [`serve`]: the running server's control thread;
//! - [`take`]: the successor's side;
//! - [`notify`]: telling systemd which process is the service now.
//!
//! The state itself (sessions, players, relays, deadlines) is the core's to write and read
//! (`crate::core::handover`); this module only moves it.

mod freeze;
pub mod messages;
pub mod notify;
mod pause;
pub mod serve;
pub mod take;
pub mod unix;

pub use freeze::{continuing_clock, monotonic_ns, Frozen, Handover, Parts};
pub use messages::fleet_key;
pub use pause::{Freeze, Latch, ReadGate, Verdict};
