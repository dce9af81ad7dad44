//! The ring's own tests: real sockets on 127.0.0.1, every wait bounded.

use super::*;
use crate::runtime::stats::Totals;
use crate::runtime::wake::Bell;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// How long a test waits for an event before it fails.
const WAIT: Duration = Duration::from_secs(5);

type Got = Vec<(u16, SocketAddr, Vec<u8>)>;

fn relay_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

fn port(socket: &UdpSocket) -> u16 {
    socket.local_addr().unwrap().port()
}

/// A started ring over `sockets`; `None` where the kernel refuses `io_uring` (then the test
/// says so and passes, unless `IO_URING_REQUIRED=1`: `tests/common/mod.rs`).
fn started(sockets: &[&UdpSocket], bell: &Bell, buffers: u16) -> Option<Ring> {
    let fds: Vec<_> = sockets.iter().map(|s| (port(s), s.as_raw_fd())).collect();
    let mut ring = match Ring::with_buffers(&fds, bell.fd(), buffers) {
        Ok(ring) => ring,
        Err(e) if std::env::var("IO_URING_REQUIRED").as_deref() != Ok("1") => {
            eprintln!("io_uring is refused here ({e}): the ring is not tested");
            return None;
        }
        Err(e) => panic!("io_uring is refused here ({e}), and IO_URING_REQUIRED=1"),
    };
    ring.start().unwrap();
    Some(ring)
}

/// Waits and handles completions until `n` datagrams were received in all.
fn receive(ring: &mut Ring, counters: &Counters, got: &mut Got, n: usize) {
    let until = Instant::now() + WAIT;
    while got.len() < n {
        assert!(Instant::now() < until, "{} of {n} received", got.len());
        ring.enter(true, Some(until - Instant::now())).unwrap();
        ring.complete(counters, |port, from, data| {
            got.push((port, from, data.to_vec()))
        })
        .unwrap();
    }
}

fn numbered(got: &Got) -> Vec<u32> {
    got.iter()
        .map(|(_, _, data)| u32::from_le_bytes(data[..4].try_into().unwrap()))
        .collect()
}

#[test]
fn a_burst_larger_than_the_buffers_crosses_whole_and_in_order() {
    // 8 buffers for 200 datagrams: the receive runs out of buffers again and again, and is
    // armed again each time the buffers came back, with nothing lost meanwhile.
    let (relay, peer) = (relay_socket(), UdpSocket::bind("127.0.0.1:0").unwrap());
    let bell = Bell::new().unwrap();
    let Some(mut ring) = started(&[&relay], &bell, 8) else {
        return;
    };
    let counters = Counters::default();
    for i in 0..200u32 {
        peer.send_to(&i.to_le_bytes(), relay.local_addr().unwrap())
            .unwrap();
    }
    let mut got = Vec::new();
    receive(&mut ring, &counters, &mut got, 200);
    assert_eq!(numbered(&got), (0..200).collect::<Vec<_>>());
    assert!(got
        .iter()
        .all(|(p, from, _)| *p == port(&relay) && *from == peer.local_addr().unwrap()));
}

#[test]
fn the_bell_wakes_the_ring_and_a_long_datagram_is_dropped_not_cut() {
    let relay = relay_socket();
    let bell = std::sync::Arc::new(Bell::new().unwrap());
    let Some(mut ring) = started(&[&relay], &bell, 8) else {
        return;
    };
    let counters = Counters::default();
    // The last sender gone rings the bell, asleep or not.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    drop(crate::runtime::wake::WorkQueue::new(tx, bell.clone()));
    let until = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < until, "the bell did not wake the ring");
        ring.enter(true, Some(WAIT)).unwrap();
        if ring.complete(&counters, |_, _, _| {}).unwrap().1 {
            break;
        }
    }
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = relay.local_addr().unwrap();
    peer.send_to(&vec![7u8; RELAY_BUF + 1], to).unwrap();
    peer.send_to(&1u32.to_le_bytes(), to).unwrap();
    let mut got = Vec::new();
    receive(&mut ring, &counters, &mut got, 1);
    assert_eq!(numbered(&got), [1]);
    let totals = Totals::sum([&counters]);
    assert_eq!(totals.runtime.relay_dropped_too_big, 1);
    assert_eq!(totals.runtime.relay_datagrams_in, 2);
}

#[test]
fn sends_leave_from_their_port_and_refusals_are_counted() {
    let (a, b) = (relay_socket(), relay_socket());
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let bell = Bell::new().unwrap();
    let Some(mut ring) = started(&[&a, &b], &bell, 8) else {
        return;
    };
    let counters = Counters::default();
    let to = peer.local_addr().unwrap();
    let mut out = Outbox::new();
    out.push_via_with(port(&a), to, |buf| buf.extend_from_slice(b"from a"));
    out.push_via_with(port(&b), to, |buf| buf.extend_from_slice(b"from b"));
    // A port not in the share, and a destination the kernel refuses (an IPv6 address
    // from an IPv4 socket).
    out.push_via_with(1, to, |buf| buf.extend_from_slice(b"nowhere"));
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    out.push_via_with(port(&a), v6, |buf| buf.extend_from_slice(b"refused"));
    assert_eq!(ring.send(&mut out).unwrap(), 1);
    assert!(out.is_empty());
    ring.settle(&counters, WAIT).unwrap();
    let mut buf = [0u8; 64];
    for expected in [
        (a.local_addr().unwrap(), "from a"),
        (b.local_addr().unwrap(), "from b"),
    ] {
        let (len, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((from, std::str::from_utf8(&buf[..len]).unwrap()), expected);
    }
    assert_eq!(Totals::sum([&counters]).runtime.relay_send_errors, 1);
    assert!(ring
        .slots
        .iter()
        .all(|s| s.pending == 0 && s.out.is_empty()));
}

#[test]
fn quiesced_no_datagram_is_lost_and_later_ones_wait_in_the_socket() {
    let (relay, peer) = (relay_socket(), UdpSocket::bind("127.0.0.1:0").unwrap());
    let to = relay.local_addr().unwrap();
    let bell = Bell::new().unwrap();
    let Some(mut ring) = started(&[&relay], &bell, 8) else {
        return;
    };
    let counters = Counters::default();
    let mut got = Vec::new();
    for i in 0..5u32 {
        peer.send_to(&i.to_le_bytes(), to).unwrap();
    }
    receive(&mut ring, &counters, &mut got, 5);
    // Some arrive before the receive is cancelled and are not completed yet: each either
    // comes out of the quiesce or stays in the socket.
    for i in 5..40u32 {
        peer.send_to(&i.to_le_bytes(), to).unwrap();
    }
    ring.quiesce(&counters, WAIT, |port, from, data| {
        got.push((port, from, data.to_vec()))
    })
    .unwrap();
    assert!(ring.ports.iter().all(|p| !p.armed) && !ring.bell_armed);
    for i in 40..50u32 {
        peer.send_to(&i.to_le_bytes(), to).unwrap();
    }
    // Nothing more comes through the ring: a wait ends on its timeout.
    ring.enter(true, Some(Duration::from_millis(20))).unwrap();
    assert_eq!(ring.complete(&counters, |_, _, _| {}).unwrap().0, 0);
    let mut buf = [0u8; 64];
    let mut left = Vec::new();
    while let Ok(len) = relay.recv(&mut buf) {
        left.push(u32::from_le_bytes(buf[..len].try_into().unwrap()));
    }
    let mut all = numbered(&got);
    all.extend(left);
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    // A hand-over that did not happen: the ring reads again.
    ring.resume().unwrap();
    peer.send_to(&50u32.to_le_bytes(), to).unwrap();
    got.clear();
    receive(&mut ring, &counters, &mut got, 1);
    assert_eq!(numbered(&got), [50]);
}

#[test]
fn an_ipv6_datagram_comes_with_its_source_and_goes_back_to_it() {
    let Ok(relay) = UdpSocket::bind("[::1]:0") else {
        println!("SKIPPED: no IPv6 loopback here");
        return;
    };
    relay.set_nonblocking(true).unwrap();
    let peer = UdpSocket::bind("[::1]:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let bell = Bell::new().unwrap();
    let Some(mut ring) = started(&[&relay], &bell, 8) else {
        return;
    };
    let counters = Counters::default();
    peer.send_to(&7u32.to_le_bytes(), relay.local_addr().unwrap())
        .unwrap();
    let mut got = Vec::new();
    receive(&mut ring, &counters, &mut got, 1);
    assert_eq!(got[0].1, peer.local_addr().unwrap());
    let mut out = Outbox::new();
    out.push_via_with(port(&relay), got[0].1, |buf| buf.extend_from_slice(b"back"));
    assert_eq!(ring.send(&mut out).unwrap(), 0);
    ring.settle(&counters, WAIT).unwrap();
    let mut buf = [0u8; 16];
    let (len, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(
        (from, &buf[..len]),
        (relay.local_addr().unwrap(), &b"back"[..])
    );
}

#[test]
fn a_dropped_ring_holds_no_socket() {
    let relay = relay_socket();
    let addr = relay.local_addr().unwrap();
    let bell = Bell::new().unwrap();
    let Some(ring) = started(&[&relay], &bell, 8) else {
        return;
    };
    drop(ring);
    drop(relay);
    // Were the socket still referenced by a receive in the ring, its port would be taken.
    UdpSocket::bind(addr).expect("the port is free once ring and socket are gone");
}

/// A ring closing interrupts the threads that had a hand in it: a thread that set one up (a
/// server starting, a probe) and then waits on a socket with a timeout would see EINTR. Rings
/// are set up on a thread of their own, so the thread that asked is left alone.
#[test]
fn a_ring_set_up_and_closed_does_not_interrupt_the_thread_that_asked_for_it() {
    let bell = Bell::new().unwrap();
    let Ok(ring) = Ring::new(&[], bell.fd()) else {
        return; // io_uring refused here: nothing to interrupt
    };
    drop(ring);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let e = socket.recv_from(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the wait ended with {e}, not its timeout"
    );
}
