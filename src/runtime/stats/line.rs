//! The stats line (every `--stats-interval` and at shutdown): [`Totals`] as text, its figures
//! placed by the tables' `line` column.
//!
//! ```text
//! sessions=3 players=7 in=120dg/3000B ... handling=1.2us/request drops: budget=0 ...
//! relay: in=40dg/1200B sessions=1 ... forwarded=38dg/1100B dropped: too_big=0 ...
//! ```
//!
//! `scripts/nat-lab.sh` and `tests/nat_lab.rs` read the part after ` relay: ` as
//! `key=NUMBER...` pairs, so keys stay unique within the relay part.

use std::fmt;

use super::table::{Line, Section};
use super::Totals;

/// The heading that opens a section.
fn heading(section: Section) -> &'static str {
    match section {
        Section::Main => "",
        Section::Drops => " drops:",
        Section::Relay => " relay:",
        Section::RelayDrops => " dropped:",
        Section::RelayAuto => " auto:",
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for section in Section::ALL {
            out.push_str(heading(section));
            // Whether the row before was written, for a `Then` row.
            let mut shown = false;
            for figure in self.figures() {
                match *figure.line {
                    Line::Key {
                        section: s,
                        key,
                        unit,
                    } => {
                        shown = s == section;
                        if shown {
                            out.push_str(&format!(" {key}={}{unit}", figure.value));
                        }
                    }
                    Line::Then { unit } if shown => {
                        out.push_str(&format!("/{}{unit}", figure.value))
                    }
                    Line::Then { .. } | Line::Hidden => shown = false,
                }
            }
            if section == Section::Main {
                out.push_str(&format!(
                    " handling={:.1}us/request",
                    self.mean_handling_us()
                ));
            }
        }
        f.write_str(out.trim_start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_placed_by_their_rows() {
        let mut t = Totals::default();
        t.runtime.datagrams_in = 5;
        t.runtime.bytes_in = 300;
        t.shard.players_kicked = 2;
        t.shard.hosts_refused_by_cap = 4;
        t.relay.datagrams = 6;
        t.relay.bytes = 700;
        t.relay.ports_in_use = 2;
        t.relay.ports_total = 8;
        t.relay.dropped_budget = 1;
        let line = t.to_string();
        assert!(
            line.starts_with("sessions=0 players=0 in=5dg/300B out=0dg/0B "),
            "{line}"
        );
        for part in [
            " kicked=2 ",
            " handling=0.0us/request drops: ",
            " session_cap=4 ",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let (general, relay) = line.split_once(" relay: ").unwrap();
        assert!(!general.contains("forwarded"), "{line}");
        for part in ["forwarded=6dg/700B", "ports=2/8", "dropped: ", "budget=1"] {
            assert!(relay.contains(part), "{part} in {line}");
        }
    }
}
