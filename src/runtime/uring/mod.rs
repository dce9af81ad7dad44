//! A worker's relay ports through `io_uring` (Linux): one ring per worker, a multishot receive
//! armed on every relay socket of its share, the bell watched by a multishot poll, and the
//! relayed datagrams sent as submissions that go into the kernel with the next wait. One
//! `io_uring_enter` per loop turn then moves every datagram the worker's sockets received and
//! sent since the last one, where the `epoll` path pays an `epoll_wait`, a receive call per
//! ready port and a send call per port it sends from (README, "The relay's cost per datagram").
//!
//! Buffers: received datagrams land in a ring of provided buffers (one buffer group); a buffer
//! goes back to the kernel once its datagram was handed to the shard, which copies what it
//! forwards into the outbox. A sent datagram's bytes stay in the outbox they were written to
//! (a [`Slot`]) until the kernel reported that send done.
//!
//! The ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN`: completions are only produced when
//! the worker enters the kernel to wait for them, so nothing is read from a socket behind the
//! worker's back, and a socket whose receive was cancelled ([`Ring::quiesce`], before a
//! hand-over) holds every datagram that arrived after it for the successor.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

mod buffers;
use socket2::SockAddr;

use super::relay::RELAY_BUF;
use super::stats::Counters;
use crate::outbox::Outbox;
use buffers::Buffers;

/// Provided buffers in the ring (a power of two): the datagrams one turn can take in at most.
/// A socket that finds none left stops receiving until buffers came back, then is armed again;
/// its datagrams wait in its socket buffer meanwhile.
const BUFFERS: u16 = 512;
/// The buffer group's id (one group per ring).
const GROUP: u16 = 0;
/// Room for the source address in each buffer: a `sockaddr_in6` (a `sockaddr_in` is shorter).
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// The header the kernel writes before the address and the payload (`io_uring_recvmsg_out`:
/// four u32).
const HEADER_LEN: usize = 16;
/// One provided buffer: header, address, then up to [`RELAY_BUF`] bytes of payload (a longer
/// datagram is flagged truncated, and dropped as on the `epoll` path).
const BUFFER_LEN: usize = HEADER_LEN + NAME_LEN + RELAY_BUF;
/// Submission queue entries; a fuller queue is submitted early.
const SQ_ENTRIES: u32 = 512;
/// Completion queue entries: room for a full turn of receives and sends.
const CQ_ENTRIES: u32 = 4096;

// What a completion is for: the kind in the top byte of its user data, the port or slot below.
const KIND_SHIFT: u32 = 56;
/// No port of the share.
const NONE: u32 = u32::MAX;
const RECV: u64 = 1;
const SEND: u64 = 2;
const BELL: u64 = 3;
const CANCEL: u64 = 4;

fn tag(kind: u64, value: u64) -> u64 {
    (kind << KIND_SHIFT) | value
}

/// Outbox bytes lent to the kernel: a turn's relayed datagrams, their addresses, and how many
/// of their sends have not completed yet.
#[derive(Default)]
struct Slot {
    out: Outbox,
    addrs: Vec<SockAddr>,
    pending: usize,
}

/// A relay port's socket as the ring sees it: registered with the ring (a fixed file, so that
/// no request looks its descriptor up), under its index in [`Ring::ports`].
struct Port {
    port: u16,
    /// Its multishot receive is in the kernel.
    armed: bool,
    /// Its receive ended and is to be armed again at the end of this batch of completions.
    rearm: bool,
}

/// One worker's ring over its relay sockets and its bell.
pub struct Ring {
    // Dropped first: the kernel lets go of the buffers before they are freed.
    ring: IoUring,
    buffers: Buffers,
    /// The template of every receive: room for the address, no control data.
    msghdr: Box<libc::msghdr>,
    /// By index in the worker's share; the user data of a receive is its index.
    ports: Vec<Port>,
    /// The lowest port, and the index of each port from it (`NONE`: not in the share).
    base: u16,
    index_of: Vec<u32>,
    bell: RawFd,
    bell_armed: bool,
    /// Receives (and the bell's poll) are to be armed: false before `start`, and between
    /// `quiesce` and `resume`.
    running: bool,
    /// Enabled by the worker's thread ([`start`](Self::start)).
    started: bool,
    slots: Vec<Slot>,
    /// Completions of the last enter, copied out of the queue: (user data, result, flags).
    done: Vec<(u64, i32, u32)>,
}

// SAFETY: the raw pointer is the buffer ring's memory, owned by this value and only touched by
// the thread that owns it.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring over `sockets` (port, descriptor) and the bell `bell`, still disabled: the thread
    /// that will use it calls [`start`](Self::start) (a single-issuer ring belongs to the thread
    /// that enables it). Fails where `io_uring` cannot be set up (an old kernel, a seccomp
    /// filter, the `kernel.io_uring_disabled` sysctl).
    pub fn new(sockets: &[(u16, RawFd)], bell: RawFd) -> io::Result<Self> {
        Self::with_buffers(sockets, bell, BUFFERS)
    }

    /// [`new`](Self::new) with `buffers` provided buffers (a power of two).
    ///
    /// Set up on a thread of its own, which ends at once: when a ring closes, the kernel
    /// interrupts every thread that had a hand in it (task work signalled like a signal), and a
    /// blocking socket call with a timeout in that thread then fails with EINTR. The thread
    /// that enables the ring is the one that uses it; no other thread should be touched.
    fn with_buffers(sockets: &[(u16, RawFd)], bell: RawFd, buffers: u16) -> io::Result<Self> {
        std::thread::scope(|s| {
            s.spawn(|| Self::set_up(sockets, bell, buffers))
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("setting up io_uring panicked")))
        })
    }

    fn set_up(sockets: &[(u16, RawFd)], bell: RawFd, buffers: u16) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_r_disabled()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .setup_submit_all()
            .build(SQ_ENTRIES)?;
        let fds: Vec<RawFd> = sockets.iter().map(|&(_, fd)| fd).collect();
        if !fds.is_empty() {
            ring.submitter().register_files(&fds)?;
        }
        let base = sockets.iter().map(|&(port, _)| port).min().unwrap_or(0);
        let top = sockets.iter().map(|&(port, _)| port).max().unwrap_or(0);
        let mut index_of = vec![NONE; usize::from(top - base) + 1];
        for (index, &(port, _)) in sockets.iter().enumerate() {
            index_of[usize::from(port - base)] = index as u32;
        }
        let buffers = Buffers::new(buffers)?;
        // SAFETY: the entries live as long as the ring (see `Buffers::drop`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buffers.entries as u64,
                buffers.count,
                GROUP,
                0,
            )?;
        }
        // SAFETY: all-zero is a valid msghdr.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let ring = Self {
            ring,
            buffers,
            msghdr,
            ports: sockets
                .iter()
                .map(|&(port, _)| Port {
                    port,
                    armed: false,
                    rearm: false,
                })
                .collect(),
            base,
            index_of,
            bell,
            bell_armed: false,
            running: false,
            started: false,
            slots: Vec::new(),
            done: Vec::new(),
        };
        // Checked here and not in the worker, so that `auto` can still take epoll.
        let mut supported = io_uring::Probe::new();
        ring.ring.submitter().register_probe(&mut supported)?;
        if !supported.is_supported(opcode::RecvMsgMulti::CODE)
            || !supported.is_supported(opcode::Send::CODE)
        {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        Ok(ring)
    }

    /// Enables the ring for the calling thread, the only one that may use it from now on, and
    /// arms the receives and the bell's poll.
    pub fn start(&mut self) -> io::Result<()> {
        self.ring.submitter().register_enable_rings()?;
        self.started = true;
        self.resume()
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        push(&mut self.ring, entry)
    }

    fn arm(&mut self, index: usize) -> io::Result<()> {
        let entry = opcode::RecvMsgMulti::new(types::Fixed(index as u32), &*self.msghdr, GROUP)
            .build()
            .user_data(tag(RECV, index as u64));
        self.push(&entry)?;
        self.ports[index].armed = true;
        self.ports[index].rearm = false;
        Ok(())
    }

    fn arm_bell(&mut self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(self.bell), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(tag(BELL, 0));
        self.push(&entry)?;
        self.bell_armed = true;
        Ok(())
    }

    fn arm_all(&mut self) -> io::Result<()> {
        for index in 0..self.ports.len() {
            if !self.ports[index].armed {
                self.arm(index)?;
            }
        }
        if !self.bell_armed {
            self.arm_bell()?;
        }
        Ok(())
    }

    /// Submits what is queued (the last turn's sends) and takes the completions ready; with
    /// `wait`, first sleeps until at least one is, or `timeout` passed (`None`: no limit).
    pub fn enter(&mut self, wait: bool, timeout: Option<Duration>) -> io::Result<()> {
        let result = match (wait, timeout) {
            (true, Some(timeout)) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            (true, None) => self.ring.submitter().submit_and_wait(1),
            // GETEVENTS, so that the completions deferred to this thread are produced.
            (false, _) => {
                let queued = self.ring.submission().len() as u32;
                // SAFETY: no argument pointer is passed.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        queued,
                        0,
                        io_uring::EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether completions wait to be handled (then the worker must not sleep).
    pub fn has_completions(&mut self) -> bool {
        !self.ring.completion().is_empty()
    }

    /// Handles every completion ready: each datagram received goes to `forward` with its relay
    /// port, then its buffer back to the kernel; sends that failed are counted; receives that
    /// ended are armed again. Returns how many datagrams were received, and whether the bell
    /// rang.
    pub fn complete(
        &mut self,
        counters: &Counters,
        mut forward: impl FnMut(u16, SocketAddr, &[u8]),
    ) -> io::Result<(usize, bool)> {
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        done.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
        );
        let (mut received, mut rang, mut failed) = (0, false, 0);
        let mut gave_back = false;
        for &(data, result, flags) in &done {
            let value = data & ((1 << KIND_SHIFT) - 1);
            match data >> KIND_SHIFT {
                RECV => {
                    let index = value as usize;
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        if result >= 0 {
                            if let Some(port) = self.ports.get(index) {
                                received += 1;
                                self.datagram(port.port, bid, counters, &mut forward);
                            }
                        }
                        self.buffers.give_back(bid);
                        gave_back = true;
                    }
                    if !cqueue::more(flags) {
                        if let Some(port) = self.ports.get_mut(index) {
                            port.armed = false;
                            // Out of buffers, or ended by the kernel after a datagram (a full
                            // completion queue): armed again once this batch gave its buffers
                            // back. Cancelled (a hand-over): stays off. An error that would
                            // only come back (a kernel refusing the request) leaves the port
                            // unread rather than spinning, and says so.
                            let lasting = result < 0
                                && !matches!(
                                    -result,
                                    libc::ENOBUFS | libc::ECANCELED | libc::EINTR | libc::ENOMEM
                                );
                            port.rearm = self.running && result != -libc::ECANCELED && !lasting;
                            if lasting {
                                log::warn!(
                                    "relay: port {}: no longer read: {}",
                                    port.port,
                                    io::Error::from_raw_os_error(-result)
                                );
                            }
                        }
                    }
                }
                SEND => {
                    if result < 0 {
                        failed += 1;
                    }
                    if let Some(slot) = self.slots.get_mut(value as usize) {
                        slot.pending = slot.pending.saturating_sub(1);
                        if slot.pending == 0 {
                            slot.out.clear();
                            slot.addrs.clear();
                        }
                    }
                }
                BELL => {
                    rang = true;
                    if !cqueue::more(flags) {
                        self.bell_armed = false;
                    }
                }
                _ => {}
            }
        }
        self.done = done;
        if gave_back {
            self.buffers.publish();
        }
        if failed > 0 {
            counters.relay_send_errors(failed);
        }
        if self.running {
            for index in 0..self.ports.len() {
                if self.ports[index].rearm {
                    self.arm(index)?;
                }
            }
            if !self.bell_armed {
                self.arm_bell()?;
            }
        }
        Ok((received, rang))
    }

    /// One received datagram, in buffer `bid`.
    fn datagram(
        &self,
        port: u16,
        bid: u16,
        counters: &Counters,
        forward: &mut impl FnMut(u16, SocketAddr, &[u8]),
    ) {
        let Some(buffer) = self.buffers.get(bid) else {
            return;
        };
        let Ok(message) = types::RecvMsgOut::parse(buffer, &self.msghdr) else {
            return;
        };
        let payload = message.payload_data();
        counters.relay_received(payload.len());
        if message.is_payload_truncated() {
            counters.relay_dropped_too_big();
        } else if let Some(from) = socket_addr(message.name_data()) {
            forward(port, from, payload);
        }
    }

    /// Queues the sends of `out`'s datagrams, each from the relay port it names; they go into
    /// the kernel with the next [`enter`](Self::enter).
    /// `out` is left empty (its bytes are lent to the kernel until the sends completed).
    /// Returns how many could not be queued (a port not in this share).
    pub fn send(&mut self, out: &mut Outbox) -> io::Result<usize> {
        let slot_index = match self.slots.iter().position(|s| s.pending == 0) {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let Self {
            ring,
            slots,
            base,
            index_of,
            ..
        } = self;
        let slot = &mut slots[slot_index];
        slot.out.clear();
        std::mem::swap(&mut slot.out, out);
        slot.addrs.clear();
        slot.addrs
            .extend(slot.out.iter_via().map(|(_, to, _)| SockAddr::from(to)));
        let mut failed = 0;
        slot.pending = 0;
        for ((via, _, payload), addr) in slot.out.iter_via().zip(&slot.addrs) {
            let index = via
                .checked_sub(*base)
                .and_then(|i| index_of.get(usize::from(i)))
                .filter(|&&i| i != NONE);
            let Some(&index) = index else {
                failed += 1;
                continue;
            };
            let entry =
                opcode::Send::new(types::Fixed(index), payload.as_ptr(), payload.len() as u32)
                    .dest_addr(addr.as_ptr().cast())
                    .dest_addr_len(addr.len())
                    // A full socket buffer fails the send (counted, as on the epoll path) instead
                    // of parking it until the socket drains.
                    .flags(libc::MSG_DONTWAIT)
                    .build()
                    .user_data(tag(SEND, slot_index as u64));
            push(ring, &entry)?;
            slot.pending += 1;
        }
        if slot.pending == 0 {
            slot.out.clear();
            slot.addrs.clear();
        }
        Ok(failed)
    }

    /// Whether sends are still in the kernel.
    fn sending(&self) -> bool {
        self.slots.iter().any(|s| s.pending > 0)
    }

    /// Stops receiving, before a hand-over: every receive is cancelled, and the datagrams they
    /// had taken in meanwhile are handed to `forward`; the sends queued are submitted and
    /// complete. Afterwards no request of this ring touches a socket, so the sockets' queues
    /// hold every datagram that arrives, for whoever reads them next. Bounded by `timeout`.
    pub fn quiesce(
        &mut self,
        counters: &Counters,
        timeout: Duration,
        mut forward: impl FnMut(u16, SocketAddr, &[u8]),
    ) -> io::Result<()> {
        self.running = false;
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(tag(CANCEL, 0));
        self.push(&entry)?;
        self.run_until(
            counters,
            timeout,
            "relay receives not cancelled in time",
            |ring| !ring.bell_armed && !ring.ports.iter().any(|p| p.armed) && !ring.sending(),
            &mut forward,
        )
    }

    /// Submits the sends queued and waits until they completed (bounded by `timeout`).
    pub fn settle(&mut self, counters: &Counters, timeout: Duration) -> io::Result<()> {
        // Nothing is received while quiesced; when running, a datagram here would be lost, so
        // settle is only called quiesced.
        self.run_until(
            counters,
            timeout,
            "relay sends not done in time",
            |ring| !ring.sending() && ring.ring.submission().is_empty(),
            |_, _, _| {},
        )
    }

    /// Enters the kernel and handles the completions until `done` holds, for `timeout` at most
    /// (then fails with `what`).
    fn run_until(
        &mut self,
        counters: &Counters,
        timeout: Duration,
        what: &str,
        done: impl Fn(&mut Self) -> bool,
        mut forward: impl FnMut(u16, SocketAddr, &[u8]),
    ) -> io::Result<()> {
        let until = std::time::Instant::now() + timeout;
        while !done(self) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, what));
            }
            self.enter(true, Some(left))?;
            self.complete(counters, &mut forward)?;
        }
        Ok(())
    }

    /// Receives again after a [`quiesce`](Self::quiesce) (a hand-over that did not happen).
    pub fn resume(&mut self) -> io::Result<()> {
        self.running = true;
        self.arm_all()?;
        self.ring.submit()?;
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // No request may outlive the memory it points at: cancel the receives and let the
        // sends finish before the ring and the buffers go.
        if self.started && (self.running || self.sending()) {
            let counters = Counters::default();
            if let Err(e) = self.quiesce(&counters, Duration::from_secs(1), |_, _, _| {}) {
                log::warn!("relay: closing the ring: {e}");
            }
        }
        // The ring lets go of its sockets now, not when the kernel gets round to freeing it.
        if self.started && !self.ports.is_empty() {
            let _ = self.ring.submitter().unregister_files();
        }
    }
}

/// Queues `entry`, submitting what is queued first when the queue is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // SAFETY: every entry pushed points at memory that outlives its request: the msghdr
    // template and the buffer ring (owned by the `Ring`), or a slot's outbox (kept until its
    // sends completed).
    while unsafe { ring.submission().push(entry) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

/// The address of a `sockaddr_in` or `sockaddr_in6` as the kernel wrote it, read as the `epoll`
/// path reads its receives' (socket2's `SockAddr::as_socket`).
fn socket_addr(name: &[u8]) -> Option<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = name
        .len()
        .min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `len` bytes fit both the name and the storage, which do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            len,
        );
    }
    // SAFETY: the storage holds the `len` bytes the kernel wrote, zeroes after them.
    unsafe { SockAddr::new(storage, len as libc::socklen_t) }.as_socket()
}

#[cfg(test)]
mod tests;
