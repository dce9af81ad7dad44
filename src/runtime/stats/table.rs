//! What a row of a counter table says: how to read and write one figure in its set's struct,
//! and how it is published (its Prometheus metric, its place in the stats line).
//!
//! The tables themselves are in [`sets`](super::sets). This module only has the shapes of a
//! row, so that the stats line (`line.rs`) and the metrics encoder
//! (`crate::metrics`) read every figure the same way, from one declaration.

/// One figure of a counter set `S` (a struct of `u64` fields such as
/// [`ShardStats`](crate::core::ShardStats)): one row of its table.
#[derive(Debug)]
pub struct Figure<S> {
    /// The field's name: the tests check that every field of `S` has exactly one row.
    pub field: &'static str,
    pub get: fn(&S) -> u64,
    pub set: fn(&mut S, u64),
    pub metric: Metric,
    pub line: Line,
}

/// One row of a table: `figure!(field, metric, line)` for a field of the table's struct.
macro_rules! figure {
    ($field:ident, $metric:expr, $line:expr $(,)?) => {
        $crate::runtime::stats::table::Figure {
            field: stringify!($field),
            get: |s| s.$field,
            set: |s, v| s.$field = v,
            metric: $metric,
            line: $line,
        }
    };
}
pub(crate) use figure;

/// Whether a metric only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exported as `NAME_total`.
    Counter,
    Gauge,
}

/// How a figure is exported at `/metrics`.
#[derive(Debug)]
pub enum Metric {
    /// A metric of its own, without labels.
    Single {
        /// The full name, without the `_total` that the encoder adds to counters.
        name: &'static str,
        kind: Kind,
        help: &'static str,
    },
    /// One series of a metric with one label: `family.name{family.label="value"}`. The
    /// family's help is its own text followed by every series' `value (help)`.
    Series {
        family: &'static Family,
        value: &'static str,
        help: &'static str,
    },
}

/// A metric whose series are figures of their own, possibly from several sets (the drops are
/// counted by the receiver, the workers and the shards).
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub label: &'static str,
    pub help: &'static str,
}

/// A counter of its own: `rabid_punch_..._total`.
pub const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric::Single {
        name,
        kind: Kind::Counter,
        help,
    }
}

/// A gauge of its own.
pub const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric::Single {
        name,
        kind: Kind::Gauge,
        help,
    }
}

/// The series `value` of `family`; `help` says what it counts.
pub const fn series(family: &'static Family, value: &'static str, help: &'static str) -> Metric {
    Metric::Series {
        family,
        value,
        help,
    }
}

/// The parts of the stats line, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// Sessions, players, traffic.
    Main,
    /// After `drops:`.
    Drops,
    /// After `relay:`.
    Relay,
    /// After the relay's `dropped:`.
    RelayDrops,
    /// After `auto:`: the `--relay auto` decisions.
    RelayAuto,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Main,
        Section::Drops,
        Section::Relay,
        Section::RelayDrops,
        Section::RelayAuto,
    ];
}

/// Where a figure appears in the stats line.
#[derive(Debug)]
pub enum Line {
    /// Not in the stats line.
    Hidden,
    /// ` key=VALUEunit`, in a section.
    Key {
        section: Section,
        key: &'static str,
        unit: &'static str,
    },
    /// `/VALUEunit` right after the figure of the row before, e.g. the bytes of `in=5dg/300B`.
    Then { unit: &'static str },
}

/// ` key=VALUE` in `section`.
pub const fn key(section: Section, key: &'static str) -> Line {
    Line::Key {
        section,
        key,
        unit: "",
    }
}

/// ` key=VALUEunit` in `section`.
pub const fn key_in(section: Section, key: &'static str, unit: &'static str) -> Line {
    Line::Key { section, key, unit }
}

/// `/VALUEunit` after the row before.
pub const fn then(unit: &'static str) -> Line {
    Line::Then { unit }
}

/// Not in the stats line.
pub const HIDDEN: Line = Line::Hidden;
