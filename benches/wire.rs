//! Parsing every request type and writing every reply type.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use rabid_punch::wire::{self, ErrorCode};

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, text) in [
        ("host", "h:NiceRoom:SuperPlayer:12:Password"),
        ("connect", "c:NiceRoom:CoolPlayer:Password"),
        ("ping", "p:NiceRoom:CoolPlayer"),
        ("kick", "k:NiceRoom:CoolPlayer"),
        ("exit", "x:NiceRoom:CoolPlayer"),
        ("start", "s:NiceRoom:SuperPlayer"),
        ("confirm", "y:NiceRoom:CoolPlayer"),
        ("invalid", "h:NiceRoom:SuperPlayer:13"),
    ] {
        group.bench_function(name, |b| b.iter(|| wire::parse(black_box(text.as_bytes()))));
    }
    group.finish();
}

fn format(c: &mut Criterion) {
    let mut group = c.benchmark_group("format");
    let names: Vec<String> = (0..12).map(|i| format!("Player{i:06}")).collect();
    let peers: Vec<(&str, SocketAddr)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.as_str(),
                SocketAddr::from(([203, 0, 113, i as u8], 40000 + i as u16)),
            )
        })
        .collect();
    let mut buf = Vec::with_capacity(512);
    group.bench_function("info_4_players", |b| {
        b.iter(|| {
            buf.clear();
            wire::write_info(&mut buf, names[..4].iter().map(String::as_str));
            black_box(&buf);
        })
    });
    group.bench_function("info_12_players", |b| {
        b.iter(|| {
            buf.clear();
            wire::write_info(&mut buf, names.iter().map(String::as_str));
            black_box(&buf);
        })
    });
    group.bench_function("start_message_12_players", |b| {
        b.iter(|| {
            buf.clear();
            wire::write_start(&mut buf, 40000, peers[1..].iter().copied());
            black_box(&buf);
        })
    });
    group.bench_function("error", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(ErrorCode::SessionFull).as_str().as_bytes());
            black_box(&buf);
        })
    });
    group.finish();
}

criterion_group!(benches, parse, format);
criterion_main!(benches);
