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

/// Skips a varint32-length-prefixed slice.
fn skip_slice(data: &[u8]) -> Option<&[u8]> {
    let (len, rest) = varint32(data)?;
    rest.get(len as usize..)
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
