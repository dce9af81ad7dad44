//! The sessions of a shard by name: a small open-addressing index over a dense vector of
//! sessions, built so that a batch of requests can fetch the memory it will touch ahead of time.
//!
//! Why not `std`'s `HashMap`: with a million sessions every lookup misses the CPU caches three
//! times (index, session, players), one after the other, at about 230 ns each on the development
//! VM. A worker is handed up to 32 requests at once, and [`SessionMap::prefetch_sessions`] starts
//! those fetches for the whole batch before any request is handled, so they overlap instead of
//! adding up (README, Performance). `HashMap` has no way to say where a key's bucket lies before
//! looking it up.
//!
//! Layout: `slots` is a power-of-two table of (tag, index) pairs, probed linearly and kept at
//! most half full; `entries` holds the sessions themselves, densely, so nothing is spent on empty
//! buckets. The tag is the low 32 bits of the name's hash (SipHash under a key drawn per process:
//! session names come from clients, who must not be able to pick colliding ones); it also gives
//! the slot, so growing the table never hashes a name again. A removal moves the last entry into
//! the hole and repairs the index by backward shifting, so there are no tombstones.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::name::SessionName;
use super::session::Session;

/// A slot of the index; `index == EMPTY` when free.
#[derive(Clone, Copy, Debug)]
struct Slot {
    tag: u32,
    index: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE: Slot = Slot {
    tag: 0,
    index: EMPTY,
};
/// The smallest index table, once there is anything to index.
const MIN_SLOTS: usize = 16;

/// A session with its name. `repr(C)` keeps the name, the tag and the session's first fields
/// (what a ping reads: see [`Session`]) at the front, within [`HOT_ENTRY_BYTES`].
#[derive(Debug)]
#[repr(C)]
struct Entry {
    name: SessionName,
    tag: u32,
    session: Session,
}

/// The bytes at the front of an [`Entry`] that a lookup and a ping read: up to the end of the
/// session's `start`.
const HOT_ENTRY_BYTES: usize = std::mem::offset_of!(Entry, session)
    + std::mem::offset_of!(Session, start)
    + std::mem::size_of::<Option<super::session::Start>>();

/// Sessions by name. See the [module](self) docs.
#[derive(Debug)]
pub(crate) struct SessionMap {
    keys: RandomState,
    slots: Vec<Slot>,
    entries: Vec<Entry>,
    /// A name whose tag is known already ([`SessionMap::hint_tag`]).
    hint: Option<(SessionName, u32)>,
}

impl SessionMap {
    pub(crate) fn new() -> Self {
        Self {
            keys: RandomState::new(),
            slots: Vec::new(),
            entries: Vec::new(),
            hint: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The tag of `name`: the low bits of its keyed hash.
    pub(crate) fn tag(&self, name: &SessionName) -> u32 {
        match self.hint {
            Some((hinted, tag)) if hinted == *name => tag,
            _ => self.keys.hash_one(name) as u32,
        }
    }

    /// Remembers that `name`'s tag is `tag` (as [`tag`](Self::tag) gave it), so that the
    /// lookups of one request hash its session name once. A wrong hint would lose the session:
    /// only pass what `tag` returned.
    pub(crate) fn hint_tag(&mut self, name: SessionName, tag: u32) {
        debug_assert_eq!(self.keys.hash_one(name) as u32, tag);
        self.hint = Some((name, tag));
    }

    pub(crate) fn clear_hint(&mut self) {
        self.hint = None;
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot position holding `name`, if it is in the map.
    fn find(&self, name: &SessionName, tag: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut pos = tag as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot.index == EMPTY {
                return None;
            }
            if slot.tag == tag && self.entries[slot.index as usize].name == *name {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    fn entry_index(&self, name: &SessionName) -> Option<usize> {
        let pos = self.find(name, self.tag(name))?;
        Some(self.slots[pos].index as usize)
    }

    pub(crate) fn contains_key(&self, name: &SessionName) -> bool {
        self.entry_index(name).is_some()
    }

    pub(crate) fn get(&self, name: &SessionName) -> Option<&Session> {
        let index = self.entry_index(name)?;
        Some(&self.entries[index].session)
    }

    pub(crate) fn get_mut(&mut self, name: &SessionName) -> Option<&mut Session> {
        let index = self.entry_index(name)?;
        Some(&mut self.entries[index].session)
    }

    /// Adds `session` as `name`, or replaces the session of that name and returns it.
    pub(crate) fn insert(&mut self, name: SessionName, session: Session) -> Option<Session> {
        let tag = self.tag(&name);
        if let Some(pos) = self.find(&name, tag) {
            let index = self.slots[pos].index as usize;
            return Some(std::mem::replace(&mut self.entries[index].session, session));
        }
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.rebuild((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let index = self.entries.len() as u32;
        self.entries.push(Entry { name, tag, session });
        self.place(Slot { tag, index });
        None
    }

    /// Puts `slot` in the first free position from its own.
    fn place(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut pos = slot.tag as usize & mask;
        while self.slots[pos].index != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = slot;
    }

    /// Re-indexes every entry into a table of `size` slots (a power of two, more than twice the
    /// entries).
    fn rebuild(&mut self, size: usize) {
        self.slots.clear();
        self.slots.resize(size, FREE);
        for index in 0..self.entries.len() {
            let tag = self.entries[index].tag;
            self.place(Slot {
                tag,
                index: index as u32,
            });
        }
    }

    pub(crate) fn remove(&mut self, name: &SessionName) -> Option<Session> {
        let pos = self.find(name, self.tag(name))?;
        let index = self.slots[pos].index as usize;
        self.vacate(pos);
        let last = self.entries.len() - 1;
        if index != last {
            // The last entry moves into `index`: its slot must say so.
            let moved = self.entries[last].tag;
            let mask = self.mask();
            let mut p = moved as usize & mask;
            while self.slots[p].index != last as u32 {
                p = (p + 1) & mask;
            }
            self.slots[p].index = index as u32;
        }
        let entry = self.entries.swap_remove(index);
        if self.slots.len() > MIN_SLOTS && self.entries.len() * 8 < self.slots.len() {
            // Down to an eighth full: give memory back (a quarter full after).
            self.rebuild(self.slots.len() / 2);
            self.entries.shrink_to(self.slots.len() / 2);
        }
        Some(entry.session)
    }

    /// Frees slot `pos`, moving later slots of the same probe run back so lookups still find
    /// them (backward-shift deletion).
    fn vacate(&mut self, pos: usize) {
        let mask = self.mask();
        let mut hole = pos;
        let mut next = (pos + 1) & mask;
        loop {
            let slot = self.slots[next];
            if slot.index == EMPTY {
                break;
            }
            let home = slot.tag as usize & mask;
            // The slot may fill the hole if the hole lies between its home and where it is.
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = FREE;
    }

    /// Every session with its name, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SessionName, &Session)> {
        self.entries.iter().map(|e| (&e.name, &e.session))
    }

    /// Starts fetching into the cache the slot a lookup of `tag` reads first: step 1 of
    /// prefetching a batch, best issued for each request as soon as its tag is known, so the
    /// fetches overlap with working out the next tags.
    pub(crate) fn prefetch_slot(&self, tag: u32) {
        if let Some(slot) = self.slots.get(tag as usize & self.mask()) {
            prefetch_bytes(slot, std::mem::size_of::<Slot>());
        }
    }

    /// Steps 2 and 3 of prefetching a batch whose slots were asked for: the entries of `tags`,
    /// then their players. Each step waits for nothing but the one before it, so the fetches of
    /// the whole batch overlap instead of adding up. Only a hint: it changes nothing, and a tag
    /// of a name that is not in the map costs a wasted fetch at most. `found` is scratch space,
    /// reused from call to call.
    pub(crate) fn prefetch_sessions(&self, tags: &[u32], found: &mut Vec<u32>) {
        found.clear();
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        for &tag in tags {
            // The first slot of the right tag in the probe run: no name is compared, as the
            // entry is not in the cache yet.
            let mut pos = tag as usize & mask;
            loop {
                let slot = self.slots[pos];
                if slot.index == EMPTY {
                    break;
                }
                if slot.tag == tag {
                    prefetch_bytes(&self.entries[slot.index as usize], HOT_ENTRY_BYTES);
                    found.push(slot.index);
                    break;
                }
                pos = (pos + 1) & mask;
            }
        }
        for &index in found.iter() {
            let players = &self.entries[index as usize].session.players;
            prefetch_bytes(players.as_ptr(), std::mem::size_of_val(players.as_slice()));
        }
    }

    /// The sessions' heap share, for tests of memory use.
    #[cfg(test)]
    fn capacity(&self) -> (usize, usize) {
        (self.slots.len(), self.entries.capacity())
    }
}

/// Cache lines prefetched at most per call: a 12-player session's players span 11.
const MAX_LINES: usize = 12;

/// Asks the CPU to start loading the cache lines that the `len` bytes at `at` span (at least
/// the first). A hint only: it reads nothing and cannot fault.
#[inline]
fn prefetch_bytes<T>(at: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = at as usize & !63;
        let last = (at as usize).saturating_add(len.max(1) - 1) & !63;
        let lines = ((last - first) / 64 + 1).min(MAX_LINES);
        let at = at.cast::<i8>();
        for line in 0..lines {
            let offset = (first + line * 64).wrapping_sub(at as usize);
            // SAFETY: a prefetch is a hint: it does not dereference in the language's sense and
            // does not fault, whatever the address; `wrapping_add` keeps the arithmetic defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (at, len);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::core::session::Player;
    use crate::ip_key::IpKey;

    fn name(i: u32) -> SessionName {
        SessionName::new(&format!("S{i}")).unwrap()
    }

    fn session(id: u32) -> Session {
        Session {
            id,
            created: 0,
            owner: IpKey::from(std::net::IpAddr::from([192, 0, 2, 1])),
            timer_at: 0,
            max_players: 4,
            password: None,
            players: vec![Player {
                name: crate::core::PlayerName::new("P").unwrap(),
                addr: "192.0.2.1:1".parse().unwrap(),
                last_seen: 0,
                confirmed: false,
                relay_port: 0,
            }],
            banned: Vec::new(),
            lobby: None,
            start: None,
        }
    }

    /// Checks the map against `model`: same sessions, every one found, the index consistent.
    fn check(map: &SessionMap, model: &HashMap<SessionName, u32>) {
        assert_eq!(map.len(), model.len());
        for (n, id) in model {
            assert_eq!(map.get(n).map(|s| s.id), Some(*id), "{n}");
        }
        let used = map.slots.iter().filter(|s| s.index != EMPTY).count();
        assert_eq!(used, map.len());
        assert!(map.slots.is_empty() || map.len() * 2 <= map.slots.len());
        for (pos, slot) in map.slots.iter().enumerate() {
            if slot.index != EMPTY {
                let entry = &map.entries[slot.index as usize];
                assert_eq!(entry.tag, slot.tag);
                assert_eq!(map.find(&entry.name, entry.tag), Some(pos));
            }
        }
    }

    #[test]
    fn inserts_finds_replaces_and_removes_like_a_hash_map() {
        let mut map = SessionMap::new();
        let mut model = HashMap::new();
        assert!(map.get(&name(1)).is_none());
        assert!(map.remove(&name(1)).is_none());
        // A fixed pseudo-random walk of inserts and removes over 3 000 names.
        let mut seed = 0x2545_f491_u32;
        for step in 0..60_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = name(seed % 3_000);
            // Insert-heavy first, then remove-heavy, so the table grows and shrinks.
            let insert = (seed >> 20) % 8 < if step < 30_000 { 6 } else { 1 };
            if insert {
                assert_eq!(
                    map.insert(n, session(step)).map(|s| s.id),
                    model.insert(n, step)
                );
            } else {
                assert_eq!(map.remove(&n).map(|s| s.id), model.remove(&n));
            }
            if step % 997 == 0 {
                check(&map, &model);
            }
        }
        check(&map, &model);
        for n in model.keys().copied().collect::<Vec<_>>() {
            assert!(map.remove(&n).is_some());
            model.remove(&n);
        }
        check(&map, &model);
        assert_eq!(map.capacity().0, MIN_SLOTS, "shrank back");
    }

    #[test]
    fn colliding_tags_are_told_apart_by_name() {
        // Force every name onto one tag: the map must still work, by comparing names.
        let mut map = SessionMap::new();
        map.slots.resize(MIN_SLOTS * 4, FREE);
        for i in 0..20 {
            let index = map.entries.len() as u32;
            map.entries.push(Entry {
                name: name(i),
                tag: 7,
                session: session(i),
            });
            map.place(Slot { tag: 7, index });
        }
        for i in 0..20 {
            assert_eq!(map.find(&name(i), 7).map(|p| map.slots[p].index), Some(i));
        }
        // Removing from the middle of the run keeps the rest findable.
        let pos = map.find(&name(5), 7).unwrap();
        map.vacate(pos);
        for i in (0..20).filter(|&i| i != 5) {
            assert!(map.find(&name(i), 7).is_some(), "{i}");
        }
        assert!(map.find(&name(5), 7).is_none());
    }

    #[test]
    fn prefetch_finds_the_entries_of_known_tags_only() {
        let mut map = SessionMap::new();
        let mut found = Vec::new();
        map.prefetch_slot(1);
        map.prefetch_sessions(&[1, 2, 3], &mut found);
        assert!(found.is_empty(), "nothing to find in an empty map");
        for i in 0..100 {
            map.insert(name(i), session(i));
        }
        let tags: Vec<u32> = [3, 50, 99].iter().map(|&i| map.tag(&name(i))).collect();
        let absent = map.tag(&name(1_000));
        map.prefetch_sessions(&[tags[0], absent, tags[1], tags[2]], &mut found);
        let ids: Vec<u32> = found
            .iter()
            .map(|&i| map.entries[i as usize].session.id)
            .collect();
        // A tag of an absent name may still meet another name's equal tag (1 in 2^32 here).
        assert_eq!(ids, [3, 50, 99]);
    }
}
