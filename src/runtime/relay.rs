//! The relay ports' sockets: bound once at start-up as a pool, shared out among the workers,
//! read by one relay reader thread per worker, written by the worker that owns them.
//!
//! Which datagrams go where is decided by the worker's shard (`crate::core`'s relay module);
//! this file only moves them. A reader waits on its sockets with `epoll` and hands the worker
//! what arrived in batches, on the same queue as requests, so the worker (the owner of the
//! relays) needs no lock and sees relayed datagrams in arrival order with its requests.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use log::{info, warn};
use socket2::{Domain, Protocol, Socket, Type};

use super::batch::{self, RecvBatch};
use super::handover::ReadGate;
use super::stats::Counters;
use super::Work;
use crate::outbox::Outbox;

/// Bytes kept of a relayed datagram. Game traffic stays under the path MTU (about 1400 bytes);
/// a longer datagram is dropped and counted, never forwarded cut.
pub const RELAY_BUF: usize = 4096;

/// Datagrams a reader takes from one ready socket before it looks at the others.
const READS_PER_WAKE: usize = 4;

/// One worker's share of the relay ports.
#[derive(Debug, Default)]
pub struct RelaySockets {
    /// The port of `sockets[0]`.
    base: u16,
    /// By port - `base`; `None` for a port of the range that could not be bound.
    sockets: Vec<Option<Socket>>,
}

impl RelaySockets {
    /// The ports this share holds.
    pub fn ports(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| self.base + i as u16)
            .collect()
    }

    /// Each socket's port and descriptor, for a hand-over.
    pub fn fds(&self) -> Vec<(u16, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        self.ports()
            .into_iter()
            .filter_map(|port| Some((port, self.socket(port)?.as_raw_fd())))
            .collect()
    }

    /// Adds `socket` as the socket of `port` (a relay the worker took over with its session).
    pub fn insert(&mut self, port: u16, socket: Socket) {
        if self.sockets.is_empty() {
            self.base = port;
        } else if port < self.base {
            let shift = usize::from(self.base - port);
            self.sockets
                .splice(0..0, std::iter::repeat_with(|| None).take(shift));
            self.base = port;
        }
        let index = usize::from(port - self.base);
        if self.sockets.len() <= index {
            self.sockets.resize_with(index + 1, || None);
        }
        self.sockets[index] = Some(socket);
    }

    fn socket(&self, port: u16) -> Option<&Socket> {
        let index = usize::from(port.checked_sub(self.base)?);
        self.sockets.get(index)?.as_ref()
    }

    /// Sends the relayed datagrams of `out`, each from the relay port it names; returns how
    /// many left and how many the kernel refused.
    pub fn send(&self, out: &Outbox) -> (usize, usize) {
        let (mut sent, mut failed) = (0, 0);
        let mut items = out.iter_via().peekable();
        // Runs of datagrams leaving from one port go out in one batched call.
        while let Some(&(via, _, _)) = items.peek() {
            let mut run = Vec::new();
            while let Some(&(port, to, payload)) = items.peek() {
                if port != via {
                    break;
                }
                run.push((to, payload));
                items.next();
            }
            match self.socket(via) {
                Some(socket) => {
                    let (ok, _, refused) = batch::send_all(socket, run.into_iter());
                    sent += ok;
                    failed += refused;
                }
                None => failed += run.len(),
            }
        }
        (sent, failed)
    }
}

/// Binds every port of `range` on `ip` (exclusively, like the server port) and deals them out
/// to `workers` in contiguous slices. Ports that cannot be bound are left out, with one warning.
///
/// After a hand-over, a port's socket is the one `inherited` holds for it, if any; and ports in
/// `held` (relays that go on, each in the share of the worker its session lands on, see
/// [`RelaySockets::insert`]) are in no share.
pub fn bind_pool(
    ip: IpAddr,
    range: RangeInclusive<u16>,
    workers: usize,
    inherited: &mut std::collections::HashMap<u16, Socket>,
    held: &std::collections::HashSet<u16>,
) -> Vec<RelaySockets> {
    let ports: Vec<u16> = range.collect();
    let per_worker = ports.len().div_ceil(workers.max(1)).max(1);
    let mut failed = 0;
    let mut first_error = None;
    let mut shares: Vec<RelaySockets> = ports
        .chunks(per_worker)
        .map(|chunk| RelaySockets {
            base: chunk[0],
            sockets: chunk
                .iter()
                .map(|&port| {
                    if held.contains(&port) {
                        return None;
                    }
                    let socket = match inherited.remove(&port) {
                        Some(socket) => Ok(socket),
                        None => bind_one(SocketAddr::new(ip, port)),
                    };
                    match socket {
                        Ok(socket) => Some(socket),
                        Err(e) => {
                            failed += 1;
                            first_error.get_or_insert((port, e));
                            None
                        }
                    }
                })
                .collect(),
        })
        .collect();
    shares.resize_with(workers.max(1), RelaySockets::default);
    let held_here = ports.iter().filter(|port| held.contains(port)).count();
    let bound = ports.len() - failed - held_here;
    if let Some((port, e)) = first_error {
        warn!(
            "relay: {failed} of {} relay ports could not be bound (port {port}: {e}); \
             relays use the {bound} others",
            ports.len()
        );
    }
    if bound > 0 {
        info!("relay: {bound} relay ports bound on {ip}");
    }
    // A session takes its ports from its own worker's share: a share smaller than the largest
    // session (12 players) makes such sessions start direct.
    let smallest = shares.iter().map(|s| s.ports().len()).min().unwrap_or(0);
    if smallest < usize::from(*crate::wire::MAX_PLAYERS_RANGE.end()) {
        warn!(
            "relay: each of the {} workers holds a share of the relay ports, the smallest {smallest}; \
             a session with more players than its worker's share starts direct (give \
             --relay-ports at least 12 ports per worker)",
            shares.len()
        );
    }
    shares
}

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// What a relay reader hands its worker: datagrams that arrived on relay ports.
#[derive(Debug, Default)]
pub struct RelayBatch {
    bytes: Vec<u8>,
    items: Vec<(u16, SocketAddr, u32, u32)>,
}

impl RelayBatch {
    fn push(&mut self, port: u16, from: SocketAddr, payload: &[u8]) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(payload);
        self.items
            .push((port, from, start, self.bytes.len() as u32));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// (relay port it arrived on, sender, payload)
    pub fn iter(&self) -> impl Iterator<Item = (u16, SocketAddr, &[u8])> + '_ {
        self.items.iter().map(|&(port, from, start, end)| {
            (port, from, &self.bytes[start as usize..end as usize])
        })
    }
}

/// Runs a worker's relay reader until `stop` is set or the worker is gone.
#[cfg(target_os = "linux")]
pub fn run_reader(
    sockets: Arc<RelaySockets>,
    worker: Sender<Work>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    gate: Arc<ReadGate>,
) -> io::Result<()> {
    use super::poll::Poller;
    use std::os::fd::AsRawFd;
    let poller = Poller::new()?;
    for port in sockets.ports() {
        if let Some(socket) = sockets.socket(port) {
            poller.add(socket.as_raw_fd(), u64::from(port))?;
        }
    }
    let mut recv = RecvBatch::<RELAY_BUF>::new();
    let mut ready = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !gate.wait_while_paused(&stop) {
            break;
        }
        poller.wait(&mut ready, super::socket::READ_TIMEOUT)?;
        let mut batch = RelayBatch::default();
        for &token in &ready {
            let port = token as u16;
            let Some(socket) = sockets.socket(port) else {
                continue;
            };
            for _ in 0..READS_PER_WAKE {
                let n = recv.recv(socket)?;
                for datagram in recv.iter() {
                    counters.relay_received(datagram.data.len());
                    if datagram.truncated {
                        counters.relay_dropped_too_big();
                    } else {
                        batch.push(port, datagram.from, datagram.data);
                    }
                }
                if n < batch::BATCH {
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len();
        // Relayed traffic may fill at most half the worker's queue: a flood on relay ports must
        // not crowd out the lobby's requests, which share the queue.
        if worker.len() >= (worker.capacity().unwrap_or(usize::MAX) / 2).max(1) {
            counters.dropped_queue_full(n);
            continue;
        }
        match worker.try_send(Work::Relayed(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => counters.dropped_queue_full(n),
            Err(TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
    Ok(())
}

/// Relaying needs Linux (`epoll`); elsewhere relay ports stay unread.
#[cfg(not(target_os = "linux"))]
pub fn run_reader(
    _sockets: Arc<RelaySockets>,
    _worker: Sender<Work>,
    _counters: Arc<Counters>,
    _stop: Arc<AtomicBool>,
    _gate: Arc<ReadGate>,
) -> io::Result<()> {
    warn!("relay: relay ports are only read on Linux");
    Ok(())
}
