//! One shard of the model store: the committed models of a share of the series in a slab,
//! indexed by key, bounded by a capacity with least-recently-used eviction.
//!
//! Built for the write path's access pattern: every modeled series is looked up once while a
//! request is built and written back once when the request commits. So a lookup returns the
//! slot it found, and the commit goes straight to that slot (checking it still holds the
//! key) instead of hashing again. Hits promote lazily, as in the route cache: relinking an
//! entry on every hit costs cache misses on its neighbours, so a hit moves an entry to the
//! front only once it has drifted into the older half of the recency order (judged by a
//! stamp). An entry moved to the front within the last `capacity / 2` moves is in the newer
//! half of the list, so it is never the one evicted; eviction stays least-recently-used in
//! effect, and the bound is exact.

use crate::idhash::{prefetch, IdMap};
use crate::model::Model;
use crate::recency::{Linked, Links, Recency, NIL};

/// `prev` of a slot that holds nothing (on the free list).
const FREE: u32 = u32::MAX - 1;

/// A stored model and the rule it was built for.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The committed state.
    pub model: Model,
    /// Index of the rule the model was built under (a model of another rule restarts).
    pub rule: u16,
}

/// One slab slot: the entry's fields side by side with the key and the list links (168
/// bytes, the model's 144 included; checked by a test).
struct Slot {
    model: Model,
    key: u64,
    /// The tick at which this slot was last moved to the front.
    stamp: u32,
    /// Neighbours in the recency list; `prev` is [`FREE`] for a slot on the free list.
    links: Links,
    rule: u16,
}

impl Linked for Slot {
    fn links(&self) -> Links {
        self.links
    }
    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// A bounded store of models with lazily promoted least-recently-used eviction.
pub struct Store {
    index: IdMap<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    list: Recency,
    /// Counts moves to the front.
    tick: u32,
    half: u32,
    capacity: usize,
}

impl Store {
    /// An empty store holding at most `capacity` (≥ 1) models.
    pub fn new(capacity: usize) -> Store {
        let capacity = capacity.clamp(1, FREE as usize);
        Store {
            index: IdMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            list: Recency::EMPTY,
            tick: 0,
            half: u32::try_from(capacity / 2).unwrap_or(u32::MAX),
            capacity,
        }
    }

    /// Models held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The slot and a copy of the model stored for `key`, marking it used.
    pub fn get(&mut self, key: u64) -> Option<(u32, Entry)> {
        let s = *self.index.get(key)?;
        Some(self.take(s))
    }

    /// Asks the CPU to fetch the index bucket of `key` (see [`IdMap::prefetch`]).
    pub fn prefetch(&self, key: u64) {
        self.index.prefetch(key);
    }

    /// Asks the CPU to fetch the slot `hint` (from an earlier [`Store::get`]) if it is one,
    /// else the index bucket of `key`: what [`Store::find`] reads first.
    pub fn prefetch_slot(&self, key: u64, hint: Option<u32>) {
        match hint.and_then(|s| self.slots.get(s as usize)) {
            Some(slot) => prefetch(slot),
            None => self.index.prefetch(key),
        }
    }

    /// Asks the CPU to fetch the slot holding `key` (its index bucket is read, so it should
    /// be in cache already: see [`Store::prefetch`]).
    pub fn prefetch_model(&self, key: u64) {
        if let Some(&s) = self.index.get(key) {
            prefetch(&self.slots[s as usize]);
        }
    }

    fn take(&mut self, s: u32) -> (u32, Entry) {
        if self.tick.wrapping_sub(self.slots[s as usize].stamp) > self.half {
            self.list.unlink(&mut self.slots, s);
            self.link_front(s);
        }
        let slot = &self.slots[s as usize];
        (
            s,
            Entry {
                model: slot.model,
                rule: slot.rule,
            },
        )
    }

    /// The slot holding `key`: `hint` (a slot an earlier [`Store::get`] returned) if it still
    /// does, else whatever the index says. Does not mark it used.
    pub fn find(&self, key: u64, hint: Option<u32>) -> Option<u32> {
        match hint {
            Some(s) if self.holds(s, key) => Some(s),
            _ => self.index.get(key).copied(),
        }
    }

    /// The model in slot `s` (found by [`Store::find`]).
    pub fn model(&self, s: u32) -> &Model {
        &self.slots[s as usize].model
    }

    /// Replaces the entry in slot `s` (found by [`Store::find`]) without moving it.
    pub fn set(&mut self, s: u32, entry: Entry) {
        let slot = &mut self.slots[s as usize];
        slot.model = entry.model;
        slot.rule = entry.rule;
    }

    /// Stores `entry` for `key` as the most recently used. Returns the key of the model evicted
    /// to make room, if the store was full (never `key` itself: an existing entry is replaced).
    pub fn push(&mut self, key: u64, entry: Entry) -> Option<u64> {
        if let Some(&s) = self.index.get(key) {
            self.set(s, entry);
            self.list.unlink(&mut self.slots, s);
            self.link_front(s);
            return None;
        }
        let mut evicted = None;
        let s = if self.index.len() >= self.capacity {
            let s = self.list.tail;
            self.list.unlink(&mut self.slots, s);
            let old = self.slots[s as usize].key;
            self.index.remove(old);
            evicted = Some(old);
            s
        } else if let Some(s) = self.free.pop() {
            s
        } else {
            self.slots.push(Slot {
                model: entry.model,
                key,
                stamp: 0,
                links: Links {
                    prev: FREE,
                    next: NIL,
                },
                rule: entry.rule,
            });
            (self.slots.len() - 1) as u32
        };
        let slot = &mut self.slots[s as usize];
        slot.key = key;
        slot.model = entry.model;
        slot.rule = entry.rule;
        self.link_front(s);
        self.index.insert(key, s);
        evicted
    }

    /// Drops every model for which `keep` is false. Returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let mut dropped = 0;
        let mut s = self.list.head;
        while s != NIL {
            let slot = &self.slots[s as usize];
            let next = slot.links.next;
            let entry = Entry {
                model: slot.model,
                rule: slot.rule,
            };
            if !keep(&entry) {
                let key = slot.key;
                self.list.unlink(&mut self.slots, s);
                self.slots[s as usize].links.prev = FREE;
                self.index.remove(key);
                self.free.push(s);
                dropped += 1;
            }
            s = next;
        }
        dropped
    }

    /// Every (key, entry), least recently used first.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        let mut s = self.list.tail;
        std::iter::from_fn(move || {
            if s == NIL {
                return None;
            }
            let slot = &self.slots[s as usize];
            s = slot.links.prev;
            Some((
                slot.key,
                Entry {
                    model: slot.model,
                    rule: slot.rule,
                },
            ))
        })
    }

    /// Drops every model and releases the memory.
    pub fn clear(&mut self) {
        *self = Store::new(self.capacity);
    }

    fn holds(&self, s: u32, key: u64) -> bool {
        self.slots
            .get(s as usize)
            .is_some_and(|slot| slot.key == key && slot.links.prev != FREE)
    }

    /// Puts slot `s` at the front, stamped with the next tick.
    fn link_front(&mut self, s: u32) {
        self.tick = self.tick.wrapping_add(1);
        self.slots[s as usize].stamp = self.tick;
        self.list.link_front(&mut self.slots, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn a_slot_is_the_model_and_24_bytes() {
        // The README's memory figures (bench/model_rss.sh) are explained by this size.
        assert_eq!(
            std::mem::size_of::<Slot>(),
            std::mem::size_of::<Model>() + 24
        );
        assert_eq!(std::mem::size_of::<Slot>(), 168);
    }

    fn entry(rule: u16) -> Entry {
        Entry {
            model: Model::new(Kind::Gauge),
            rule,
        }
    }

    fn keys(store: &Store) -> Vec<u64> {
        store.iter_oldest_first().map(|(k, _)| k).collect()
    }

    #[test]
    fn bound_and_evictions_are_exact() {
        let mut store = Store::new(8);
        let evicted: Vec<u64> = (0..20u64).filter_map(|k| store.push(k, entry(0))).collect();
        assert_eq!(store.len(), 8);
        assert_eq!(
            evicted,
            (0..12).collect::<Vec<_>>(),
            "oldest first, one per push"
        );
        assert_eq!(keys(&store), (12..20).collect::<Vec<_>>());
        // Replacing an existing key evicts nothing.
        assert_eq!(store.push(15, entry(3)), None);
        assert_eq!(store.len(), 8);
        assert_eq!(store.get(15).map(|(_, e)| e.rule), Some(3));
    }

    #[test]
    fn hot_entries_survive_and_cold_ones_go() {
        let mut store = Store::new(8);
        store.push(1, entry(0)); // hot
        store.push(2, entry(0)); // cold
        for k in 100..1000u64 {
            store.push(k, entry(0));
            assert!(store.get(1).is_some(), "the hot model is kept after {k}");
            assert_eq!(store.len(), 8.min(k as usize - 97));
        }
        assert!(store.get(2).is_none(), "the cold model was evicted");
    }

    #[test]
    fn a_slot_found_by_get_is_checked_before_reuse() {
        let mut store = Store::new(2);
        store.push(1, entry(0));
        let (s, _) = store.get(1).expect("stored");
        assert_eq!(store.find(1, Some(s)), Some(s));
        // Key 1 is evicted and its slot reused by key 3: the hint no longer holds.
        store.push(2, entry(0));
        store.push(3, entry(0));
        assert_eq!(store.find(1, Some(s)), None);
        assert_eq!(store.find(3, Some(s)), Some(s));
        // Key 1 comes back in another slot: found through the index.
        store.push(1, entry(7));
        let s1 = store.find(1, Some(s)).expect("back");
        assert_ne!(s1, s);
        store.set(s1, entry(9));
        assert_eq!(store.get(1).map(|(_, e)| e.rule), Some(9));
    }

    #[test]
    fn retain_frees_slots_for_reuse() {
        let mut store = Store::new(4);
        for k in 0..4u64 {
            store.push(k, entry(k as u16));
        }
        let (s2, _) = store.get(2).expect("stored");
        assert_eq!(store.retain(|e| e.rule % 2 == 1), 2);
        assert_eq!(keys(&store), vec![1, 3]);
        assert_eq!(store.find(2, Some(s2)), None, "a freed slot holds nothing");
        assert_eq!(store.push(10, entry(0)), None);
        assert_eq!(store.push(11, entry(0)), None);
        assert_eq!(store.len(), 4);
        assert_eq!(
            store.push(12, entry(0)),
            Some(1),
            "full again: the oldest goes"
        );
        store.clear();
        assert_eq!(store.len(), 0);
        assert!(store.get(3).is_none());
    }
}
