//! A cache of keys' latest committed values, in front of RocksDB's point
//! reads.
//!
//! A RocksDB read walks the memtable's skiplist before the table files;
//! after a burst of updates that skiplist holds hundreds of thousands of
//! versions, and each read pays a cache miss per level of it (a fifth of
//! a point query's cycles, profiled). Here a key's value sits in a hash
//! map together with the sequence number from which it is valid: every
//! snapshot at or after that sequence sees exactly that value.
//!
//! Correctness rests on writes announcing themselves. Every batch, before
//! it is written, marks each key it writes as being written (which hides
//! the key's cached value), and after the write records its last sequence
//! number on the key and, if it wrote the key's newest version, the value
//! it wrote. A reader fills in a value it read at snapshot `seq` only when
//! no write of the key is in flight and none is newer than `seq`. Keys
//! the map no longer holds (evicted, or never seen since the engine
//! opened) are covered by one bound per shard: every write of such a key
//! has a sequence number at or below it.
//!
//! A batch too large to mark key by key (COPY, a table rewrite, a
//! secondary's burst of replayed commits) instead bumps a generation
//! before and after its write, which makes every entry stale at once, and
//! raises a bound that covers all keys: no walk over the map.

use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::batch::header_count;
use crate::batch_format;

const SHARDS: usize = 64;
/// Bytes of keys and values a shard holds before it evicts (32 MiB in all).
const SHARD_BUDGET: usize = 512 << 10;
/// What an entry costs beyond its key and value (map slot, allocations).
const ENTRY_OVERHEAD: usize = 64;
/// Larger values are read from RocksDB every time.
const MAX_VALUE: usize = 4 << 10;
/// A batch with more entries than this is a bulk write (see above).
const MAX_MARKED_KEYS: usize = 256;

pub(crate) struct RowCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Bulk writes in flight: while any is, nothing is trusted or filled.
    bulk_writers: AtomicU32,
    /// Bumped as a bulk write starts and as it ends: entries of another
    /// generation are stale (treated as absent).
    generation: AtomicU64,
    /// Every bulk write, of any key, has a sequence number at or below this.
    bulk_high: AtomicU64,
}

struct Shard {
    entries: HashMap<Vec<u8>, Entry>,
    bytes: usize,
    /// Every write of a key not in `entries` (by a batch that marked its
    /// keys) has a sequence number at or below this.
    untracked_high: u64,
}

struct Entry {
    /// Batches writing the key now. An entry with writers is never evicted.
    writers: u32,
    /// At or above the sequence number of the key's newest marked write.
    last_write: u64,
    /// The key's value from `last_write` on, when known.
    value: Option<Option<Vec<u8>>>,
    generation: u64,
}

/// What a batch marked before its write, to be finished by
/// [`RowCache::end_write`].
pub(crate) enum RowWrite {
    /// The keys written and the last value each is given.
    Keys(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Bulk,
}

impl RowCache {
    /// A cache for a database whose last sequence number is `latest`.
    pub(crate) fn new(latest: u64) -> RowCache {
        RowCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        bytes: 0,
                        untracked_high: latest,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            bulk_writers: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            bulk_high: AtomicU64::new(latest),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key's value as a snapshot at `seq` sees it, if cached
    /// (`u64::MAX`: the latest committed value).
    pub(crate) fn lookup(&self, key: &[u8], seq: u64) -> Option<Option<Vec<u8>>> {
        if self.bulk_writers.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let shard = self.shard(key);
        let entry = shard.entries.get(key)?;
        if entry.generation != self.generation.load(Ordering::SeqCst)
            || entry.writers > 0
            || seq < entry.last_write
        {
            return None;
        }
        entry.value.clone()
    }

    /// Records `value`, read at snapshot `seq`, if it is still the key's
    /// latest.
    pub(crate) fn fill(&self, key: &[u8], seq: u64, value: &Option<Vec<u8>>) {
        if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return;
        }
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        // Checked under the shard's lock, in this order: a bulk write
        // counts itself in before it bumps the generation and writes, and
        // raises `bulk_high` before it counts itself out.
        if self.bulk_writers.load(Ordering::SeqCst) > 0 {
            return;
        }
        let (generation, untracked) = self.bounds(shard);
        let added = match shard.entries.entry(key.to_vec()) {
            MapEntry::Occupied(mut occupied) => {
                let entry = occupied.get_mut();
                if entry.writers > 0 {
                    return;
                }
                let freed = entry.value.as_ref().map_or(0, value_len);
                if entry.generation != generation {
                    // Stale: as if absent, with its own writes still counted.
                    let from = untracked.max(entry.last_write);
                    if seq < from {
                        return;
                    }
                    *entry = Entry {
                        writers: 0,
                        last_write: from,
                        value: Some(value.clone()),
                        generation,
                    };
                } else if seq < entry.last_write || entry.value.is_some() {
                    return;
                } else {
                    entry.value = Some(value.clone());
                }
                shard.bytes -= freed;
                value_len(value)
            }
            MapEntry::Vacant(vacant) => {
                if seq < untracked {
                    return;
                }
                vacant.insert(Entry {
                    writers: 0,
                    last_write: untracked,
                    value: Some(value.clone()),
                    generation,
                });
                key.len() + ENTRY_OVERHEAD + value_len(value)
            }
        };
        shard.bytes += added;
        shard.evict_if_full();
    }

    /// Marks the keys of a serialized batch as being written; call
    /// [`RowCache::end_write`] with the result once it is written.
    pub(crate) fn begin_write(&self, batch: &[u8]) -> RowWrite {
        if header_count(batch).is_none_or(|n| n > MAX_MARKED_KEYS as u64) {
            return self.begin_bulk();
        }
        let mut last_values: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
        for (key, value) in batch_format::entries(batch) {
            last_values.insert(key, value);
        }
        let mut keys = Vec::with_capacity(last_values.len());
        for (key, value) in last_values {
            let mut guard = self.shard(key);
            let shard = &mut *guard;
            let (generation, untracked) = self.bounds(shard);
            match shard.entries.entry(key.to_vec()) {
                MapEntry::Occupied(mut occupied) => {
                    let entry = occupied.get_mut();
                    entry.writers += 1;
                    shard.bytes -= entry.value.take().map_or(0, |v| value_len(&v));
                    if entry.generation != generation {
                        entry.generation = generation;
                        entry.last_write = entry.last_write.max(untracked);
                    }
                }
                MapEntry::Vacant(vacant) => {
                    vacant.insert(Entry {
                        writers: 1,
                        last_write: untracked,
                        value: None,
                        generation,
                    });
                    shard.bytes += key.len() + ENTRY_OVERHEAD;
                }
            }
            keys.push((key.to_vec(), value.map(<[u8]>::to_vec)));
        }
        RowWrite::Keys(keys)
    }

    /// Finishes a write begun with [`RowCache::begin_write`]; `last` is the
    /// batch's last sequence number (if the write failed, the database's:
    /// it may have written part of it).
    pub(crate) fn end_write(&self, write: RowWrite, last: u64) {
        let keys = match write {
            RowWrite::Bulk => return self.end_bulk(last),
            RowWrite::Keys(keys) => keys,
        };
        for (key, value) in keys {
            let mut guard = self.shard(&key);
            let shard = &mut *guard;
            let Some(entry) = shard.entries.get_mut(&key) else {
                continue;
            };
            let newest = last >= entry.last_write;
            entry.writers -= 1;
            entry.last_write = entry.last_write.max(last);
            let current = entry.generation == self.generation.load(Ordering::SeqCst);
            let cacheable = value.as_ref().is_none_or(|v| v.len() <= MAX_VALUE);
            if entry.writers == 0 && newest && current && cacheable {
                shard.bytes += value_len(&value);
                entry.value = Some(value);
            }
            shard.evict_if_full();
        }
    }

    /// The current generation, and the bound every write of a key that
    /// `shard` does not hold (or holds stale) is at or below.
    fn bounds(&self, shard: &Shard) -> (u64, u64) {
        let generation = self.generation.load(Ordering::SeqCst);
        let untracked = shard
            .untracked_high
            .max(self.bulk_high.load(Ordering::SeqCst));
        (generation, untracked)
    }

    fn begin_bulk(&self) -> RowWrite {
        self.bulk_writers.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        RowWrite::Bulk
    }

    fn end_bulk(&self, last: u64) {
        self.bulk_high.fetch_max(last, Ordering::SeqCst);
        // Entries made while the write was in flight did not know its
        // sequence numbers.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.bulk_writers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shard {
    /// Over budget: drops about half of the entries not being written
    /// (cheap, and keeps the map's cost per read flat).
    fn evict_if_full(&mut self) {
        if self.bytes <= SHARD_BUDGET {
            return;
        }
        let mut high = self.untracked_high;
        let mut bytes = 0;
        let mut idle = 0u64;
        self.entries.retain(|key, entry| {
            if entry.writers == 0 {
                idle += 1;
                if idle % 2 == 1 {
                    high = high.max(entry.last_write);
                    return false;
                }
            }
            bytes += key.len() + ENTRY_OVERHEAD + entry.value.as_ref().map_or(0, value_len);
            true
        });
        self.untracked_high = high;
        self.bytes = bytes;
    }
}

fn value_len(value: &Option<Vec<u8>>) -> usize {
    value.as_ref().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::{RowCache, MAX_MARKED_KEYS, SHARDS, SHARD_BUDGET};
    use crate::batch::RawBatch;

    fn v(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    fn batch(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = RawBatch::new();
        for (k, value) in entries {
            match value {
                Some(value) => b.put(k.as_bytes(), value.as_bytes()),
                None => b.delete(k.as_bytes()),
            }
        }
        b.data().to_vec()
    }

    /// A batch with one key more than is marked key by key.
    fn bulk_batch() -> Vec<u8> {
        let keys: Vec<String> = (0..=MAX_MARKED_KEYS).map(|i| format!("k{i}")).collect();
        let entries: Vec<_> = keys.iter().map(|k| (k.as_str(), Some("v"))).collect();
        batch(&entries)
    }

    #[test]
    fn a_value_is_trusted_from_the_newest_write_it_may_predate() {
        let cache = RowCache::new(10);
        // Read before the engine's last sequence: could be stale for later snapshots.
        cache.fill(b"a", 9, &v("1"));
        assert_eq!(cache.lookup(b"a", 20), None);
        cache.fill(b"a", 12, &v("1"));
        assert_eq!(cache.lookup(b"a", 12), Some(v("1")));
        assert_eq!(cache.lookup(b"a", 10), Some(v("1")));
        assert_eq!(cache.lookup(b"a", 9), None);
        assert_eq!(cache.lookup(b"a", u64::MAX), Some(v("1")));
        // Absent keys are cached too.
        cache.fill(b"gone", 12, &None);
        assert_eq!(cache.lookup(b"gone", 15), Some(None));
    }

    #[test]
    fn a_write_in_flight_hides_the_key_and_leaves_its_value_behind() {
        let cache = RowCache::new(10);
        cache.fill(b"a", 10, &v("1"));
        let write = cache.begin_write(&batch(&[("a", Some("2")), ("b", None)]));
        assert_eq!(cache.lookup(b"a", 30), None);
        cache.fill(b"a", 30, &v("1"));
        assert_eq!(cache.lookup(b"a", 30), None);
        cache.end_write(write, 21);
        // Written through, valid from the write's last sequence number on.
        assert_eq!(cache.lookup(b"a", 21), Some(v("2")));
        assert_eq!(cache.lookup(b"b", 21), Some(None));
        assert_eq!(cache.lookup(b"a", 20), None);
        // A reader whose snapshot predates the write may not fill.
        let write = cache.begin_write(&batch(&[("a", Some("3"))]));
        cache.end_write(write, 25);
        assert_eq!(cache.lookup(b"a", 25), Some(v("3")));
        cache.fill(b"c", 9, &v("x"));
        assert_eq!(cache.lookup(b"c", 30), None);
    }

    #[test]
    fn overlapping_writes_of_a_key_leave_only_the_newest_value() {
        let cache = RowCache::new(0);
        let older = cache.begin_write(&batch(&[("k", Some("old"))]));
        let newer = cache.begin_write(&batch(&[("k", Some("new"))]));
        cache.end_write(newer, 12);
        assert_eq!(cache.lookup(b"k", 50), None, "a write is still in flight");
        cache.end_write(older, 10);
        assert_eq!(
            cache.lookup(b"k", 50),
            None,
            "the older write finished last"
        );
        cache.fill(b"k", 11, &v("new"));
        assert_eq!(cache.lookup(b"k", 50), None, "read before the newer write");
        cache.fill(b"k", 12, &v("new"));
        assert_eq!(cache.lookup(b"k", 12), Some(v("new")));
        // A batch writing a key twice leaves its last value.
        let write = cache.begin_write(&batch(&[("k", Some("1")), ("k", Some("2"))]));
        cache.end_write(write, 14);
        assert_eq!(cache.lookup(b"k", 14), Some(v("2")));
    }

    #[test]
    fn a_bulk_write_makes_every_entry_stale() {
        let cache = RowCache::new(0);
        cache.fill(b"a", 1, &v("1"));
        let write = cache.begin_write(&bulk_batch());
        assert_eq!(cache.lookup(b"a", 5), None);
        cache.fill(b"a", 5, &v("1"));
        assert_eq!(cache.lookup(b"a", 5), None);
        cache.end_write(write, 1000);
        cache.fill(b"a", 999, &v("1"));
        assert_eq!(cache.lookup(b"a", 1000), None);
        cache.fill(b"a", 1000, &v("1"));
        assert_eq!(cache.lookup(b"a", 1000), Some(v("1")));
        assert_eq!(
            cache.lookup(b"k1", 1000),
            None,
            "bulk values are not cached"
        );
    }

    #[test]
    fn what_was_cached_during_a_bulk_write_is_stale_after_it() {
        let cache = RowCache::new(0);
        let bulk = cache.begin_write(&bulk_batch());
        let small = cache.begin_write(&batch(&[("a", Some("1"))]));
        cache.end_write(small, 5);
        cache.end_write(bulk, 1000);
        // The bulk write (sequence numbers up to 1000) may have written "a".
        assert_eq!(cache.lookup(b"a", 10), None);
        cache.fill(b"a", 999, &v("1"));
        assert_eq!(cache.lookup(b"a", 1000), None);
        cache.fill(b"a", 1000, &v("2"));
        assert_eq!(cache.lookup(b"a", 1000), Some(v("2")));
        // A key being written across a bulk write keeps its marker.
        let across = cache.begin_write(&batch(&[("b", Some("1"))]));
        let bulk = cache.begin_write(&bulk_batch());
        cache.end_write(bulk, 2000);
        cache.fill(b"b", 2001, &v("0"));
        assert_eq!(cache.lookup(b"b", 2001), None);
        cache.end_write(across, 1500);
        cache.fill(b"b", 1999, &v("1"));
        assert_eq!(cache.lookup(b"b", 2001), None);
        cache.fill(b"b", 2001, &v("1"));
        assert_eq!(cache.lookup(b"b", 2001), Some(v("1")));
    }

    #[test]
    fn eviction_bounds_memory_and_forgets_safely() {
        let cache = RowCache::new(0);
        let value = "x".repeat(1000);
        let written = cache.begin_write(&batch(&[("busy", Some("1"))]));
        let n = 4 * SHARDS * SHARD_BUDGET / 1000;
        for i in 0..n {
            let key = format!("key{i}");
            let write = cache.begin_write(&batch(&[(&key, Some(value.as_str()))]));
            cache.end_write(write, i as u64 + 1);
        }
        let bytes: usize = cache.shards.iter().map(|s| s.lock().unwrap().bytes).sum();
        assert!(bytes <= SHARDS * SHARD_BUDGET, "{bytes} bytes cached");
        // An evicted key is only filled by a reader as new as the last
        // write of anything evicted with it.
        let evicted = (0..n)
            .map(|i| format!("key{i}"))
            .find(|k| cache.lookup(k.as_bytes(), u64::MAX).is_none())
            .expect("something was evicted");
        cache.fill(evicted.as_bytes(), 1, &v("stale"));
        assert_eq!(cache.lookup(evicted.as_bytes(), u64::MAX), None);
        // A key being written is never evicted.
        cache.end_write(written, n as u64 + 5);
        assert_eq!(cache.lookup(b"busy", n as u64 + 5), Some(v("1")));
    }
}
