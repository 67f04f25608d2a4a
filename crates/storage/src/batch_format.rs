//! Checks a serialized WriteBatch before it is written.
//!
//! RocksDB writes a batch to its WAL before it parses the entries into the
//! memtable, so a malformed batch (a forged replication frame whose CRC
//! matches, a bug, a truncated record) would be logged first and fail
//! after: the engine then stops in a background error, and the WAL holds a
//! record that fails every recovery. A secondary therefore walks each
//! shipped batch first and refuses anything but the entries duet itself
//! writes (see `RawBatch::put` / `delete`): Put and Delete in the default
//! column family, as many as the header counts, nothing after them.

use crate::batch::HEADER_LEN;
use crate::error::{StorageError, StorageResult};

/// RocksDB's record tags (db/dbformat.h) for the entries duet writes.
const TAG_DELETION: u8 = 0x0;
const TAG_VALUE: u8 = 0x1;

/// Walks `data` (header included) and returns its entry count, or why it is
/// not a batch this version writes.
pub fn validate(data: &[u8]) -> StorageResult<u64> {
    let corrupt = |why: String| StorageError::Corrupt(format!("write batch: {why}"));
    if data.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "{} bytes is shorter than its header",
            data.len()
        )));
    }
    let count = u64::from(u32::from_le_bytes([data[8], data[9], data[10], data[11]]));
    if count == 0 {
        return Err(corrupt("no entries".into()));
    }
    let mut rest = &data[HEADER_LEN..];
    let mut seen = 0u64;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let slices = match tag {
            TAG_VALUE => 2,
            TAG_DELETION => 1,
            other => return Err(corrupt(format!("entry {seen} has unknown tag {other:#x}"))),
        };
        for _ in 0..slices {
            rest = skip_slice(rest).ok_or_else(|| corrupt(format!("entry {seen} is truncated")))?;
        }
        seen += 1;
        if seen > count {
            return Err(corrupt(format!("more entries than the {count} counted")));
        }
    }
    if seen != count {
        return Err(corrupt(format!("{seen} entries, header counts {count}")));
    }
    Ok(count)
}

/// The entries of a well-formed batch, in order: (key, Some(value)) for a
/// put, (key, None) for a delete. Stops at anything it cannot read (only
/// used on batches already checked or written by this process).
pub(crate) fn entries(data: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    records(data).map(|r| (r.key, r.value))
}

/// One Put or Delete record of a batch.
struct Record<'a> {
    key: &'a [u8],
    value: Option<&'a [u8]>,
    /// The whole record: tag, key and value.
    bytes: &'a [u8],
}

/// The records of a batch after its header, in order; stops at the first
/// it cannot read.
fn records(data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut rest = data.get(HEADER_LEN..).unwrap_or_default();
    std::iter::from_fn(move || {
        let (&tag, tail) = rest.split_first()?;
        let (key, tail) = read_slice(tail)?;
        let (value, tail) = match tag {
            TAG_VALUE => {
                let (value, tail) = read_slice(tail)?;
                (Some(value), tail)
            }
            TAG_DELETION => (None, tail),
            _ => return None,
        };
        let bytes = &rest[..rest.len() - tail.len()];
        rest = tail;
        Some(Record { key, value, bytes })
    })
}

/// The same batch with its entries in key order (stable: a key written
/// twice keeps its writes in order, so the later one still wins). Used on
/// a secondary for a burst of replayed commits: the memtable's skiplist
/// inserts keys in order with about half the work of the random order
/// commits come in (each search starts where the last ended, in cache),
/// and nothing else sees the order: readers see whole bursts, and the
/// burst's last sequence number is the same. Only for Put/Delete batches (`validate`
/// accepts no others), where entries on different keys commute; `None` if
/// the batch cannot be read or is in order already.
pub fn sorted_by_key(data: &[u8]) -> Option<Vec<u8>> {
    let header = data.get(..HEADER_LEN)?;
    let mut records: Vec<Record> = records(data).collect();
    let read: usize = records.iter().map(|r| r.bytes.len()).sum();
    if read != data.len() - HEADER_LEN || records.windows(2).all(|w| w[0].key <= w[1].key) {
        return None;
    }
    records.sort_by(|a, b| a.key.cmp(b.key));
    let mut sorted = Vec::with_capacity(data.len());
    sorted.extend_from_slice(header);
    for record in records {
        sorted.extend_from_slice(record.bytes);
    }
    Some(sorted)
}

/// Reads a varint32-length-prefixed slice.
fn read_slice(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = varint32(data)?;
    let len = len as usize;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Skips a varint32-length-prefixed slice.
fn skip_slice(data: &[u8]) -> Option<&[u8]> {
    read_slice(data).map(|(_, rest)| rest)
}

/// Decodes a little-endian base-128 varint of at most 5 bytes.
fn varint32(data: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in data.iter().enumerate().take(5) {
        let bits = u32::from(byte & 0x7f);
        if i == 4 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RawBatch;

    fn batch(build: impl FnOnce(&mut RawBatch)) -> Vec<u8> {
        let mut b = RawBatch::new();
        build(&mut b);
        b.data().to_vec()
    }

    #[test]
    fn accepts_what_duet_writes() {
        let data = batch(|b| {
            b.put(b"k1", b"v1");
            b.delete(b"k2");
            b.put(&[0xff; 300], &[7; 70_000]);
        });
        assert_eq!(validate(&data).unwrap(), 3);
        let read: Vec<_> = entries(&data).collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], (&b"k1"[..], Some(&b"v1"[..])));
        assert_eq!(read[1], (&b"k2"[..], None));
        assert_eq!(read[2].0, &[0xff; 300][..]);
        assert_eq!(read[2].1.map(<[u8]>::len), Some(70_000));
    }

    #[test]
    fn sorting_keeps_each_keys_writes_in_order() {
        let data = batch(|b| {
            b.put(b"m", b"1");
            b.put(b"a", b"2");
            b.delete(b"m");
            b.put(b"z", b"3");
            b.put(b"m", b"4");
            b.delete(b"b");
        });
        let sorted = sorted_by_key(&data).unwrap();
        assert_eq!(sorted.len(), data.len());
        assert_eq!(sorted[..HEADER_LEN], data[..HEADER_LEN]);
        assert_eq!(validate(&sorted).unwrap(), 6);
        let read: Vec<_> = entries(&sorted).collect();
        assert_eq!(
            read,
            [
                (&b"a"[..], Some(&b"2"[..])),
                (&b"b"[..], None),
                (&b"m"[..], Some(&b"1"[..])),
                (&b"m"[..], None),
                (&b"m"[..], Some(&b"4"[..])),
                (&b"z"[..], Some(&b"3"[..])),
            ]
        );
        // In order already, or unreadable: nothing to do.
        assert!(sorted_by_key(&sorted).is_none());
        let mut foreign = data.clone();
        foreign[HEADER_LEN] = 0x2;
        assert!(sorted_by_key(&foreign).is_none());
    }

    #[test]
    fn refuses_miscounted_truncated_or_foreign_batches() {
        let data = batch(|b| {
            b.put(b"key", b"value");
            b.delete(b"gone");
        });
        let mut miscounted = data.clone();
        miscounted[8] = 3;
        assert!(validate(&miscounted).is_err());
        miscounted[8] = 1;
        assert!(validate(&miscounted).is_err());
        assert!(validate(&data[..data.len() - 1]).is_err());
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(validate(&trailing).is_err());
        let mut merge = data.clone();
        merge[HEADER_LEN] = 0x2;
        assert!(validate(&merge).is_err());
        assert!(validate(&data[..HEADER_LEN]).is_err());
        assert!(validate(&[0; 5]).is_err());
        // A length varint running past 32 bits.
        let mut long = data[..HEADER_LEN].to_vec();
        long.extend_from_slice(&[TAG_DELETION, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        long[8] = 1;
        assert!(validate(&long).is_err());
    }
}
