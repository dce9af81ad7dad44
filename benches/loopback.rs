//! End to end: one ping and its reply over real UDP on 127.0.0.1, through the receiver, a worker
//! and the send path.

use std::net::UdpSocket;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rabid_punch::runtime::{Server, ServerConfig};

fn round_trip(c: &mut Criterion) {
    let server = Server::start(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ..ServerConfig::default()
    })
    .expect("start the server");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.connect(server.local_addr()).unwrap();
    let mut buf = [0u8; 512];
    socket.send(b"h:Bench:Host:4").unwrap();
    socket.recv(&mut buf).unwrap();
    c.bench_function("loopback_ping_round_trip", |b| {
        b.iter(|| {
            socket.send(b"p:Bench:Host").unwrap();
            let len = socket.recv(&mut buf).expect("reply");
            assert_eq!(&buf[..len], b"i:Host");
        })
    });
    server.shutdown();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
