//! The successor's side of a hand-over: connect to the running server's control socket, check
//! its offer against this process's flags, and receive its state and sockets; then, once this
//! process is ready to serve, say so and wait for the word ([`Successor::confirm`]).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use socket2::Socket;

use super::messages::{FdKind, Message, Offer, PROTOCOL};
use super::unix::{my_uid, owner, Channel, Packet, Peer};

/// The longest the successor waits for one answer of the running server (its state comes
/// after its threads parked and wrote it: a few seconds at most).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What this process was started with, that the running server's offer must match.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub bind: SocketAddr,
    pub receivers: usize,
    /// The relay port range, when the relay is on.
    pub relay: Option<RangeInclusive<u16>>,
    pub http: Option<SocketAddr>,
    /// The fleet's key ([`super::fleet_key`]), in a fleet.
    pub fleet_key: Option<u64>,
    /// The state version this build reads.
    pub state_version: u32,
}

/// What the running server handed over.
pub struct Taken {
    pub receivers: Vec<Socket>,
    pub relay: HashMap<u16, Socket>,
    /// Its HTTP listener, when this process serves HTTP at the same address.
    pub http: Option<TcpListener>,
    /// The control socket's listener.
    pub control: Option<OwnedFd>,
    /// The shared section of the state, then one section per shard of the old server.
    pub shared: Vec<u8>,
    pub shards: Vec<Vec<u8>>,
    /// `CLOCK_MONOTONIC` when the state was written.
    pub mono_ns: u64,
    /// The fleet node id to go on as.
    pub fleet_node: Option<String>,
    pub successor: Successor,
}

/// The conversation with the running server, until it confirms.
pub struct Successor {
    channel: Channel,
    /// The running server.
    pub from: Peer,
}

impl Successor {
    /// Tells the running server this process cannot serve (it then serves on).
    pub fn abort(&self, reason: &str) {
        let _ = self
            .channel
            .send(&Message::Abort(reason.into()).encode(), &[]);
    }

    /// Stops reading, then says `ready` (for the test of a successor that dies right after:
    /// the running server's `committed` then cannot reach it, whatever the timing).
    pub fn say_ready_deaf(&self, adopted: bool) {
        self.channel.shutdown_read();
        let _ = self.channel.send(&Message::Ready { adopted }.encode(), &[]);
    }

    /// Says `ready` and waits for `committed`: from then on this process serves, and the
    /// running server stops. An error: the running server serves on; this process must not.
    /// `adopted`: this process goes on as the running server's fleet node.
    pub fn confirm(&self, adopted: bool) -> Result<(), String> {
        self.channel
            .send(&Message::Ready { adopted }.encode(), &[])
            .map_err(|e| format!("cannot tell the running server we are ready: {e}"))?;
        match recv(&self.channel, "for its confirmation")? {
            Message::Committed => Ok(()),
            other => Err(format!("the running server answered {other:?} to ready")),
        }
    }
}

fn recv_packet(channel: &Channel, what: &str) -> Result<Packet, String> {
    channel.recv().map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("the running server closed the control socket while we waited {what}")
        }
        std::io::ErrorKind::TimedOut => format!("the running server did not answer {what}"),
        _ => format!("control socket, waiting {what}: {e}"),
    })
}

fn recv(channel: &Channel, what: &str) -> Result<Message, String> {
    let packet = recv_packet(channel, what)?;
    Message::decode(&packet.bytes).map_err(|e| format!("the running server sent {e}"))
}

/// The largest state accepted (a server at its caps writes far less).
const MAX_STATE: usize = 1 << 30;

/// Takes over from the server answering at `path`: `Ok(None)` when none does (no socket
/// there, or one nobody listens on), so there is nothing to take over. Every error is one line
/// for the user; the running server serves on.
pub fn take(path: &Path, wanted: &Wanted) -> Result<Option<Taken>, String> {
    let shown = path.display();
    let me = my_uid();
    match owner(path) {
        Ok(uid) if uid == me => {}
        Ok(uid) => {
            return Err(format!(
                "the control socket {shown} belongs to uid {uid}, not to this user (uid {me}): \
                 refusing to take over from it"
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("the control socket {shown}: {e}")),
    }
    let channel = match Channel::connect(path) {
        Ok(channel) => channel,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(format!("cannot connect to the control socket {shown}: {e}")),
    };
    let from = channel
        .peer()
        .map_err(|e| format!("control socket {shown}: {e}"))?;
    if from.uid != me {
        return Err(format!(
            "the server at {shown} runs as uid {}, not as this user (uid {me}): refusing to \
             take over from it",
            from.uid
        ));
    }
    channel
        .set_timeout(STEP_TIMEOUT)
        .map_err(|e| format!("control socket: {e}"))?;
    let send = |message: Message| {
        channel
            .send(&message.encode(), &[])
            .map_err(|e| format!("cannot write to the running server: {e}"))
    };
    send(Message::Hello {
        protocol: PROTOCOL,
        state_version: wanted.state_version,
    })?;
    let offer = match recv(&channel, "for its offer")? {
        Message::Offer(offer) => offer,
        Message::Refused(reason) => {
            return Err(format!(
                "the running server (pid {}) refused: {reason}",
                from.pid
            ))
        }
        other => return Err(format!("the running server answered {other:?} to hello")),
    };
    if let Err(reason) = check_offer(&offer, wanted) {
        let _ = send(Message::Abort(reason.clone()));
        return Err(reason);
    }
    send(Message::Take)?;
    let (sections, bytes, mono_ns) = match recv(&channel, "for its state")? {
        Message::State {
            sections,
            bytes,
            mono_ns,
        } => (sections, bytes, mono_ns),
        Message::Refused(reason) => {
            return Err(format!(
                "the running server (pid {}) could not hand over: {reason}",
                from.pid
            ))
        }
        other => return Err(format!("the running server sent {other:?} for its state")),
    };
    if bytes > MAX_STATE {
        return Err(format!(
            "the running server announced a state of {bytes} bytes"
        ));
    }
    let mut blob = Vec::with_capacity(bytes.min(64 << 20));
    while blob.len() < bytes {
        let packet = recv_packet(&channel, "for its state")?;
        if packet.bytes.is_empty() || blob.len() + packet.bytes.len() > bytes {
            return Err("the running server sent more state than it announced".into());
        }
        blob.extend(packet.bytes);
    }
    let mut parts = split_sections(&blob, sections)?.into_iter();
    let shared = parts.next().unwrap_or_default();
    let shards: Vec<Vec<u8>> = parts.collect();
    let mut taken = Taken {
        receivers: Vec::new(),
        relay: HashMap::new(),
        http: None,
        control: None,
        shared,
        shards,
        mono_ns,
        fleet_node: match (&offer.fleet, wanted.fleet_key) {
            (Some((node, key)), Some(mine)) if *key == mine => Some(node.clone()),
            _ => None,
        },
        successor: Successor { channel, from },
    };
    loop {
        let packet = recv_packet(&taken.successor.channel, "for its sockets")?;
        let message =
            Message::decode(&packet.bytes).map_err(|e| format!("the running server sent {e}"))?;
        let mut fds = packet.fds.into_iter();
        match message {
            Message::Sent => break,
            Message::Fds {
                kind: FdKind::Receivers,
                ..
            } => taken.receivers.extend(fds.map(Socket::from)),
            Message::Fds {
                kind: FdKind::Relay,
                ports,
            } => {
                if ports.len() != fds.len() {
                    return Err("the running server sent relay sockets without ports".into());
                }
                taken
                    .relay
                    .extend(ports.into_iter().zip(fds.map(Socket::from)));
            }
            Message::Fds {
                kind: FdKind::Http, ..
            } => {
                // Used only to serve HTTP at the same address; else closed here.
                taken.http = fds
                    .next()
                    .filter(|_| wanted.http.is_some() && wanted.http == offer.http)
                    .map(TcpListener::from);
            }
            Message::Fds {
                kind: FdKind::Control,
                ..
            } => taken.control = fds.next(),
            other => {
                return Err(format!(
                    "the running server sent {other:?} with its sockets"
                ))
            }
        }
    }
    if taken.receivers.len() != offer.receivers {
        return Err(format!(
            "the running server offered {} server sockets and sent {}",
            offer.receivers,
            taken.receivers.len()
        ));
    }
    Ok(Some(taken))
}

/// Splits the state into its sections (each after its length, 8 bytes little endian).
fn split_sections(mut blob: &[u8], sections: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for _ in 0..sections {
        let bad = || "the running server's state is cut short".to_string();
        let (len, rest) = blob.split_at_checked(8).ok_or_else(bad)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (section, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
        out.push(section.to_vec());
        blob = rest;
    }
    if !blob.is_empty() {
        return Err("the running server's state has bytes after its last section".into());
    }
    Ok(out)
}

/// Whether this process can take over what the running server offers: the same server address
/// and receivers (it takes those very sockets), the same relay ports when both relay (relays
/// in play keep theirs). Everything else may change.
pub fn check_offer(offer: &Offer, wanted: &Wanted) -> Result<(), String> {
    if offer.state_version != wanted.state_version {
        return Err(format!(
            "the running server writes state version {}; this build reads version {}: stop \
             it and start this one without --takeover, or upgrade through a build that reads both",
            offer.state_version, wanted.state_version
        ));
    }
    if offer.bind != wanted.bind {
        return Err(format!(
            "the running server listens on {}; this one asks for {} (--bind/--port): a \
             successor takes over the socket, so they must be the same",
            offer.bind, wanted.bind
        ));
    }
    if offer.receivers != wanted.receivers {
        return Err(format!(
            "the running server reads with --receivers {}; this one asks for {}: they must be \
             the same across a hand-over",
            offer.receivers, wanted.receivers
        ));
    }
    if let (Some(theirs), Some(mine)) = (&offer.relay, &wanted.relay) {
        if theirs != mine {
            return Err(format!(
                "the running server relays on ports {}-{}; this one asks for --relay-ports \
                 {}-{}: they must be the same across a hand-over",
                theirs.start(),
                theirs.end(),
                mine.start(),
                mine.end()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            state_version: 1,
            bind: "0.0.0.0:7777".parse().unwrap(),
            receivers: 1,
            relay: Some(7778..=8777),
            http: None,
            fleet: None,
        }
    }

    fn wanted() -> Wanted {
        Wanted {
            bind: "0.0.0.0:7777".parse().unwrap(),
            receivers: 1,
            relay: Some(7778..=8777),
            http: None,
            fleet_key: None,
            state_version: 1,
        }
    }

    #[test]
    fn the_same_sockets_may_be_taken_over_and_other_ones_not() {
        assert_eq!(check_offer(&offer(), &wanted()), Ok(()));
        // The relay may be turned on or off (relays in play are checked against the state).
        let off = Wanted {
            relay: None,
            ..wanted()
        };
        assert_eq!(check_offer(&offer(), &off), Ok(()));
        let cases: [(Wanted, &str); 4] = [
            (
                Wanted {
                    bind: "0.0.0.0:7000".parse().unwrap(),
                    ..wanted()
                },
                "--bind/--port",
            ),
            (
                Wanted {
                    receivers: 2,
                    ..wanted()
                },
                "--receivers 1",
            ),
            (
                Wanted {
                    relay: Some(9000..=9100),
                    ..wanted()
                },
                "--relay-ports 9000-9100",
            ),
            (
                Wanted {
                    state_version: 2,
                    ..wanted()
                },
                "state version 1; this build reads version 2",
            ),
        ];
        for (wanted, says) in cases {
            let err = check_offer(&offer(), &wanted).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn sections_split_as_they_were_joined_and_a_cut_is_an_error() {
        let mut blob = Vec::new();
        for section in [&b"shared"[..], b"", b"shard one"] {
            blob.extend_from_slice(&(section.len() as u64).to_le_bytes());
            blob.extend_from_slice(section);
        }
        let parts = split_sections(&blob, 3).unwrap();
        assert_eq!(
            parts,
            vec![b"shared".to_vec(), vec![], b"shard one".to_vec()]
        );
        assert!(split_sections(&blob[..blob.len() - 1], 3).is_err());
        assert!(split_sections(&blob, 2).is_err());
        assert!(split_sections(&blob, 4).is_err());
    }
}
