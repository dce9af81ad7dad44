//! `rabid-punch client --list`: a game's lobbies (or FusionV1's compatible list) as an aligned
//! table, or as one JSON object shaped like the server's HTTP view (`GET /lobbies`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use super::push_json_str;
use crate::directory::{Directory, DirectoryError, Entry, Page, Query};

/// At most this many pages of a game's directory are fetched (each up to 1200 bytes, a few
/// dozen lobbies): the listing says when more remain.
pub(super) const LIST_PAGES: usize = 20;

/// Lists `query`'s lobbies (`None`: the compatible list) and prints them.
pub(super) fn list(server: SocketAddr, query: Option<&Query>, json: bool) -> ExitCode {
    let directory = Directory::new(server);
    let game = query.map(|q| q.game.as_str());
    let listed = match query {
        Some(query) => directory.list_all(query, LIST_PAGES),
        None => directory.list_compat().map(|entries| Page {
            total: entries.len(),
            next: None,
            entries,
        }),
    };
    match listed {
        Ok(page) => {
            if json {
                println!("{}", json_listing(game, &page));
            } else {
                print!("{}", table(game, &page));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_failure(&e, json);
            ExitCode::FAILURE
        }
    }
}

/// The failure of a directory request, as the CLI's other failures: one line, or one JSON
/// object with `outcome` and `error`.
pub(super) fn print_failure(e: &DirectoryError, json: bool) {
    if json {
        let mut out = String::from("{\"outcome\":");
        push_json_str(&mut out, e.code());
        out.push_str(",\"error\":");
        push_json_str(&mut out, &e.to_string());
        out.push('}');
        println!("{out}");
    } else {
        println!("failed: {} ({e})", e.code());
    }
}

/// `{"outcome":"success","game":G,"total":T,"next":C,"lobbies":[...]}`, each lobby as the
/// HTTP view writes it; `game`, `password` and `age_s` are `null` in the compatible list.
fn json_listing(game: Option<&str>, page: &Page) -> String {
    let mut out = String::from("{\"outcome\":\"success\",\"game\":");
    push_opt_str(&mut out, game);
    let _ = write!(out, ",\"total\":{},\"next\":", page.total);
    push_opt_str(&mut out, page.next.as_deref());
    out.push_str(",\"lobbies\":[");
    for (i, e) in page.entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"session\":");
        push_json_str(&mut out, &e.session);
        out.push_str(",\"host\":");
        push_json_str(&mut out, &e.host);
        let _ = write!(
            out,
            ",\"players\":{},\"max\":{},\"password\":{}",
            e.players,
            e.max_players,
            e.password.map_or("null".to_string(), |p| p.to_string())
        );
        for (key, value) in [
            ("version", &e.version),
            ("mode", &e.mode),
            ("description", &e.description),
        ] {
            let _ = write!(out, ",\"{key}\":");
            push_json_str(&mut out, value);
        }
        let age = e
            .age
            .map_or("null".to_string(), |a| a.as_secs().to_string());
        let _ = write!(out, ",\"age_s\":{age}}}");
    }
    out.push_str("]}");
    out
}

fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

const HEADER: [&str; 8] = [
    "SESSION",
    "HOST",
    "PLAYERS",
    "PASSWORD",
    "VERSION",
    "MODE",
    "AGE",
    "DESCRIPTION",
];

/// The lobbies as an aligned table and a line that says what was listed.
fn table(game: Option<&str>, page: &Page) -> String {
    let what = match game {
        Some(g) => format!("of game {}", printable(g)),
        None => "in the compatible list (FusionV1's l:)".to_string(),
    };
    if page.entries.is_empty() {
        return format!("no open public lobbies {what}\n");
    }
    let rows: Vec<[String; 8]> = page.entries.iter().map(row).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(HEADER.map(str::to_string)).chain(rows) {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell); // the last column is not padded
            } else {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let shown = page.entries.len();
    let _ = write!(
        out,
        "{shown} lobb{} {what}",
        if shown == 1 { "y" } else { "ies" }
    );
    if page.total > shown || page.next.is_some() {
        let _ = write!(out, " ({} match; more pages remain)", page.total);
    }
    out.push('\n');
    out
}

fn row(e: &Entry) -> [String; 8] {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            printable(s)
        }
    };
    [
        printable(&e.session),
        printable(&e.host),
        format!("{}/{}", e.players, e.max_players),
        match e.password {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        }
        .to_string(),
        or_dash(&e.version),
        or_dash(&e.mode),
        e.age.map_or("-".to_string(), |a| age(a.as_secs())),
        or_dash(&e.description),
    ]
}

/// `45s`, `12m`, `3h05m`.
fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A server's text, safe on a terminal: control characters (escape sequences) become `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(session: &str, password: Option<bool>, description: &str) -> Entry {
        Entry {
            session: session.into(),
            host: "Ana".into(),
            players: 2,
            max_players: 4,
            password,
            version: "0.9.3".into(),
            mode: "Constructed - Free".into(),
            description: description.into(),
            age: password.map(|_| Duration::from_secs(754)),
            server: None,
        }
    }

    #[test]
    fn the_table_is_aligned_and_says_what_it_lists() {
        let page = Page {
            total: 5,
            next: Some("2.3".into()),
            entries: vec![
                entry("Room1", Some(true), "all welcome"),
                entry("LongRoom10", Some(false), "\u{1b}[31mred"),
            ],
        };
        let text = table(Some("cards"), &page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "SESSION     HOST  PLAYERS  PASSWORD  VERSION  MODE                AGE  DESCRIPTION"
        );
        assert_eq!(
            lines[1],
            "Room1       Ana   2/4      yes       0.9.3    Constructed - Free  12m  all welcome"
        );
        assert!(lines[2].ends_with("12m  ?[31mred"), "{}", lines[2]);
        assert_eq!(
            lines[3],
            "2 lobbies of game cards (5 match; more pages remain)"
        );

        let compat = Page {
            total: 1,
            next: None,
            entries: vec![entry("Room1", None, "")],
        };
        let text = table(None, &compat);
        assert!(
            text.contains(
                "Room1    Ana   2/4      ?         0.9.3    Constructed - Free  -    -\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("1 lobby in the compatible list (FusionV1's l:)\n"));
        assert_eq!(
            table(Some("cards"), &Page::default()),
            "no open public lobbies of game cards\n"
        );
        assert_eq!(
            (age(59), age(60), age(3600 + 5 * 60)),
            ("59s".into(), "1m".into(), "1h05m".into())
        );
    }

    #[test]
    fn json_is_the_http_views_shape() {
        let page = Page {
            total: 1,
            next: None,
            entries: vec![entry("Room1", Some(false), "say \"hi\"")],
        };
        assert_eq!(
            json_listing(Some("cards"), &page),
            r#"{"outcome":"success","game":"cards","total":1,"next":null,"lobbies":[{"session":"Room1","host":"Ana","players":2,"max":4,"password":false,"version":"0.9.3","mode":"Constructed - Free","description":"say \"hi\"","age_s":754}]}"#
        );
        let compat = Page {
            total: 1,
            next: None,
            entries: vec![entry("Room1", None, "")],
        };
        let json = json_listing(None, &compat);
        assert!(json.starts_with(r#"{"outcome":"success","game":null,"total":1,"#));
        assert!(json.contains(r#""password":null,"#) && json.ends_with(r#""age_s":null}]}"#));
    }
}
