//! The defaults in `--help`. argh takes a flag's help from its doc comment, a literal that
//! cannot read a value; so the doc comments say what a flag does, and this adds
//! `(default VALUE)` to each flag's text, VALUE read from an [`Args`] parsed from an empty
//! command line: the very values the flags default to, written as the flags accept them.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use argh::FromArgs;

use super::values::{
    duration_text, port_range_text, relay_io_word, relay_mode_word, scheduling_word,
};
use super::Args;
use crate::core::RelayMode;
use crate::runtime::{RelayIo, Scheduling};

/// Where argh starts a flag's text, and how wide it wraps it.
const COLUMN: usize = 20;
const WIDTH: usize = 80;

/// A flag value as the command line writes it.
trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(u8, u16, u32, u64, usize, IpAddr, String);

impl Shown for Duration {
    fn shown(&self) -> String {
        duration_text(*self)
    }
}

impl Shown for RangeInclusive<u16> {
    fn shown(&self) -> String {
        port_range_text(self)
    }
}

impl Shown for RelayMode {
    fn shown(&self) -> String {
        relay_mode_word(*self).into()
    }
}

impl Shown for RelayIo {
    fn shown(&self) -> String {
        relay_io_word(*self).into()
    }
}

impl Shown for Scheduling {
    fn shown(&self) -> String {
        scheduling_word(*self).into()
    }
}

/// `(flag, default)` for the fields of [`Args`] named, e.g. `("--log-keep", "10")`.
macro_rules! shown {
    ($args:ident: $($field:ident),* $(,)?) => {
        vec![$((
            format!("--{}", stringify!($field).replace('_', "-")),
            $args.$field.shown(),
        )),*]
    };
}

/// Every flag with a value to show. The others (`--workers`, `--relay-public-ip`, `--http`,
/// `--metrics`, the switches) say their default in words.
fn defaults() -> Vec<(String, String)> {
    let d = Args::from_args(&["rabid-punch"], &[]).expect("no flags are needed");
    shown!(d:
        port, bind, log_file, log_max_bytes, log_keep, player_timeout, session_lifetime,
        start_interval, start_sends, error_repeats, error_repeat_interval, queue_capacity, receivers,
        scheduling, max_sessions, max_sessions_per_ip, max_players, budget_burst, budget_refill,
        budget_earn_factor, budget_max_tracked, relay, relay_ports, relay_io, relay_idle, relay_unused,
        relay_lifetime, relay_auto_window, relay_session_rate, relay_ip_rate, relay_max_per_ip,
        stats_interval,
    )
}

/// argh's help with ` (default VALUE)` at the end of each flag's text, re-wrapped as argh
/// wraps it.
pub fn with_defaults(help: &str) -> String {
    let defaults = defaults();
    let lines: Vec<&str> = help.lines().collect();
    let indent = " ".repeat(COLUMN);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        // A flag's block: `  --flag  text`, then lines indented to the text's column.
        let mut end = i + 1;
        while end < lines.len() && lines[end].starts_with(&indent) {
            end += 1;
        }
        let flag = lines[i]
            .strip_prefix("  ")
            .and_then(|l| l.split_whitespace().next());
        let Some((flag, value)) = flag.and_then(|f| defaults.iter().find(|(name, _)| name == f))
        else {
            out.push(lines[i].to_string());
            i += 1;
            continue;
        };
        let first = lines[i].trim_start()[flag.len()..].trim();
        let mut words: Vec<&str> = first.split_whitespace().collect();
        for line in &lines[i + 1..end] {
            words.extend(line.split_whitespace());
        }
        let default = format!("(default {value})");
        words.push(&default);
        let wrapped = wrap(&words, WIDTH - COLUMN);
        let mut rest = wrapped.iter();
        let head = format!("  {flag}");
        if first.is_empty() || head.len() >= COLUMN {
            out.push(head);
        } else if let Some(text) = rest.next() {
            out.push(format!("{head:<COLUMN$}{text}"));
        }
        out.extend(rest.map(|text| format!("{indent}{text}")));
        i = end;
    }
    out.join("\n")
}

/// `words` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(words: &[&str], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in words {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help() -> String {
        let exit = super::super::parse(&["--help"]).unwrap_err();
        assert!(exit.status.is_ok());
        exit.output
    }

    /// The text of each flag's block in the help, by flag.
    fn blocks(help: &str) -> Vec<(String, String)> {
        let mut blocks: Vec<(String, String)> = Vec::new();
        for line in help.lines() {
            if let Some(flag) = line.strip_prefix("  --") {
                let flag = flag.split_whitespace().next().unwrap_or_default();
                blocks.push((format!("--{flag}"), line.to_string()));
            } else if let (Some(block), true) = (blocks.last_mut(), line.starts_with("    ")) {
                block.1.push(' ');
                block.1.push_str(line.trim());
            }
        }
        blocks
    }

    #[test]
    fn help_shows_every_default_once() {
        let help = help();
        let blocks = blocks(&help);
        assert!(blocks.len() > 30, "{help}");
        for (flag, text) in &blocks {
            let in_words = [
                "--workers",
                "--debug",
                "--relay-public-ip",
                "--http",
                "--metrics",
                "--directory",
                "--directory-ca",
                "--directory-prefix",
                "--directory-max-sessions",
                "--public-address",
                "--region",
                "--control-socket",
                "--takeover",
                "--detach",
                "--version",
                "--help,",
            ];
            let shown = text.matches("(default ").count();
            if in_words.contains(&flag.as_str()) {
                assert_eq!(shown, 0, "{text}");
            } else {
                assert_eq!(shown, 1, "{flag} shows no default, or two:\n{help}");
            }
        }
        let options = help.split_once("Options:").unwrap().1;
        assert!(options.lines().all(|l| l.len() <= WIDTH), "{help}");
        for expected in [
            "(default 7777)",
            "(default 0.0.0.0)",
            "(default rabid-hole-punch.log)",
            "(default 15m)",
            "(default 100ms)",
            "(default batch)",
            "(default auto)",
            "(default 7778-8777)",
            "(default 1h)",
        ] {
            assert!(help.contains(expected), "{expected} in\n{help}");
        }
    }

    #[test]
    fn long_flags_keep_their_text_on_the_next_lines() {
        let help = help();
        let at = help.find("  --error-repeat-interval\n").expect(&help);
        let next = help[at..].lines().nth(1).unwrap();
        assert!(
            next.starts_with(&" ".repeat(COLUMN)) && next.trim_end().ends_with("(default 50ms)"),
            "{help}"
        );
    }
}
