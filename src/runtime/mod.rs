//! The runtime: the socket, the threads and the channels around the session core. It only moves
//! bytes; every protocol rule is in [`crate::core`].
//!
//! ```text
//!                    +-----------+   Batch (crossbeam, bounded)   +----------+
//!   UDP socket ----> | receiver  | ---- parsed requests --------> | worker 0 | --+
//!   (recvmmsg)       | FrontDoor | -----------------------------> | worker 1 | --+--> socket clones
//!                    |  verdicts | -----------------------------> | worker N | --+    (sendmmsg)
//!                    +-----------+   (rings the worker's bell     +----------+
//!                     sends the answers to malformed requests     each owns one Shard, and
//!                                     if it sleeps)               reads its relay ports (epoll)
//! ```

mod batch;
mod datagram;
mod directory;
pub mod fleet;
pub mod handover;
#[cfg(target_os = "linux")]
mod poll;
mod receiver;
mod relay;
mod sched;
pub mod socket;
pub mod stats;
#[cfg(target_os = "linux")]
mod uring;
mod wake;
mod worker;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use log::{debug, log_enabled, Level};
use socket2::Socket;

use crate::budget::{BudgetConfig, SendBudgets};
use crate::core::{Clock, CoreConfig, Directory, FrontDoor, LobbyRouted, Shard, Shared};
use crate::outbox::Outbox;
pub use relay::RelayIo;
pub use sched::Scheduling;
pub use stats::{Counters, Totals, COMMANDS, HANDLING_BUCKETS_NS, REPLY_KINDS};

use crate::core::RelayMode;
use datagram::Batch;
use handover::{Freeze, Handover, Latch, ReadGate};
use receiver::LocalAddress;
use relay::RelaySockets;
use wake::{Bell, WorkQueue};

/// What a worker's queue carries.
#[derive(Debug)]
pub enum Work {
    /// Requests from the receiver.
    Requests(Batch),
    /// Lobby requests (`d:`, `m:`, `a:1:`) from the receiver.
    Lobby(Vec<LobbyRouted>),
    /// A hand-over: write the shard's state and freeze (from the control thread).
    Handover(Freeze),
}

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// Worker threads, each owning a share of the sessions.
    pub workers: usize,
    /// Receiver threads, each reading its own socket of one `SO_REUSEPORT` group. One receiver
    /// saturates at about two workers' worth of pings (README, Performance).
    pub receivers: usize,
    /// Batches a worker may have waiting before the receiver drops what it would add.
    pub queue_capacity: usize,
    /// The protocol's durations and counts, and the caps on sessions and players.
    pub core: CoreConfig,
    /// The per-IP send budgets.
    pub budget: BudgetConfig,
    /// The relay port pool (with `core.relay.mode` not off), shared out among the workers.
    pub relay_ports: RangeInclusive<u16>,
    /// How the workers move their relay ports' datagrams (`io_uring` or `epoll`).
    pub relay_io: RelayIo,
    /// How the threads that move datagrams are scheduled.
    pub scheduling: Scheduling,
    /// The fleet this server shares its lobby directory with (`--directory`), if any.
    pub fleet: Option<fleet::FleetConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 7777)),
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            receivers: 1,
            queue_capacity: 1024,
            core: CoreConfig::default(),
            budget: BudgetConfig::default(),
            relay_ports: 7778..=8777,
            relay_io: RelayIo::default(),
            scheduling: Scheduling::default(),
            fleet: None,
        }
    }
}

/// A thread of the server that ended: its name, and whether it panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadExit {
    pub thread: String,
    pub panicked: bool,
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    exits: Receiver<ThreadExit>,
    probe: Probe,
    directory: Arc<Directory>,
    handover: Handover,
}

/// What a successor takes over from the server it replaces (see [`handover`]).
pub struct Inherited {
    /// The server socket, one per receiver, in receiver order.
    pub receivers: Vec<Socket>,
    /// The relay sockets, by port.
    pub relay: HashMap<u16, Socket>,
    /// The sessions, players and relays.
    pub state: crate::core::handover::State,
    /// A clock that goes on from the old server's.
    pub clock: Clock,
    /// The fleet node id to go on as, when in the same fleet.
    pub fleet_node: Option<String>,
}

/// A read-only view of a running server's figures, for a metrics scrape on another thread.
///
/// It holds each thread's [`Counters`] and a clone of each worker's queue *receiving* end:
/// `Receiver::len` tells the queue depth, and a receiving end (unlike a sending one) does not
/// keep a worker alive when the receiver thread hangs up at shutdown. Reading it takes no lock
/// and never makes a worker wait.
#[derive(Clone)]
pub struct Probe {
    /// The workers' counters in worker order, then the directory thread's (and the fleet
    /// thread's), then the receivers'.
    counters: Vec<Arc<Counters>>,
    queues: Vec<Receiver<Work>>,
    receivers: usize,
}

impl Probe {
    /// The sum of all threads' counters now.
    pub fn totals(&self) -> Totals {
        Totals::sum(self.counters.iter().map(|c| &**c))
    }

    /// Each worker's counters, in worker order.
    pub fn worker_totals(&self) -> Vec<Totals> {
        let workers = self.queues.len();
        self.counters[..workers]
            .iter()
            .map(|c| Totals::sum([&**c]))
            .collect()
    }

    /// Each receiver's counters: what each read of the port.
    pub fn receiver_totals(&self) -> Vec<Totals> {
        let first = self.counters.len() - self.receivers;
        self.counters[first..]
            .iter()
            .map(|c| Totals::sum([&**c]))
            .collect()
    }

    /// Batches (of up to 32 datagrams each) waiting in each worker's queue, in worker order.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.queues.iter().map(Receiver::len).collect()
    }
}

impl Server {
    /// Binds the socket and starts the receiver and the workers.
    pub fn start(config: ServerConfig) -> io::Result<Server> {
        Self::start_with(config, None, Arc::new(Latch::open()))
    }

    /// Starts a server on the sockets and state `inherited` from the server it replaces, if
    /// any, else on sockets of its own. Every thread waits for `latch` to open before it reads,
    /// sends or wakes a timer (a successor opens it once the server before confirmed).
    pub fn start_with(
        config: ServerConfig,
        inherited: Option<Inherited>,
        latch: Arc<Latch>,
    ) -> io::Result<Server> {
        let (group, mut relay_sockets, state, clock, fleet_node) = match inherited {
            Some(i) => (i.receivers, i.relay, Some(i.state), i.clock, i.fleet_node),
            None => (
                socket::bind_group(config.bind, config.receivers.max(1))?,
                HashMap::new(),
                None,
                Clock::new(Instant::now()),
                None,
            ),
        };
        let mut sockets = group.into_iter();
        let socket = sockets
            .next()
            .ok_or_else(|| io::Error::other("no server socket"))?;
        let local_addr = socket::local_addr(&socket)?;
        let workers = config.workers.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(ReadGate::default());
        let handed_over = Arc::new(AtomicBool::new(false));
        let spawn = |name: String,
                     exits: &Sender<ThreadExit>,
                     scheduling: Scheduling,
                     body: Box<dyn FnOnce() + Send + 'static>| {
            spawn_watched(name, exits.clone(), scheduling, latch.clone(), body)
        };
        // One clock for the shards and the send budgets (after a hand-over, the old one's,
        // going on); the shards share the caps and the relay limits through `shared`.
        let mut shared = Shared::on_clock(&config.core, clock);
        // In a fleet, the directory tells the fleet thread every change of this server's
        // sessions and lobbies (a channel that never blocks the shards).
        let fleet_changes = config.fleet.as_ref().map(|_| {
            let (tx, rx) = crossbeam_channel::unbounded();
            shared.directory = Arc::new(Directory::with_fleet(tx));
            rx
        });
        let budgets = Arc::new(SendBudgets::new(config.budget, shared.clock));
        let relay_on = config.core.relay.mode != RelayMode::Off;
        // Relays taken over keep their ports, out of the shares dealt out.
        let held: HashSet<u16> = state
            .as_ref()
            .map(|s| s.relay_ports().into_iter().collect())
            .unwrap_or_default();
        let mut shares = if relay_on {
            relay::bind_pool(
                local_addr.ip(),
                config.relay_ports.clone(),
                workers,
                &mut relay_sockets,
                &held,
            )
        } else {
            Vec::new()
        };
        shares.resize_with(workers, RelaySockets::default);
        // One front door (one hash key) for the receivers, and for the sessions taken over.
        let front = FrontDoor::new(workers);
        let mut shards: Vec<Shard> = shares
            .iter()
            .map(|share| Shard::with_shared(&config.core, &shared).with_relay_pool(share.ports()))
            .collect();
        if let Some(state) = state {
            let taken = state.restore(&shared, &front, &mut shards);
            for (share, ports) in shares.iter_mut().zip(taken) {
                for port in ports {
                    match relay_sockets.remove(&port) {
                        Some(socket) => share.insert(port, socket),
                        None => log::warn!(
                            "relay: port {port} of a relay taken over came without its socket"
                        ),
                    }
                }
            }
        }
        let local = local_address(&socket, local_addr, &config);
        let (exit_tx, exits) = crossbeam_channel::unbounded();
        let mut threads = Vec::new();
        let mut counters = Vec::new();
        let mut senders = Vec::new();
        let mut queues = Vec::new();
        // Each relay socket's descriptor, for a hand-over (the workers own the sockets, and live
        // as long as the server).
        let mut relay_fds = Vec::new();
        let mut readers = 0;
        for (index, (shard, share)) in shards.into_iter().zip(shares).enumerate() {
            let (tx, rx) = bounded(config.queue_capacity.max(1));
            queues.push(rx.clone());
            let clone = socket.try_clone()?;
            let gate = Gate {
                socket: clone,
                budgets: budgets.clone(),
                counters: Arc::new(Counters::default()),
            };
            counters.push(gate.counters.clone());
            // The worker reads its relay ports itself, and sleeps on them and on the bell the
            // receivers (and a hand-over) ring when they queue work for it.
            relay_fds.extend(share.fds());
            let bell = Arc::new(Bell::new()?);
            let inbox = relay::Inbox::new(share, bell.clone(), config.relay_io)?;
            senders.push(WorkQueue::new(tx, bell));
            threads.push(spawn(
                format!("worker-{index}"),
                &exit_tx,
                config.scheduling,
                Box::new(move || worker::run(shard, rx, gate, inbox)),
            )?);
        }
        // The receiver's counters come last, after the workers'.
        let gate = Gate {
            socket,
            budgets,
            counters: Arc::new(Counters::default()),
        };
        counters.push(gate.counters.clone());
        // The directory thread: a socket clone of its own, counters of its own (before the
        // receiver's, which come last).
        let (directory_tx, directory_rx) = bounded(directory::QUEUE);
        let directory_gate = Gate {
            socket: gate.socket.try_clone()?,
            budgets: gate.budgets.clone(),
            counters: Arc::new(Counters::default()),
        };
        counters.insert(counters.len() - 1, directory_gate.counters.clone());
        let listed = shared.directory.clone();
        threads.push(spawn(
            "directory".into(),
            &exit_tx,
            config.scheduling,
            Box::new(move || directory::run(listed, directory_rx, directory_gate)),
        )?);
        let mut fleet_offer = None;
        if let (Some(fleet_config), Some(changes)) = (config.fleet.clone(), fleet_changes) {
            let fleet_counters = Arc::new(Counters::default());
            counters.insert(counters.len() - 1, fleet_counters.clone());
            let key = handover::fleet_key(&fleet_config.url, &fleet_config.prefix);
            let fleet = fleet::Fleet::new(
                fleet_config,
                shared.directory.clone(),
                changes,
                fleet_counters,
            )
            .adopting(fleet_node);
            fleet_offer = Some((fleet.node_cell(), key));
            let (fleet_stop, handed_over) = (stop.clone(), handed_over.clone());
            threads.push(spawn(
                "fleet".into(),
                &exit_tx,
                Scheduling::Normal,
                Box::new(move || fleet.run(fleet_stop, handed_over)),
            )?);
        }
        // The receivers: the first on the first socket, any more on the rest of the group, each
        // with its own counters (after everything else) and a clone of one front door (one hash
        // key: a session's requests go to one worker whichever receiver reads them).
        let mut gates = vec![gate];
        for more in sockets {
            if let LocalAddress::Ask = local {
                let _ = batch::want_local_addresses(&more);
            }
            let gate = Gate {
                socket: more,
                budgets: gates[0].budgets.clone(),
                counters: Arc::new(Counters::default()),
            };
            counters.push(gate.counters.clone());
            gates.push(gate);
        }
        let receiver_sockets = gates
            .iter()
            .map(|gate| gate.socket.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        for (index, gate) in gates.into_iter().enumerate() {
            let routes = receiver::Routes {
                workers: senders.clone(),
                directory: directory_tx.clone(),
                sweeps: index == 0,
            };
            let (front, receiver_stop, pause) = (front.clone(), stop.clone(), pause.clone());
            let name = match index {
                0 => "receiver".to_string(),
                n => format!("receiver-{n}"),
            };
            readers += 1;
            threads.push(spawn(
                name,
                &exit_tx,
                config.scheduling,
                Box::new(move || {
                    if let Err(e) = receiver::run(gate, front, routes, local, receiver_stop, pause)
                    {
                        log::error!("receiver: socket error: {e}");
                    }
                }),
            )?);
        }
        let handover = Handover::new(handover::Parts {
            gate: pause,
            readers,
            workers: senders,
            shared: shared.clone(),
            receivers: receiver_sockets,
            relay: relay_fds,
            stop: stop.clone(),
            handed_over,
            fleet: fleet_offer,
            bind: local_addr,
            relay_ports: relay_on.then(|| config.relay_ports.clone()),
        });
        drop((directory_tx, exit_tx));
        Ok(Server {
            local_addr,
            stop,
            threads,
            exits,
            probe: Probe {
                counters,
                queues,
                receivers: config.receivers.max(1),
            },
            directory: shared.directory,
            handover,
        })
    }

    /// The address the server listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reports each thread that ends. Before [`shutdown`](Self::shutdown), any report means
    /// the server lost a thread and must not serve on.
    pub fn exits(&self) -> &Receiver<ThreadExit> {
        &self.exits
    }

    /// The sum of all threads' counters now.
    pub fn totals(&self) -> Totals {
        self.probe.totals()
    }

    /// Each worker's counters, in worker order: shows how sessions spread over the workers.
    pub fn worker_totals(&self) -> Vec<Totals> {
        self.probe.worker_totals()
    }

    /// A view of the figures for another thread (the metrics endpoint).
    pub fn probe(&self) -> Probe {
        self.probe.clone()
    }

    /// The lobby directory, for the HTTP view.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    /// What the control thread needs for a hand-over.
    pub fn handover(&self) -> Handover {
        self.handover.clone()
    }

    /// Stops the receiver, lets the workers finish what they were handed, and waits for all.
    pub fn shutdown(mut self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        self.handover.release_workers();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.totals()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How the receiver learns the address a request arrived on, which a relayed start lists when
/// no public relay address is set: the bound address, or, for a wildcard bind, the kernel's
/// word for each datagram (`IP_PKTINFO`).
fn local_address(socket: &Socket, bound: SocketAddr, config: &ServerConfig) -> LocalAddress {
    let relay = &config.core.relay;
    if relay.mode == RelayMode::Off || relay.public_ip.is_some() {
        return LocalAddress::Known(None);
    }
    if !bound.ip().is_unspecified() {
        return LocalAddress::Known(Some(bound.ip()));
    }
    match batch::want_local_addresses(socket) {
        Ok(()) => LocalAddress::Ask,
        Err(e) => {
            log::warn!(
                "relay: cannot learn the address requests arrive on ({e}); relayed sessions \
                 need --relay-public-ip"
            );
            LocalAddress::Known(None)
        }
    }
}

/// Spawns a named thread, scheduled as `scheduling` says, that reports on `exits` when it ends,
/// however it ends. It starts when `latch` opens (and ends at once if it is cancelled).
fn spawn_watched(
    name: String,
    exits: Sender<ThreadExit>,
    scheduling: Scheduling,
    latch: Arc<Latch>,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    struct Watch {
        name: String,
        exits: Sender<ThreadExit>,
    }
    impl Drop for Watch {
        fn drop(&mut self) {
            let _ = self.exits.send(ThreadExit {
                thread: std::mem::take(&mut self.name),
                panicked: thread::panicking(),
            });
        }
    }
    let watch = Watch {
        name: name.clone(),
        exits,
    };
    thread::Builder::new().name(name).spawn(move || {
        // Held to the end of the thread: its drop reports the exit.
        let watch = watch;
        if !latch.wait() {
            return;
        }
        if let Err(e) = scheduling.apply_to_this_thread() {
            log::warn!(
                "{}: cannot set its scheduling to {scheduling:?} ({e}); it runs with the \
                 default",
                watch.name
            );
        }
        body();
    })
}

/// The way out of the server: a thread's clone of the socket, with the send budgets every
/// datagram is charged to, and the thread's counters. Every reply passes here.
pub(crate) struct Gate {
    pub(crate) socket: Socket,
    pub(crate) budgets: Arc<SendBudgets>,
    pub(crate) counters: Arc<Counters>,
}

impl Gate {
    /// Sends what `out` holds and the budgets allow, in batches; counts the rest as dropped.
    pub(crate) fn send(&self, out: &Outbox, now: Instant) {
        let debug = log_enabled!(Level::Debug);
        let allowed = out.iter().filter(|(to, payload)| {
            match self.budgets.try_spend(to.ip(), payload.len(), now) {
                Ok(()) => {
                    self.counters.reply(payload);
                    if debug {
                        debug!(
                            "{to} <- {}",
                            String::from_utf8_lossy(payload).escape_debug()
                        );
                    }
                    true
                }
                Err(refusal) => {
                    self.counters.dropped_by_budget(refusal);
                    if debug {
                        debug!(
                            "{to} <- dropped ({refusal:?}): {}",
                            String::from_utf8_lossy(payload).escape_debug()
                        );
                    }
                    false
                }
            }
        });
        let (sent, bytes, failed) = batch::send_all(&self.socket, allowed);
        self.counters.sent(sent, bytes, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_panicking_thread_is_reported() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = spawn_watched(
            "doomed".into(),
            tx,
            Scheduling::Normal,
            Arc::new(Latch::open()),
            || panic!("on purpose"),
        )
        .unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            exit,
            ThreadExit {
                thread: "doomed".into(),
                panicked: true
            }
        );
        assert!(handle.join().is_err());
    }

    #[test]
    fn a_thread_that_returns_is_reported_too() {
        let (tx, rx) = crossbeam_channel::unbounded();
        spawn_watched(
            "short".into(),
            tx,
            Scheduling::Normal,
            Arc::new(Latch::open()),
            || {},
        )
        .unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!exit.panicked);
    }
}
