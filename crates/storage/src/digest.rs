//! A digest of the writes in a range of LSNs, to check that a secondary's
//! last commits are its primary's.
//!
//! A primary ships each commit before its own WAL write is on disk, so
//! that both nodes' fsyncs overlap (see `Engine::write_raw`). A primary
//! that loses that unsynced tail (an operating-system crash, a failed
//! write) restarts without commits its secondary has, then writes other
//! commits at the same LSNs. What it can lose is bounded: it never has
//! more than [`VERIFY_WINDOW`] LSNs shipped and not yet synced. So when a
//! secondary (re)connects, it sends the digest of its last
//! [`VERIFY_WINDOW`] LSNs, and the primary compares it with its own.
//!
//! The digest is over entries (key, value or delete), not batch bytes: a
//! secondary writes a burst of commits as one batch in key order, and its
//! batch log may hold such a burst after a crash (refilled from its WAL).
//! Entries are summed, so their order inside the range does not count; a
//! range is cut at the secondary's batch boundaries, where a reordered
//! burst is whole.

use crate::batch::CommittedBatch;
use crate::batch_format::entries;
use crate::error::StorageResult;

/// The most LSNs a primary has shipped and not yet made durable: a write
/// that would go past it is shipped only once it is on disk. A secondary's
/// commits older than its last `VERIFY_WINDOW` LSNs are on its primary's
/// disk.
pub const VERIFY_WINDOW: u64 = 65_536;

/// The digest of the entries at LSNs `from..=through` (empty when `from`
/// is past `through`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeDigest {
    pub from: u64,
    pub through: u64,
    pub value: u64,
}

impl RangeDigest {
    /// `from:through:value`, as START_REPLICATION carries it.
    pub fn to_text(&self) -> String {
        format!("{}:{}:{:016x}", self.from, self.through, self.value)
    }

    pub fn from_text(text: &str) -> Option<RangeDigest> {
        let mut parts = text.split(':');
        let from = parts.next()?.parse().ok()?;
        let through = parts.next()?.parse().ok()?;
        let value = u64::from_str_radix(parts.next()?, 16).ok()?;
        parts.next().is_none().then_some(RangeDigest {
            from,
            through,
            value,
        })
    }
}

/// The digest of the entries at LSNs `from..=through` of `batches` (in LSN
/// order; an entry's LSN is its batch's plus its place in it; an LSN seen
/// twice counts once). None when the batches leave a hole in the range or
/// end before it does.
pub fn digest_range(
    batches: impl Iterator<Item = StorageResult<CommittedBatch>>,
    from: u64,
    through: u64,
) -> StorageResult<Option<u64>> {
    let mut next = from;
    let mut sum = 0u64;
    for batch in batches {
        let batch = batch?;
        if batch.seq > through {
            break;
        }
        for (lsn, (key, value)) in (batch.seq..).zip(entries(&batch.data)) {
            // Before the range, or counted already (an archived copy and
            // the log overlap).
            if lsn < next {
                continue;
            }
            if lsn > through {
                break;
            }
            if lsn != next {
                return Ok(None);
            }
            sum = sum.wrapping_add(entry_hash(key, value));
            next += 1;
        }
    }
    Ok((next > through).then_some(sum ^ through.wrapping_sub(from)))
}

/// 64 bits from two CRC-32s (different seeds) of the entry.
fn entry_hash(key: &[u8], value: Option<&[u8]>) -> u64 {
    let crc = |seed: u32| {
        let mut hasher = crc32fast::Hasher::new_with_initial(seed);
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key);
        match value {
            Some(value) => {
                hasher.update(&[1]);
                hasher.update(value);
            }
            None => hasher.update(&[0]),
        }
        u64::from(hasher.finalize())
    };
    crc(0) << 32 | crc(0x9e37_79b9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RawBatch;

    fn batch(seq: u64, entries: &[(&str, Option<&str>)]) -> StorageResult<CommittedBatch> {
        let mut raw = RawBatch::new();
        for (key, value) in entries {
            match value {
                Some(value) => raw.put(key.as_bytes(), value.as_bytes()),
                None => raw.delete(key.as_bytes()),
            }
        }
        Ok(CommittedBatch {
            seq,
            data: raw.data().to_vec().into(),
        })
    }

    #[test]
    fn the_same_entries_give_the_same_digest_however_batched() {
        // Three commits one by one, as a primary's batch log holds them.
        let primary = || {
            vec![
                batch(10, &[("a", Some("1"))]),
                batch(11, &[("c", Some("3")), ("b", None)]),
                batch(13, &[("d", Some("4"))]),
            ]
            .into_iter()
        };
        // The last two as one burst in key order, as a secondary may.
        let secondary = vec![
            batch(10, &[("a", Some("1"))]),
            batch(11, &[("b", None), ("c", Some("3")), ("d", Some("4"))]),
        ];
        let whole = digest_range(primary(), 10, 13).unwrap().unwrap();
        assert_eq!(
            digest_range(secondary.into_iter(), 10, 13).unwrap(),
            Some(whole)
        );
        // A range cut inside a batch takes the entries at its LSNs.
        let tail = digest_range(primary(), 12, 13).unwrap().unwrap();
        let alone = digest_range(
            vec![batch(12, &[("b", None)]), batch(13, &[("d", Some("4"))])].into_iter(),
            12,
            13,
        )
        .unwrap();
        assert_eq!(alone, Some(tail));
        assert_ne!(tail, whole);
    }

    #[test]
    fn other_entries_holes_and_short_logs_do_not_match() {
        let ours = vec![batch(5, &[("k", Some("old"))]), batch(6, &[("j", None)])];
        let theirs = vec![batch(5, &[("k", Some("new"))]), batch(6, &[("j", None)])];
        let a = digest_range(ours.into_iter(), 5, 6).unwrap();
        let b = digest_range(theirs.into_iter(), 5, 6).unwrap();
        assert!(a.is_some() && a != b);
        // A hole at LSN 6, and a log that ends before the range does.
        let holed = vec![batch(5, &[("k", Some("old"))]), batch(7, &[("j", None)])];
        assert_eq!(digest_range(holed.into_iter(), 5, 7).unwrap(), None);
        let short = vec![batch(5, &[("k", Some("old"))])];
        assert_eq!(digest_range(short.into_iter(), 5, 6).unwrap(), None);
        // An empty range is trivially covered.
        assert!(digest_range(std::iter::empty(), 9, 8).unwrap().is_some());
        let text = RangeDigest {
            from: 3,
            through: 9,
            value: 0xabc,
        };
        assert_eq!(RangeDigest::from_text(&text.to_text()), Some(text));
        assert_eq!(RangeDigest::from_text("3:9"), None);
    }
}
