//! What a listing costs as the directory grows: the compatible `l:`, a full `b:1:` page
//! (newest and fullest first, with and without a filter), and `q:1:`, with 1, 1 000 and
//! 100 000 public lobbies of one game listed. Private and started sessions are never in the
//! directory, so they cost a listing nothing (there is nothing of them to skip).
//!
//! `cargo bench --bench directory`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rabid_punch::core::directory::{Listing, Scope};
use rabid_punch::core::{Directory, DirectoryQuery, PlayerName, SessionName};
use rabid_punch::wire::lobby::{parse_lobby, LobbyRequest};

/// A directory of `n` public lobbies in game `cards` and as many compatible ones, of 1 to 4
/// players out of 4, every tenth with a password.
fn directory(n: usize) -> Directory {
    let dir = Directory::new();
    let created = Instant::now();
    for i in 0..n {
        for (scope, prefix) in [(Scope::Game("cards".into()), "G"), (Scope::Compat, "C")] {
            dir.publish(Listing {
                session: SessionName::new(&format!("{prefix}{i}")).unwrap(),
                scope,
                host: PlayerName::new(&format!("Host{i}")).unwrap(),
                players: 1 + (i % 4) as u8,
                max_players: 4,
                password: i % 10 == 0,
                version: "1.0.0".into(),
                mode: if i % 2 == 0 {
                    "Draft"
                } else {
                    "Constructed - Free"
                }
                .into(),
                description: "A friendly game, all welcome".into(),
                created,
                origin: None,
            });
        }
    }
    dir
}

fn browse(text: &str) -> DirectoryQuery {
    let Some(Ok(LobbyRequest::Browse(b))) = parse_lobby(text.as_bytes()) else {
        panic!("{text}");
    };
    DirectoryQuery::Browse {
        game: b.game.into(),
        free_only: b.free_only,
        open_only: b.open_only,
        version: b.version.map(Into::into),
        mode: b.mode.map(Into::into),
        order: b.order,
        cursor: b.cursor,
        request_len: b.request_len,
    }
}

fn listings(c: &mut Criterion) {
    let pad = "x".repeat(400);
    let queries = [
        ("compat_l", DirectoryQuery::Compat),
        ("browse_newest", browse(&format!("b:1:cards::::n::{pad}"))),
        ("browse_fullest", browse(&format!("b:1:cards::::f::{pad}"))),
        (
            "browse_free_open",
            browse(&format!("b:1:cards:fo:::n::{pad}")),
        ),
        (
            "browse_mode_filter",
            browse(&format!("b:1:cards::1.0.0:Draft:n::{pad}")),
        ),
        (
            "quick_join",
            DirectoryQuery::QuickJoin {
                game: "cards".into(),
                version: None,
                request_len: 64,
            },
        ),
    ];
    let mut group = c.benchmark_group("directory");
    for n in [1, 1_000, 100_000] {
        let dir = directory(n);
        let now = Instant::now();
        let mut out = Vec::with_capacity(1300);
        for (name, query) in &queries {
            group.bench_with_input(BenchmarkId::new(*name, n), query, |b, q| {
                b.iter(|| {
                    out.clear();
                    dir.answer(black_box(q), now, &mut out);
                    out.len()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, listings);
criterion_main!(benches);
