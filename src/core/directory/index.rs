//! The orders a listing walks, kept so that a walk never skips a lobby it does not show.
//!
//! A [`ClassIndex`] holds some lobbies split four ways by class (a free slot or not, a password
//! or not), each class in both orders (newest first, fullest first). A listing's flag filters
//! pick classes, and a walk merges the picked classes' orders; a scope keeps one such index for
//! all its lobbies and one per version, per mode and per version and mode ([`Slices`]), so a
//! version or mode condition picks an index instead of filtering a walk. The cost of a page is
//! then what it shows, whatever the filters, and a total is a sum of counts: a listing for a
//! version nobody has costs as little as any other.

use std::collections::{BTreeSet, HashMap};
use std::iter::Peekable;

use rabid_wire::lobby::{Cursor, Order};

/// The place of a lobby in one order: `(0, seq)` newest first, `(players, seq)` fullest first;
/// both walked from the largest down.
pub(super) type Key = (u8, u64);

/// Some lobbies, by class and in both orders. A class is `free | no_password << 1`.
#[derive(Debug, Default)]
pub(super) struct ClassIndex {
    newest: [BTreeSet<u64>; 4],
    fullest: [BTreeSet<Key>; 4],
}

impl ClassIndex {
    pub(super) fn insert(&mut self, class: usize, players: u8, seq: u64) {
        self.newest[class].insert(seq);
        self.fullest[class].insert((players, seq));
    }

    pub(super) fn remove(&mut self, class: usize, players: u8, seq: u64) {
        self.newest[class].remove(&seq);
        self.fullest[class].remove(&(players, seq));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.newest.iter().all(BTreeSet::is_empty)
    }

    /// How many lobbies the classes `classes` hold.
    pub(super) fn count(&self, classes: &[usize]) -> usize {
        classes.iter().map(|&c| self.newest[c].len()).sum()
    }

    /// The lobbies of `classes` after `from` in `order`, as `seq`s.
    pub(super) fn walk<'a>(
        &'a self,
        classes: &[usize],
        order: Order,
        from: Cursor,
    ) -> impl Iterator<Item = u64> + 'a {
        let runs: Vec<Peekable<Run<'a>>> = classes
            .iter()
            .map(|&c| -> Run<'a> {
                match order {
                    Order::Newest => {
                        Box::new(self.newest[c].range(..from.seq).rev().map(|&s| (0, s)))
                    }
                    Order::Fullest => Box::new(
                        self.fullest[c]
                            .range(..(from.players, from.seq))
                            .rev()
                            .copied(),
                    ),
                }
            })
            .map(Iterator::peekable)
            .collect();
        Merge { runs }.map(|(_, seq)| seq)
    }
}

type Run<'a> = Box<dyn Iterator<Item = Key> + 'a>;

/// Several descending runs merged into one descending run (at most four: one per class).
struct Merge<'a> {
    runs: Vec<Peekable<Run<'a>>>,
}

impl Iterator for Merge<'_> {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let mut best: Option<(usize, Key)> = None;
        for (i, run) in self.runs.iter_mut().enumerate() {
            if let Some(&key) = run.peek() {
                if best.is_none_or(|(_, b)| key > b) {
                    best = Some((i, key));
                }
            }
        }
        let (i, _) = best?;
        self.runs[i].next()
    }
}

/// The classes a listing's flags keep.
pub(super) fn classes(free_only: bool, open_only: bool) -> Vec<usize> {
    (0..4)
        .filter(|c| (!free_only || c & 1 == 1) && (!open_only || c & 2 == 2))
        .collect()
}

/// One scope's lobbies: all of them, and sliced by version, by mode and by both.
#[derive(Debug, Default)]
pub(super) struct Slices {
    all: ClassIndex,
    by_version: HashMap<String, ClassIndex>,
    by_mode: HashMap<String, ClassIndex>,
    by_both: HashMap<(String, String), ClassIndex>,
}

impl Slices {
    /// Puts a lobby of `version` and `mode` in every slice it belongs to.
    pub(super) fn insert(
        &mut self,
        version: &str,
        mode: &str,
        class: usize,
        players: u8,
        seq: u64,
    ) {
        self.all.insert(class, players, seq);
        self.by_version
            .entry(version.to_string())
            .or_default()
            .insert(class, players, seq);
        self.by_mode
            .entry(mode.to_string())
            .or_default()
            .insert(class, players, seq);
        self.by_both
            .entry((version.to_string(), mode.to_string()))
            .or_default()
            .insert(class, players, seq);
    }

    /// Undoes [`insert`](Self::insert), dropping slices left empty.
    pub(super) fn remove(
        &mut self,
        version: &str,
        mode: &str,
        class: usize,
        players: u8,
        seq: u64,
    ) {
        self.all.remove(class, players, seq);
        fn take<K: std::hash::Hash + Eq>(
            map: &mut HashMap<K, ClassIndex>,
            key: &K,
            (class, players, seq): (usize, u8, u64),
        ) {
            if let Some(index) = map.get_mut(key) {
                index.remove(class, players, seq);
                if index.is_empty() {
                    map.remove(key);
                }
            }
        }
        let at = (class, players, seq);
        take(&mut self.by_version, &version.to_string(), at);
        take(&mut self.by_mode, &mode.to_string(), at);
        take(
            &mut self.by_both,
            &(version.to_string(), mode.to_string()),
            at,
        );
    }

    pub(super) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The index of the lobbies of exactly `version` and `mode` (either `None` for any); `None`
    /// when there is none.
    pub(super) fn slice(&self, version: Option<&str>, mode: Option<&str>) -> Option<&ClassIndex> {
        match (version, mode) {
            (None, None) => Some(&self.all),
            (Some(v), None) => self.by_version.get(v),
            (None, Some(d)) => self.by_mode.get(d),
            (Some(v), Some(d)) => self.by_both.get(&(v.to_string(), d.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Cursor = Cursor {
        players: u8::MAX,
        seq: u64::MAX,
    };

    #[test]
    fn a_walk_merges_the_classes_in_order() {
        let mut index = ClassIndex::default();
        // seq: players, class
        for (seq, players, class) in [(1, 2, 0), (2, 4, 1), (3, 1, 3), (4, 3, 2), (5, 4, 3)] {
            index.insert(class, players, seq);
        }
        let all = classes(false, false);
        let newest: Vec<u64> = index.walk(&all, Order::Newest, START).collect();
        assert_eq!(newest, [5, 4, 3, 2, 1]);
        let fullest: Vec<u64> = index.walk(&all, Order::Fullest, START).collect();
        assert_eq!(fullest, [5, 2, 4, 1, 3]);
        let free: Vec<u64> = index
            .walk(&classes(true, false), Order::Newest, START)
            .collect();
        assert_eq!(free, [5, 3, 2]);
        let from = Cursor { players: 4, seq: 2 };
        let rest: Vec<u64> = index.walk(&all, Order::Fullest, from).collect();
        assert_eq!(rest, [4, 1, 3]);
        assert_eq!(index.count(&classes(true, true)), 2);
    }

    #[test]
    fn slices_hold_each_lobby_once_each_and_vanish_empty() {
        let mut s = Slices::default();
        s.insert("1.0", "Draft", 3, 2, 1);
        s.insert("1.0", "Duel", 3, 2, 2);
        s.insert("2.0", "Draft", 1, 1, 3);
        let count = |s: &Slices, v, d| s.slice(v, d).map_or(0, |i| i.count(&classes(false, false)));
        assert_eq!(count(&s, None, None), 3);
        assert_eq!(count(&s, Some("1.0"), None), 2);
        assert_eq!(count(&s, None, Some("Draft")), 2);
        assert_eq!(count(&s, Some("2.0"), Some("Draft")), 1);
        assert_eq!(count(&s, Some("2.0"), Some("Duel")), 0);
        s.remove("2.0", "Draft", 1, 1, 3);
        assert!(!s.by_version.contains_key("2.0") && s.by_both.len() == 2);
        s.remove("1.0", "Draft", 3, 2, 1);
        s.remove("1.0", "Duel", 3, 2, 2);
        assert!(s.is_empty() && s.by_mode.is_empty());
    }
}
