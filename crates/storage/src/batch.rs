//! A commit's WriteBatch, written through RocksDB's C API so that the
//! sequence number RocksDB assigns to it can be read back.
//!
//! Replication ships batches by LSN, and LSN is the RocksDB sequence
//! number (SPEC section 1). RocksDB stamps the sequence into the batch's
//! header (bytes 0..8, little endian; bytes 8..12 are the entry count)
//! while writing it, even inside a write group of many writers. The Rust
//! `DB::write` consumes its batch, so the header could not be read after
//! the write; this wrapper keeps the batch alive across the call.

use std::ptr;
use std::sync::Arc;

use librocksdb_sys as ffi;
use rocksdb::{AsRawPtr, DB};

use crate::error::{StorageError, StorageResult};

/// Size of the WriteBatch header: sequence (8) + count (4).
pub const HEADER_LEN: usize = 12;

/// A batch committed at a sequence number: what the primary ships.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    /// Sequence number of the batch's first entry (its LSN).
    pub seq: u64,
    /// The batch in RocksDB's WriteBatch format, header included.
    pub data: bytes::Bytes,
}

impl CommittedBatch {
    /// Number of sequence numbers the batch uses.
    pub fn count(&self) -> u64 {
        header_count(&self.data).unwrap_or(0)
    }

    /// The sequence number the next batch must start at.
    pub fn next_seq(&self) -> u64 {
        self.seq + self.count()
    }
}

/// The entry count in a WriteBatch header.
pub fn header_count(data: &[u8]) -> Option<u64> {
    let bytes: [u8; 4] = data.get(8..12)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes) as u64)
}

/// The sequence number in a WriteBatch header.
pub fn header_seq(data: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = data.get(0..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// An owned `rocksdb_writebatch_t`.
pub(crate) struct RawBatch {
    inner: *mut ffi::rocksdb_writebatch_t,
}

// SAFETY: a WriteBatch is a plain buffer with no thread affinity; it is
// only used by one thread at a time (&mut for writes).
unsafe impl Send for RawBatch {}

impl RawBatch {
    pub(crate) fn new() -> RawBatch {
        // SAFETY: plain constructor.
        RawBatch {
            inner: unsafe { ffi::rocksdb_writebatch_create() },
        }
    }

    /// A batch from its serialized form (as shipped), checked entry by
    /// entry first (see batch_format.rs).
    pub(crate) fn from_data(data: &[u8]) -> StorageResult<RawBatch> {
        crate::batch_format::validate(data)?;
        Ok(RawBatch::from_checked(data))
    }

    /// A batch from a serialized form already known to be well formed.
    fn from_checked(data: &[u8]) -> RawBatch {
        // SAFETY: RocksDB copies `data`.
        RawBatch {
            inner: unsafe {
                ffi::rocksdb_writebatch_create_from(data.as_ptr() as *const CChar, data.len())
            },
        }
    }

    /// One batch holding the entries of several, in order (a write group).
    /// The parts are this process's own batches, so they are not checked.
    pub(crate) fn concat<'a>(parts: impl Iterator<Item = &'a [u8]>) -> RawBatch {
        let mut data = vec![0u8; HEADER_LEN];
        let mut count: u64 = 0;
        for part in parts {
            count += header_count(part).unwrap_or(0);
            data.extend_from_slice(part.get(HEADER_LEN..).unwrap_or_default());
        }
        data[8..HEADER_LEN].copy_from_slice(&(count as u32).to_le_bytes());
        RawBatch::from_checked(&data)
    }

    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        // SAFETY: RocksDB copies key and value.
        unsafe {
            ffi::rocksdb_writebatch_put(
                self.inner,
                key.as_ptr() as *const CChar,
                key.len(),
                value.as_ptr() as *const CChar,
                value.len(),
            )
        }
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        // SAFETY: RocksDB copies the key.
        unsafe {
            ffi::rocksdb_writebatch_delete(self.inner, key.as_ptr() as *const CChar, key.len())
        }
    }

    /// Number of sequence numbers the batch uses (entries).
    pub(crate) fn count(&self) -> u64 {
        header_count(self.data()).unwrap_or(0)
    }

    /// The serialized batch, header included.
    pub(crate) fn data(&self) -> &[u8] {
        let mut len: usize = 0;
        // SAFETY: the returned buffer lives as long as the batch and is not
        // modified while `&self` is borrowed.
        unsafe {
            let p = ffi::rocksdb_writebatch_data(self.inner, &mut len);
            if p.is_null() || len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }

    /// Writes the batch with the WAL on (`sync`: fsync before returning)
    /// and returns the sequence number RocksDB gave its first entry.
    pub(crate) fn write(&mut self, db: &Arc<DB>, sync: bool) -> StorageResult<u64> {
        let mut err: *mut CChar = ptr::null_mut();
        // SAFETY: `db` outlives the call; the options are created and
        // destroyed here; RocksDB writes an error string into `err` (which
        // we free) or leaves it null.
        unsafe {
            let opts = ffi::rocksdb_writeoptions_create();
            ffi::rocksdb_writeoptions_set_sync(opts, sync as u8);
            ffi::rocksdb_write(db.as_raw_ptr(), opts, self.inner, &mut err);
            ffi::rocksdb_writeoptions_destroy(opts);
            if !err.is_null() {
                let message = std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned();
                ffi::rocksdb_free(err as *mut std::ffi::c_void);
                return Err(StorageError::from_message(message));
            }
        }
        header_seq(self.data())
            .ok_or_else(|| StorageError::Engine("written batch has no header".into()))
    }
}

impl Drop for RawBatch {
    fn drop(&mut self) {
        // SAFETY: created by this wrapper, destroyed once.
        unsafe { ffi::rocksdb_writebatch_destroy(self.inner) }
    }
}

type CChar = std::ffi::c_char;
