//! The relay ports' sockets: bound once at start-up as a pool, shared out among the workers,
//! each share read and written by the worker that owns it.
//!
//! Which datagrams go where is decided by the worker's shard (`crate::core`'s relay module);
//! this file only moves them. A worker waits on its relay sockets and on the bell the receivers
//! ring when they queue requests for it ([`Inbox`]), and reads the sockets itself: no thread and
//! no queue between a relay port and the shard that owns it, so no lock either. (A relay reader
//! thread handing batches to the worker's queue cost as much CPU as the worker's forwarding
//! itself: README, Performance.) It waits through an `io_uring` (`super::uring`) where the
//! kernel allows it, else with `epoll` and a receive call per ready port (`--relay-io`).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use log::{info, warn};
use socket2::{Domain, Protocol, Socket, Type};

use super::batch;
use super::stats::Counters;
use super::wake::Bell;
use super::Work;
use crate::outbox::Outbox;

/// Bytes kept of a relayed datagram. Game traffic stays under the path MTU (about 1400 bytes);
/// a longer datagram is dropped and counted, never forwarded cut.
pub const RELAY_BUF: usize = 4096;

/// Datagrams taken from one relay port per receive call. A port rarely holds more than a few
/// (one player's traffic to one peer), and every call sets up as many buffers as it may fill.
const RELAY_BATCH: usize = 8;

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
        self.sockets.get(self.index(port)?)?.as_ref()
    }

    /// Where `port` is in this share, if in its range.
    fn index(&self, port: u16) -> Option<usize> {
        let index = usize::from(port.checked_sub(self.base)?);
        (index < self.sockets.len()).then_some(index)
    }

    /// Sends the relayed datagrams of `out`, each from the relay port it names; returns how
    /// many left and how many the kernel refused.
    pub fn send(&self, out: &Outbox) -> (usize, usize) {
        let (mut sent, mut failed) = (0, 0);
        let mut items = out.iter_via().peekable();
        // Runs of datagrams leaving from one port go out in one batched call.
        while let Some(&(via, _, _)) = items.peek() {
            let run = std::iter::from_fn(|| items.next_if(|&(port, _, _)| port == via))
                .map(|(_, to, payload)| (to, payload));
            match self.socket(via) {
                Some(socket) => {
                    let (ok, _, refused) = batch::send_all(socket, run);
                    sent += ok;
                    failed += refused;
                }
                None => failed += run.count(),
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

/// Logs `what` at INFO, the first time only (every worker sets up its inbox alike).
#[cfg(target_os = "linux")]
fn say_once(what: String) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| info!("relay: {what}"));
}

/// How long a hand-over waits at most for a worker's relay receives to be cancelled and its
/// sends to complete (they take microseconds).
#[cfg(target_os = "linux")]
const QUIESCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Token of the worker's bell in its epoll set (relay ports are tokens 0..=65535).
#[cfg(target_os = "linux")]
const BELL: u64 = u64::MAX;

/// How a worker moves its relay ports' datagrams (`--relay-io`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayIo {
    /// `io_uring` where the kernel allows it, else `epoll`.
    #[default]
    Auto,
    /// `io_uring`, or the server does not start.
    Uring,
    /// `epoll` and a receive and a send call per port.
    Epoll,
}

impl RelayIo {
    /// Why `io_uring` cannot be had here (an old kernel, a seccomp filter as Docker's, the
    /// `kernel.io_uring_disabled` sysctl, another system), or `None` when `--relay-io uring`
    /// would work: a ring is set up as a worker's is, without sockets.
    pub fn uring_refused() -> Option<io::Error> {
        #[cfg(target_os = "linux")]
        {
            let bell = match Bell::new() {
                Ok(bell) => bell,
                Err(e) => return Some(e),
            };
            super::uring::Ring::new(&[], bell.fd()).err()
        }
        #[cfg(not(target_os = "linux"))]
        Some(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// What a worker waits on: its queue (requests from the receivers, with the bell they ring)
/// and its relay ports, which it reads itself. A worker without relay ports (or off Linux)
/// waits on its queue alone, as a channel.
pub struct Inbox {
    sockets: RelaySockets,
    bell: Arc<Bell>,
    #[cfg(target_os = "linux")]
    poller: Option<super::poll::Poller>,
    /// With `io_uring` (then no poller): the ring over the relay sockets and the bell.
    #[cfg(target_os = "linux")]
    ring: Option<super::uring::Ring>,
    ready: Vec<u64>,
    /// Relay ports that received something and may still hold datagrams, in the order they
    /// are to be read. Watched edge-triggered, a port is not reported again before it was read
    /// empty, so it stays here until then.
    unread: VecDeque<u16>,
    /// Whether each port of the share (by index) is in `unread`: once at most, so the list
    /// stays as short as the share however often a flooded port is reported.
    queued: Vec<bool>,
    recv: rabid_netio::RecvBatch<RELAY_BUF, RELAY_BATCH>,
}

impl Inbox {
    /// The inbox of a worker with relay ports `sockets` (possibly none) and bell `bell`, which
    /// moves their datagrams as `io` says.
    pub fn new(sockets: RelaySockets, bell: Arc<Bell>, io: RelayIo) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        let ring = match io {
            _ if sockets.ports().is_empty() => None,
            RelayIo::Epoll => None,
            RelayIo::Uring => Some(super::uring::Ring::new(&sockets.fds(), bell.fd()).map_err(
                |e| io::Error::new(e.kind(), format!("--relay-io uring: io_uring refused: {e}")),
            )?),
            RelayIo::Auto => super::uring::Ring::new(&sockets.fds(), bell.fd())
                .map_err(|e| say_once(format!("io_uring unavailable ({e}); relay ports use epoll")))
                .ok(),
        };
        #[cfg(target_os = "linux")]
        if ring.is_some() {
            say_once("relay ports use io_uring".into());
        }
        #[cfg(not(target_os = "linux"))]
        let _ = io;
        #[cfg(target_os = "linux")]
        let poller = if sockets.ports().is_empty() || ring.is_some() {
            None
        } else {
            use std::os::fd::AsRawFd;
            let poller = super::poll::Poller::new()?;
            poller.add(bell.fd(), BELL)?;
            for port in sockets.ports() {
                if let Some(socket) = sockets.socket(port) {
                    poller.add_edge(socket.as_raw_fd(), u64::from(port))?;
                }
            }
            Some(poller)
        };
        Ok(Self {
            queued: vec![false; sockets.sockets.len()],
            sockets,
            bell,
            #[cfg(target_os = "linux")]
            poller,
            #[cfg(target_os = "linux")]
            ring,
            ready: Vec::new(),
            unread: VecDeque::new(),
            recv: rabid_netio::RecvBatch::new(),
        })
    }

    /// Called first by the thread that uses the inbox: with `io_uring`, enables the ring for
    /// that thread and starts receiving.
    pub fn start(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            ring.start()?;
        }
        Ok(())
    }

    /// Sends the relayed datagrams of `out`, each from the relay port it names, and empties
    /// it. A datagram the kernel refuses is counted in `counters` (with `io_uring`, once its
    /// send completed: it goes into the kernel with the next wait).
    pub fn send(&mut self, out: &mut Outbox, counters: &Counters) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            match ring.send(out) {
                Ok(failed) => counters.relay_send_errors(failed),
                Err(e) => warn!("relay: queueing sends: {e}"),
            }
            out.clear();
            return;
        }
        let (_, failed) = self.sockets.send(out);
        counters.relay_send_errors(failed);
        out.clear();
    }

    /// Before a hand-over: stops reading the relay ports, so that what arrives from now on
    /// waits in their sockets for the successor. With `io_uring`, the receives are cancelled
    /// and what they had taken in goes to `forward`, as [`read`](Self::read) does; the sends
    /// queued go out. With `epoll`, nothing to do: the worker reads only when it is told.
    pub fn quiesce(&mut self, counters: &Counters, forward: impl FnMut(u16, SocketAddr, &[u8])) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            if let Err(e) = ring.quiesce(counters, QUIESCE_TIMEOUT, forward) {
                warn!("relay: stopping the relay receives: {e}");
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (counters, forward);
    }

    /// After [`quiesce`](Self::quiesce) and the sends that followed it: waits until the kernel
    /// sent them, so that the state handed over comes after them.
    pub fn settle(&mut self, counters: &Counters) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            if let Err(e) = ring.settle(counters, QUIESCE_TIMEOUT) {
                warn!("relay: finishing the relay sends: {e}");
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = counters;
    }

    /// Reads the relay ports again after a hand-over that did not happen.
    pub fn resume(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            ring.resume()?;
        }
        Ok(())
    }

    /// Waits until work is queued, a relay port received something, or `deadline`. Without
    /// relay ports the first work queued is returned, as a channel's `recv` does; otherwise
    /// nothing is taken from the queue. A disconnected queue returns at once.
    pub fn wait(
        &mut self,
        work: &Receiver<Work>,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Work>> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            // As with epoll below; completions not handled yet keep the worker awake too.
            let sleep = !ring.has_completions() && self.bell.sleep(|| work.is_empty());
            let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            let entered = ring.enter(sleep, timeout);
            if sleep {
                self.bell.awake();
            }
            entered?;
            return Ok(None);
        }
        #[cfg(target_os = "linux")]
        if let Some(poller) = &mut self.poller {
            // With work at hand, only a look at the relay ports: what arrived meanwhile is
            // read in this turn too, so neither kind of traffic waits for the other.
            let sleep = self.unread.is_empty() && self.bell.sleep(|| work.is_empty());
            let timeout = match (sleep, deadline) {
                (false, _) => Some(std::time::Duration::ZERO),
                (true, Some(at)) => Some(at.saturating_duration_since(Instant::now())),
                (true, None) => None,
            };
            let waited = poller.wait(&mut self.ready, timeout);
            if sleep {
                self.bell.awake();
            }
            waited?;
            for i in 0..self.ready.len() {
                match self.ready[i] {
                    BELL => self.bell.reset(),
                    port => self.queue(port as u16),
                }
            }
            return Ok(None);
        }
        Ok(match deadline {
            Some(at) => work.recv_deadline(at).ok(),
            None => work.recv().ok(),
        })
    }

    /// Reads what the relay ports received, handing each datagram to `forward` with the port it
    /// arrived on; returns how many were read. With `epoll`, at most about `budget` (a whole
    /// batch of the last port read): ports not read empty wait for the next turn, behind the
    /// others. With `io_uring`, what the last wait took in (at most the ring's buffers).
    pub fn read(
        &mut self,
        budget: usize,
        counters: &Counters,
        mut forward: impl FnMut(u16, SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        // With io_uring, what the last wait completed, all of it: it is bounded by the ring's
        // buffers, and the sends' completions among it free their outboxes.
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            let (read, rang) = ring.complete(counters, forward)?;
            if rang {
                self.bell.reset();
            }
            return Ok(read);
        }
        let mut read = 0;
        while read < budget {
            let Some(port) = self.unread.pop_front() else {
                break;
            };
            let Some(index) = self.sockets.index(port) else {
                continue;
            };
            self.queued[index] = false;
            let Some(socket) = self.sockets.socket(port) else {
                continue;
            };
            let n = self.recv.recv(socket)?;
            for datagram in self.recv.iter() {
                counters.relay_received(datagram.data.len());
                if datagram.truncated {
                    counters.relay_dropped_too_big();
                } else {
                    forward(port, datagram.from, datagram.data);
                }
            }
            read += n;
            // A full batch: more may be waiting (a short one means the socket was read empty,
            // and its next datagram is a new edge).
            if n == RELAY_BATCH {
                self.queue(port);
            }
        }
        Ok(read)
    }

    /// Puts `port` at the end of the ports to read, unless it is there already.
    fn queue(&mut self, port: u16) {
        if let Some(index) = self.sockets.index(port) {
            if !std::mem::replace(&mut self.queued[index], true) {
                self.unread.push_back(port);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn a_port_reported_again_before_it_was_read_empty_is_listed_once() {
        let socket = bind_one("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = socket.local_addr().unwrap().as_socket().unwrap();
        let sockets = RelaySockets {
            base: to.port(),
            sockets: vec![Some(socket)],
        };
        let mut inbox =
            Inbox::new(sockets, Arc::new(Bell::new().unwrap()), RelayIo::Epoll).unwrap();
        let (_tx, work) = crossbeam_channel::bounded::<Work>(1);
        let counters = Counters::default();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut got = Vec::new();
        let mut sent = 0u32;
        // Each turn more arrives than one read takes: the port is reported again (a new edge
        // with every datagram) while it still waits in the list, not read empty.
        for _ in 0..4 * RELAY_BATCH {
            for _ in 0..RELAY_BATCH + 2 {
                peer.send_to(&sent.to_le_bytes(), to).unwrap();
                sent += 1;
            }
            inbox
                .wait(&work, Some(Instant::now() + Duration::from_secs(5)))
                .unwrap();
            assert!(inbox.unread.len() <= 1, "listed {:?}", inbox.unread);
            inbox
                .read(1, &counters, |_, _, data| {
                    got.push(u32::from_le_bytes(data.try_into().unwrap()))
                })
                .unwrap();
        }
        // The rest comes out without anything new arriving.
        while got.len() < sent as usize {
            inbox
                .wait(&work, Some(Instant::now() + Duration::from_secs(5)))
                .unwrap();
            let read = inbox
                .read(RELAY_BATCH, &counters, |_, _, data| {
                    got.push(u32::from_le_bytes(data.try_into().unwrap()))
                })
                .unwrap();
            assert!(read > 0, "{} of {sent} read, then nothing", got.len());
        }
        assert_eq!(got, (0..sent).collect::<Vec<_>>());
    }
}
