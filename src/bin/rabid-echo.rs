//! rabid-echo: the yardstick for `rabid-flood`.
//!
//! One datagram in, one reply with the same bytes out, as fast as this machine allows: each
//! thread owns one `SO_REUSEPORT` socket on the same port, reads up to `--batch` datagrams with
//! one `recvmmsg` and answers them with one `sendmmsg`. It keeps no state and parses nothing, so
//! the same `rabid-flood ping --echo` load against it measures the ceiling of this machine (kernel,
//! loopback and generator) for rabid-punch's traffic shape; rabid-punch's figures are read as a
//! ratio of this one.
//!
//! It is not a server for anything else: it answers whoever sends to it, so it binds to
//! 127.0.0.1 unless told otherwise. It stops after `--duration` seconds, or on SIGINT/SIGTERM.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use rabid_netio::{send_all, RecvBatch};
use socket2::{Domain, Protocol, Socket, Type};

/// Largest batch: enough to amortise the system call, small enough to stay in cache.
const MAX_BATCH: usize = 64;
/// Largest datagram echoed whole; longer ones are echoed truncated (rabid requests are < 64 B).
const BUF_LEN: usize = 2048;
/// How often a blocked thread wakes up to look at the stop flag.
const WAKE_EVERY: Duration = Duration::from_millis(100);

#[derive(FromArgs)]
/// Minimal UDP echo responder used as the yardstick for rabid-flood: every datagram is sent back
/// unchanged to its sender, with batched recvmmsg/sendmmsg on SO_REUSEPORT threads.
struct Args {
    /// UDP port to listen on (0 = ephemeral, printed on stderr; default 0)
    #[argh(option, default = "0")]
    port: u16,
    /// address to bind (default 127.0.0.1)
    #[argh(option, default = "IpAddr::V4(Ipv4Addr::LOCALHOST)")]
    bind: IpAddr,
    /// number of threads, each with its own SO_REUSEPORT socket (default 1)
    #[argh(option, default = "1")]
    threads: usize,
    /// datagrams per recvmmsg/sendmmsg call, 1..=64 (default 32)
    #[argh(option, default = "32")]
    batch: usize,
    /// stop after this many seconds (default: run until SIGINT or SIGTERM)
    #[argh(option)]
    duration: Option<f64>,
    /// after a batch, poll without blocking for this many microseconds before sleeping in the
    /// kernel again (default 0: always block; spinning trades CPU for wake-up latency)
    #[argh(option, default = "0")]
    spin_us: u64,
}

fn main() {
    let args: Args = argh::from_env();
    if let Err(e) = run(&args) {
        eprintln!("rabid-echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.threads == 0 || args.threads > 256 {
        return Err("--threads must be 1..=256".into());
    }
    if args.batch == 0 || args.batch > MAX_BATCH {
        return Err(format!("--batch must be 1..={MAX_BATCH}"));
    }
    if args.spin_us > 1_000_000 {
        return Err("--spin-us must be at most 1000000".into());
    }
    let spin = Duration::from_micros(args.spin_us);
    let deadline = match args.duration {
        Some(d) if d.is_finite() && d > 0.0 && d <= 86_400.0 => {
            Some(Instant::now() + Duration::from_secs_f64(d))
        }
        Some(_) => return Err("--duration must be a number of seconds in (0, 86400]".into()),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }

    // The first socket picks the port (it may be ephemeral); the others join it.
    let first = bind_reuseport(SocketAddr::new(args.bind, args.port))
        .map_err(|e| format!("cannot bind {}:{}: {e}", args.bind, args.port))?;
    let local = first
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let mut sockets = vec![first];
    for _ in 1..args.threads {
        sockets.push(bind_reuseport(local).map_err(|e| format!("cannot bind {local}: {e}"))?);
    }
    // Same wording as rabid-punch, so scripts find the port the same way for both.
    eprintln!(
        "rabid-echo: listening on {local} ({} thread(s), batch {}, spin {} us)",
        args.threads, args.batch, args.spin_us
    );

    let echoed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = sockets
        .into_iter()
        .map(|sock| {
            let stop = Arc::clone(&stop);
            let echoed = Arc::clone(&echoed);
            let batch = args.batch;
            std::thread::spawn(move || echo_loop(&sock, batch, spin, &stop, deadline, &echoed))
        })
        .collect();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(format!("socket error: {e}")),
            Err(_) => failure = Some("an echo thread panicked".into()),
        }
        // One thread failing stops the others: a partial yardstick would mislead.
        stop.store(true, Ordering::Relaxed);
    }
    eprintln!(
        "rabid-echo: stopped after echoing {} datagrams",
        echoed.load(Ordering::Relaxed)
    );
    failure.map_or(Ok(()), Err)
}

/// A UDP socket with `SO_REUSEPORT`, so several threads share one port and the kernel spreads
/// senders over them (by 4-tuple hash, so one sender's datagrams stay in order).
fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_port(true)?;
    // Bigger buffers absorb the generator's bursts instead of dropping them.
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.bind(&addr.into())?;
    sock.set_read_timeout(Some(WAKE_EVERY))?;
    Ok(sock.into())
}

/// Receive a batch, send it back, until stopped. Returns only on a socket error that is not
/// about one datagram.
fn echo_loop(
    sock: &UdpSocket,
    batch: usize,
    spin: Duration,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    echoed: &AtomicU64,
) -> io::Result<()> {
    // rabid-netio's batched I/O, the server's own: one recvmmsg in, one sendmmsg out.
    let mut recv = RecvBatch::<BUF_LEN, MAX_BATCH>::new().with_limit(batch);
    let mut count = 0u64;
    let mut last_data = Instant::now();
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        // Within the spin time after the last datagram, do not sleep: a thread woken from the
        // kernel may wait for its core behind other work. Otherwise block (up to SO_RCVTIMEO)
        // for the first datagram only.
        let n = if !spin.is_zero() && last_data.elapsed() < spin {
            recv.try_recv(sock)?
        } else {
            recv.recv(sock)?
        };
        if n == 0 {
            continue;
        }
        if !spin.is_zero() {
            last_data = Instant::now();
        }
        // The reply is exactly the bytes received, to the address they came from; a datagram
        // the kernel refuses (a vanished sender, a full buffer) is skipped.
        send_all::<MAX_BATCH>(sock, recv.iter().map(|d| (d.from, d.data)));
        count += n as u64;
        if count >= 4096 {
            echoed.fetch_add(count, Ordering::Relaxed);
            count = 0;
        }
    }
    echoed.fetch_add(count, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_comes_back_unchanged_to_its_sender() {
        let a = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_reuseport(addr).expect("a second socket shares the port");
        let stop = AtomicBool::new(false);
        let echoed = AtomicU64::new(0);
        let deadline = Some(Instant::now() + Duration::from_secs(30));
        std::thread::scope(|s| {
            for sock in [&a, &b] {
                // One thread spins, one blocks: both paths must echo.
                let spin = if std::ptr::eq(sock, &a) {
                    Duration::from_micros(200)
                } else {
                    Duration::ZERO
                };
                let (stop, echoed) = (&stop, &echoed);
                s.spawn(move || echo_loop(sock, 4, spin, stop, deadline, echoed).unwrap());
            }
            let clients: Vec<UdpSocket> = (0..3)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            for (i, c) in clients.iter().enumerate() {
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                for j in 0..10 {
                    c.send_to(format!("p:s{i}:n{j}").as_bytes(), addr).unwrap();
                }
            }
            for (i, c) in clients.iter().enumerate() {
                let mut buf = [0u8; 64];
                for j in 0..10 {
                    let (n, from) = c.recv_from(&mut buf).expect("echo within 5 s");
                    assert_eq!(from, addr);
                    assert_eq!(&buf[..n], format!("p:s{i}:n{j}").as_bytes());
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(echoed.load(Ordering::Relaxed), 30);
    }
}
