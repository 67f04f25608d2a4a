//! A cache for the one key that nearly every statement reads (the SQL
//! layer's catalog version): a RocksDB read of it cost as much as the
//! rest of a point query's reads together.
//!
//! The cache holds the key's value with the sequence number from which it
//! is valid: every snapshot at or after that sequence sees that value. A
//! commit that may write the key (a transaction that wrote it; any
//! replicated batch, whose keys are not looked at) clears the cache before
//! it writes and records its last sequence number after, so a reader only
//! trusts or refills the cache when no such commit is in flight and its
//! snapshot is not older than the last one.

use std::sync::{Mutex, OnceLock};

#[derive(Default)]
pub(crate) struct HotKey {
    key: OnceLock<Vec<u8>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Commits that may write the key and have not finished.
    writers: u32,
    /// Last sequence number of the newest such commit.
    last_write: u64,
    /// (valid from sequence, value)
    known: Option<(u64, Option<Vec<u8>>)>,
}

impl HotKey {
    /// True if `key` is the hot key (the first key ever asked for becomes it).
    pub(crate) fn is(&self, key: &[u8]) -> bool {
        self.key.get_or_init(|| key.to_vec()) == key
    }

    /// The key, once chosen.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key.get().map(Vec::as_slice)
    }

    /// The cached value as a snapshot at `seq` sees it, if known.
    pub(crate) fn lookup(&self, seq: u64) -> Option<Option<Vec<u8>>> {
        let state = self.state.lock().ok()?;
        match &state.known {
            Some((from, value)) if seq >= *from => Some(value.clone()),
            _ => None,
        }
    }

    /// Records a value read at snapshot `seq`, if it is still the newest.
    pub(crate) fn fill(&self, seq: u64, value: &Option<Vec<u8>>) {
        if let Ok(mut state) = self.state.lock() {
            if state.writers == 0 && seq >= state.last_write {
                state.known = Some((state.last_write, value.clone()));
            }
        }
    }

    /// Runs a commit that may write the key; `write` returns the commit's
    /// last sequence number.
    pub(crate) fn writing<E>(&self, write: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        if let Ok(mut state) = self.state.lock() {
            state.writers += 1;
            state.known = None;
        }
        let result = write();
        if let Ok(mut state) = self.state.lock() {
            state.writers -= 1;
            // A failed write may still have reached the database.
            let last = match &result {
                Ok(last) => *last,
                Err(_) => u64::MAX,
            };
            state.last_write = state.last_write.max(last);
            state.known = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::HotKey;

    #[test]
    fn a_commit_in_flight_or_newer_than_the_snapshot_keeps_the_cache_empty() {
        let hot = HotKey::default();
        assert!(hot.is(b"v"));
        assert!(!hot.is(b"w"));
        hot.fill(10, &Some(b"1".to_vec()));
        assert_eq!(hot.lookup(10), Some(Some(b"1".to_vec())));
        assert_eq!(hot.lookup(3), Some(Some(b"1".to_vec())));

        let r: Result<u64, ()> = hot.writing(|| {
            // In flight: nothing is trusted or filled.
            assert_eq!(hot.lookup(20), None);
            hot.fill(20, &Some(b"1".to_vec()));
            assert_eq!(hot.lookup(20), None);
            Ok(25)
        });
        assert_eq!(r, Ok(25));
        // A reader whose snapshot predates the write may not fill.
        hot.fill(24, &Some(b"1".to_vec()));
        assert_eq!(hot.lookup(30), None);
        hot.fill(25, &Some(b"2".to_vec()));
        assert_eq!(hot.lookup(30), Some(Some(b"2".to_vec())));
        // Valid from the write's sequence on, not before it.
        assert_eq!(hot.lookup(24), None);

        let r: Result<u64, ()> = hot.writing(|| Err(()));
        assert!(r.is_err());
        hot.fill(u64::MAX - 1, &None);
        assert_eq!(hot.lookup(u64::MAX - 1), None);
    }
}
