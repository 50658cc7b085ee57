//! Maps whose keys are already 64-bit hashes (label-set and series keys from xxh3): a
//! pass-through hasher for `HashMap` (hashing them again, with SipHash by default, would only
//! cost time), and [`IdMap`], the open-addressing table of the per-series hot path.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a `u64` key to itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used with this hasher; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The `BuildHasher` for [`IdHasher`].
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;

/// Shards of the per-series tables (route cache, model store, fit histories), each behind
/// its own lock.
pub const SHARDS: usize = 16;

/// The shard of a key (or series hash): middle bits, independent of the bucket an
/// [`IdMap`] puts the key in within the shard.
#[inline]
pub fn shard_of(key: u64) -> usize {
    (key >> 32) as usize % SHARDS
}

/// A batch of (index, key) pairs grouped by shard, in their order within a shard (a
/// counting sort), so a caller locks each shard once per batch. Reusable across batches.
#[derive(Debug, Default)]
pub struct ShardOrder {
    order: Vec<u32>,
    ends: [usize; SHARDS],
}

impl ShardOrder {
    /// Groups `items` (an index of the caller's and the key it looks up) by shard.
    pub fn sort(&mut self, items: impl Iterator<Item = (u32, u64)> + Clone) {
        let mut next = [0usize; SHARDS];
        for (_, key) in items.clone() {
            next[shard_of(key)] += 1;
        }
        let mut end = 0;
        for (next, shard_end) in next.iter_mut().zip(&mut self.ends) {
            let count = *next;
            *next = end;
            end += count;
            *shard_end = end;
        }
        self.order.clear();
        self.order.resize(end, 0);
        for (i, key) in items {
            let s = shard_of(key);
            self.order[next[s]] = i;
            next[s] += 1;
        }
    }

    /// Each shard with items and those items' indices, in shard order.
    pub fn runs(&self) -> impl Iterator<Item = (usize, &[u32])> + '_ {
        (0..SHARDS).filter_map(move |s| {
            let start = if s == 0 { 0 } else { self.ends[s - 1] };
            let run = &self.order[start..self.ends[s]];
            (!run.is_empty()).then_some((s, run))
        })
    }
}

/// An open-addressing map from 64-bit hashes to small `Copy` values, for the tables the
/// write path probes once per series (route cache, model store, fit histories).
///
/// Unlike `HashMap`, it can [`prefetch`](IdMap::prefetch) the bucket a key lives in, so a
/// caller that knows the keys of many series ahead (a chunk of a request) issues all their
/// cache misses at once instead of one after another. Key and value sit side by side in
/// one bucket (linear probing), so a hit costs one cache line where a `HashMap` touches
/// its control bytes and its bucket apart. Keys are hashes already; the bucket is the top
/// bits of the key times a constant (Fibonacci hashing), so keys sharing low or high bits
/// still spread. The load stays at most 3/4; removal shifts followers back (no tombstones).
pub struct IdMap<V> {
    buckets: Vec<Bucket<V>>,
    /// Number of keys held, key 0 included.
    len: usize,
    /// log2 of `buckets.len()`; 0 while nothing is allocated.
    bits: u32,
    /// The value of key 0, which marks an empty bucket and so is kept apart.
    zero: Option<V>,
}

#[derive(Clone, Copy)]
struct Bucket<V> {
    key: u64,
    value: V,
}

const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

impl<V: Copy + Default> Default for IdMap<V> {
    fn default() -> Self {
        IdMap::new()
    }
}

impl<V: Copy + Default> IdMap<V> {
    /// An empty map (allocates on the first insertion).
    pub fn new() -> IdMap<V> {
        IdMap {
            buckets: Vec::new(),
            len: 0,
            bits: 0,
            zero: None,
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated for the buckets.
    pub fn allocated_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket<V>>()
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(FIBONACCI) >> (64 - self.bits)) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// Asks the CPU to bring the bucket of `key` into cache, without waiting for it: a
    /// lookup of `key` soon after finds it there. A hint only; never faults.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        if key != 0 && !self.buckets.is_empty() {
            prefetch(&self.buckets[self.home(key)]);
        }
    }

    /// Where `key` is, or the empty bucket where it would go.
    #[inline]
    fn find(&self, key: u64) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let k = self.buckets[i].key;
            if k == key {
                return (i, true);
            }
            if k == 0 {
                return (i, false);
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<&V> {
        if key == 0 {
            return self.zero.as_ref();
        }
        if self.buckets.is_empty() {
            return None;
        }
        match self.find(key) {
            (i, true) => Some(&self.buckets[i].value),
            _ => None,
        }
    }

    /// The value of `key`, to change in place.
    #[inline]
    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if key == 0 {
            return self.zero.as_mut();
        }
        if self.buckets.is_empty() {
            return None;
        }
        match self.find(key) {
            (i, true) => Some(&mut self.buckets[i].value),
            _ => None,
        }
    }

    /// Sets the value of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        if key == 0 {
            let old = self.zero.replace(value);
            if old.is_none() {
                self.len += 1;
            }
            return old;
        }
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
        }
        match self.find(key) {
            (i, true) => Some(std::mem::replace(&mut self.buckets[i].value, value)),
            (i, false) => {
                self.buckets[i] = Bucket { key, value };
                self.len += 1;
                None
            }
        }
    }

    /// Removes every key, keeping the buckets allocated.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.buckets.iter_mut().for_each(|b| b.key = 0);
        }
        self.len = 0;
        self.zero = None;
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        if key == 0 {
            let old = self.zero.take();
            if old.is_some() {
                self.len -= 1;
            }
            return old;
        }
        if self.buckets.is_empty() {
            return None;
        }
        let (mut hole, true) = self.find(key) else {
            return None;
        };
        let value = self.buckets[hole].value;
        self.len -= 1;
        // Shift back every follower of the run whose home is not between the hole and it.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.buckets[j].key;
            if k == 0 {
                break;
            }
            let home = self.home(k);
            // `k` may move to the hole unless its home lies cyclically in (hole, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.buckets[hole] = self.buckets[j];
                hole = j;
            }
        }
        self.buckets[hole].key = 0;
        Some(value)
    }

    fn grow(&mut self) {
        let bits = if self.buckets.is_empty() {
            4
        } else {
            self.bits + 1
        };
        let empty = Bucket {
            key: 0,
            value: V::default(),
        };
        let old = std::mem::replace(&mut self.buckets, vec![empty; 1 << bits]);
        self.bits = bits;
        let mask = self.mask();
        for b in old.into_iter().filter(|b| b.key != 0) {
            let mut i = self.home(b.key);
            while self.buckets[i].key != 0 {
                i = (i + 1) & mask;
            }
            self.buckets[i] = b;
        }
    }
}

/// Asks the CPU to bring the cache lines of `r` in, without waiting (a hint; no effect on
/// targets without a stable prefetch instruction).
#[inline]
pub fn prefetch<T>(r: &T) {
    let start = (r as *const T).cast::<u8>();
    // Every 64-byte line the object touches, from the one its first byte is in.
    let lines = ((start as usize % 64) + std::mem::size_of::<T>().max(1)).div_ceil(64);
    for line in 0..lines {
        prefetch_line(start.wrapping_add(line * 64));
    }
}

#[inline]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no architectural effect and never faults.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so removals and re-insertions hit; 0 and colliding homes too.
        let key = prop_oneof![0u64..64, Just(0u64), any::<u64>()];
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key.clone().prop_map(Op::Remove),
            key.prop_map(Op::Get),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..400)) {
            let mut map = IdMap::<u32>::new();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(map.get(k), model.get(&k)),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(map.get(*k), Some(v));
            }
        }
    }

    #[test]
    fn shard_order_groups_and_keeps_order() {
        let keys: Vec<u64> = (0..100u64).map(|i| i.wrapping_mul(FIBONACCI)).collect();
        let mut order = ShardOrder::default();
        order.sort(keys.iter().enumerate().map(|(i, &k)| (i as u32 * 2, k)));
        let mut seen = Vec::new();
        let mut last_shard = None;
        for (shard, run) in order.runs() {
            assert!(last_shard < Some(shard), "shards in order, each once");
            last_shard = Some(shard);
            assert!(
                run.windows(2).all(|w| w[0] < w[1]),
                "order kept within a shard"
            );
            for &i in run {
                assert_eq!(shard_of(keys[i as usize / 2]), shard);
                seen.push(i);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        order.sort(std::iter::empty());
        assert_eq!(order.runs().count(), 0);
    }

    #[test]
    fn removal_keeps_every_other_key_reachable() {
        // Keys with the same home bucket form one run; removing from its middle must not
        // cut the run for the keys after it, including runs that wrap around the end.
        let mut map = IdMap::<u64>::new();
        let mut keys = Vec::new();
        let mut k = 1u64;
        while keys.len() < 10 {
            map.insert(k, k);
            keys.push(k);
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        let probe = IdMap::<u64> {
            bits: map.bits,
            ..IdMap::new()
        };
        let home = probe.home(keys[0]);
        let same: Vec<u64> = (1..200_000u64)
            .filter(|&k| probe.home(k) == home && !keys.contains(&k))
            .take(3)
            .collect();
        for &k in &same {
            map.insert(k, k);
        }
        for (n, &k) in keys.iter().chain(&same).enumerate() {
            assert_eq!(map.remove(k), Some(k), "key {n}");
            for &other in keys.iter().chain(&same).skip(n + 1) {
                assert_eq!(map.get(other), Some(&other), "after removing key {n}");
            }
        }
        assert!(map.is_empty());
    }
}
