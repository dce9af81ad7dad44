//! The running server's control thread: answers successors on the control socket, one
//! hand-over at a time, and hands the main thread a successor that is ready to serve.
//!
//! Whatever goes wrong before the successor says `ready` (it refuses the offer, reads a state
//! it cannot use, crashes, takes too long, or a second successor asks meanwhile), this server
//! thaws and serves on, and says what happened in its log.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{info, warn};
use parking_lot::Mutex;

use super::freeze::{Frozen, Handover};
use super::messages::{FdKind, Message, PROTOCOL};
use super::unix::{my_uid, Accepted, Channel, Listener, Peer, Waker, Woken, MAX_FDS, MAX_PACKET};
use crate::core::handover::STATE_VERSION;

/// The longest a successor may take to answer before the state (its hello, its answer to the
/// offer): nothing is frozen yet.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a successor may take, once it has the state, to say `ready`: the server is
/// frozen meanwhile, so this (with the freeze itself) is the longest gap a failing successor
/// can cause. A successor restores 100 000 sessions in well under a second.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest the server's threads may take to park and write their state.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// A successor ready to serve: the main thread confirms it ([`Ready::confirm`]) and exits.
/// Dropped unconfirmed, the server thaws and takes hand-overs again.
pub struct Ready {
    pub successor: Peer,
    /// The successor goes on as this server's fleet node.
    adopted: bool,
    frozen: Option<Frozen>,
    channel: Channel,
    busy: Busy,
}

impl Ready {
    /// Tells the successor to serve and stops this server's threads for good. If the successor
    /// cannot be told (it died since it said `ready`), this server thaws and serves on: `false`.
    pub fn confirm(mut self, handover: &Handover) -> bool {
        match self.channel.send(&Message::Committed.encode(), &[]) {
            Ok(()) => {
                if let Some(frozen) = self.frozen.take() {
                    handover.commit(frozen, self.adopted);
                }
                true
            }
            Err(e) => {
                warn!(
                    "hand-over to pid {}: cannot confirm it ({e}); serving on",
                    self.successor.pid
                );
                false // thawed as it drops
            }
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        if self.frozen.is_some() {
            // `self.frozen` thaws as it drops; another successor may then try.
            *self.busy.lock() = None;
        }
    }
}

/// The successor a hand-over is under way with, if any.
type Busy = Arc<Mutex<Option<u32>>>;

/// What else this process hands over besides the server's own sockets.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// The HTTP listener, with its address.
    pub http: Option<(SocketAddr, RawFd)>,
}

/// The control thread: answers successors on the control socket until [`stop`](Self::stop).
pub struct Control {
    thread: Option<JoinHandle<()>>,
    wake: Option<Waker>,
}

impl Control {
    /// Serves hand-overs on `listener`; a successor that is ready goes to `ready`.
    pub fn spawn(
        listener: Arc<Listener>,
        handover: Handover,
        extras: Extras,
        ready: Sender<Ready>,
    ) -> std::io::Result<Control> {
        let (wake, woken) = Waker::pair()?;
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(&listener, &woken, &handover, &extras, &ready))?;
        Ok(Control {
            thread: Some(thread),
            wake: Some(wake),
        })
    }

    /// Stops accepting at once (the listening socket may be the successor's from now on) and
    /// waits for the thread. Hand-overs under way go on, on their own threads.
    pub fn stop(mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.wake.take();
    }
}

fn accept_loop(
    listener: &Arc<Listener>,
    woken: &Woken,
    handover: &Handover,
    extras: &Extras,
    ready: &Sender<Ready>,
) {
    let busy: Busy = Arc::default();
    loop {
        let channel = match listener.accept_until(woken.fd()) {
            Ok(Accepted::Channel(channel)) => channel,
            Ok(Accepted::Nothing) => continue,
            Ok(Accepted::Woken) => return,
            Err(e) => {
                warn!("control socket: {e}; hand-overs are off");
                return;
            }
        };
        let peer = match channel.peer() {
            Ok(peer) => peer,
            Err(e) => {
                warn!("control socket: cannot tell who connected ({e})");
                continue;
            }
        };
        if peer.uid != my_uid() {
            warn!(
                "control socket: refused pid {} of uid {}: only uid {} may take over",
                peer.pid,
                peer.uid,
                my_uid()
            );
            refuse(
                channel,
                format!("only uid {} may take over this server", my_uid()),
            );
            continue;
        }
        if let Some(other) = *busy.lock() {
            warn!(
                "control socket: refused pid {}: a hand-over to pid {other} is under way",
                peer.pid
            );
            refuse(channel, format!("a hand-over to pid {other} is under way"));
            continue;
        }
        *busy.lock() = Some(peer.pid);
        // On a thread of its own, so that a second successor is answered meanwhile.
        let (handover, extras, ready, busy, listener) = (
            handover.clone(),
            extras.clone(),
            ready.clone(),
            busy.clone(),
            listener.clone(),
        );
        let _ = thread::Builder::new()
            .name("handover".into())
            .spawn(move || {
                match hand_over(&channel, peer, &handover, &extras, &listener) {
                    Ok((frozen, adopted)) => {
                        info!("hand-over to pid {}: it is ready", peer.pid);
                        // `busy` stays set until the main thread confirms or drops it.
                        let _ = ready.send(Ready {
                            successor: peer,
                            adopted,
                            frozen: Some(frozen),
                            channel,
                            busy,
                        });
                        return;
                    }
                    Err(Failure::Declined(reason)) => {
                        info!("hand-over to pid {} not done: {reason}", peer.pid)
                    }
                    Err(Failure::Failed(reason)) => {
                        warn!("hand-over to pid {} failed: {reason}; serving on", peer.pid)
                    }
                }
                *busy.lock() = None;
            });
    }
}

/// Tells a successor why not, on a thread of its own. Its hello is read first, and the
/// channel kept until it hangs up: a socket closed with a packet unread resets the
/// connection, and the successor would get that instead of the reason.
fn refuse(channel: Channel, reason: String) {
    let _ = thread::Builder::new().name("refuse".into()).spawn(move || {
        let _ = channel.set_timeout(Duration::from_secs(2));
        let _ = channel.recv();
        let _ = channel.send(&Message::Refused(reason).encode(), &[]);
        let _ = channel.recv();
    });
}

/// Why a hand-over did not happen.
enum Failure {
    /// Before this server froze: nothing was interrupted.
    Declined(String),
    /// After: the server thawed.
    Failed(String),
}

/// One hand-over, up to the successor's `ready`.
fn hand_over(
    channel: &Channel,
    peer: Peer,
    handover: &Handover,
    extras: &Extras,
    listener: &Listener,
) -> Result<(Frozen, bool), Failure> {
    use Failure::{Declined, Failed};
    let recv = |what: &str| -> Result<Message, String> {
        let packet = channel.recv().map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("the successor closed the control socket (it exited?) {what}")
            }
            std::io::ErrorKind::TimedOut => format!("the successor did not answer {what}"),
            _ => format!("control socket {what}: {e}"),
        })?;
        Message::decode(&packet.bytes).map_err(|e| format!("the successor said {e} {what}"))
    };
    let send = |message: Message, fds: &[RawFd]| {
        channel
            .send(&message.encode(), fds)
            .map_err(|e| format!("cannot write to the successor: {e}"))
    };
    channel
        .set_timeout(STEP_TIMEOUT)
        .map_err(|e| Declined(e.to_string()))?;
    match recv("before its hello").map_err(Declined)? {
        Message::Hello {
            protocol,
            state_version,
        } => {
            if protocol != PROTOCOL || state_version != STATE_VERSION {
                let reason = format!(
                    "this server (pid {}) writes hand-over protocol {PROTOCOL} and state \
                     version {STATE_VERSION}; the successor reads protocol {protocol} and \
                     state version {state_version}",
                    std::process::id()
                );
                let _ = send(Message::Refused(reason.clone()), &[]);
                return Err(Declined(reason));
            }
        }
        other => return Err(Declined(format!("the successor began with {other:?}"))),
    }
    let offer = handover.offer(extras.http.map(|(addr, _)| addr));
    send(Message::Offer(offer), &[]).map_err(Declined)?;
    match recv("after the offer").map_err(Declined)? {
        Message::Take => {}
        Message::Abort(reason) => return Err(Declined(format!("it declined: {reason}"))),
        other => return Err(Declined(format!("the successor answered {other:?}"))),
    }
    info!("hand-over to pid {}: pausing to write the state", peer.pid);
    let began = std::time::Instant::now();
    let frozen = handover.freeze(FREEZE_TIMEOUT).map_err(Failed)?;
    send_state(channel, &frozen, handover, extras, listener).map_err(Failed)?;
    let bytes: usize = frozen.shards.iter().map(Vec::len).sum::<usize>() + frozen.shared.len();
    info!(
        "hand-over to pid {}: state ({bytes} bytes) and sockets sent {} ms after the pause; \
         waiting for it to be ready",
        peer.pid,
        began.elapsed().as_millis()
    );
    channel
        .set_timeout(READY_TIMEOUT)
        .map_err(|e| Failed(e.to_string()))?;
    match recv("after the state").map_err(Failed)? {
        Message::Ready { adopted } => Ok((frozen, adopted)),
        Message::Abort(reason) => Err(Failed(format!("it gave up: {reason}"))),
        other => Err(Failed(format!("the successor answered {other:?}"))),
    }
}

/// The state, in packets, then every socket.
fn send_state(
    channel: &Channel,
    frozen: &Frozen,
    handover: &Handover,
    extras: &Extras,
    listener: &Listener,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write to the successor: {e}");
    let send = |message: Message, fds: &[RawFd]| channel.send(&message.encode(), fds).map_err(fail);
    let mut blob = Vec::new();
    for section in std::iter::once(&frozen.shared).chain(&frozen.shards) {
        blob.extend_from_slice(&(section.len() as u64).to_le_bytes());
        blob.extend_from_slice(section);
    }
    send(
        Message::State {
            sections: 1 + frozen.shards.len(),
            bytes: blob.len(),
            mono_ns: frozen.mono_ns,
        },
        &[],
    )?;
    for chunk in blob.chunks(MAX_PACKET) {
        channel.send(chunk, &[]).map_err(fail)?;
    }
    send(
        Message::Fds {
            kind: FdKind::Receivers,
            ports: Vec::new(),
        },
        &handover.receiver_fds(),
    )?;
    for chunk in handover.relay_fds().chunks(MAX_FDS) {
        let (ports, fds): (Vec<u16>, Vec<RawFd>) = chunk.iter().copied().unzip();
        send(
            Message::Fds {
                kind: FdKind::Relay,
                ports,
            },
            &fds,
        )?;
    }
    if let Some((_, fd)) = extras.http {
        let message = Message::Fds {
            kind: FdKind::Http,
            ports: Vec::new(),
        };
        send(message, &[fd])?;
    }
    let message = Message::Fds {
        kind: FdKind::Control,
        ports: Vec::new(),
    };
    send(message, &[listener.as_raw_fd()])?;
    send(Message::Sent, &[])
}
