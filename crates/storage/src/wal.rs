//! The WAL files replication keeps for its secondaries. RocksDB moves a
//! WAL file to `archive/` once its memtable is flushed and (with a WAL TTL
//! set, see engine.rs) leaves it there; replication slots decide when an
//! archived file is deleted, which needs each file's first sequence
//! number, read here from the file's first data record.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{StorageError, StorageResult};

/// One WAL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFile {
    pub path: PathBuf,
    /// Sequence number of its first batch (None if it holds none yet).
    pub first_seq: Option<u64>,
    pub size: u64,
}

const BLOCK: usize = 32 * 1024;
const HEADER: usize = 7;
const RECYCLABLE_HEADER: usize = 11;

/// The sequence number of the first batch in a WAL file's leading bytes:
/// records are `crc(4) len(2) type(1) payload` inside 32 KB blocks
/// (recyclable types add a 4-byte log number); a batch starts with its
/// sequence number (8 bytes, little endian).
pub fn first_sequence(bytes: &[u8]) -> Option<u64> {
    let mut offset = 0;
    while offset + HEADER <= bytes.len() {
        let in_block = BLOCK - offset % BLOCK;
        if in_block < HEADER {
            offset += in_block; // trailer padding
            continue;
        }
        let len = u16::from_le_bytes([bytes[offset + 4], bytes[offset + 5]]) as usize;
        let kind = bytes[offset + 6];
        let header = match kind {
            1 | 2 => HEADER,
            5 | 6 => RECYCLABLE_HEADER,
            0 => return None, // preallocated, nothing written
            k if k >= 10 && k & 1 == 1 => RECYCLABLE_HEADER,
            _ => HEADER,
        };
        if matches!(kind, 1 | 2 | 5 | 6) {
            let start = offset + header;
            let seq: [u8; 8] = bytes.get(start..start + 8)?.try_into().ok()?;
            return Some(u64::from_le_bytes(seq));
        }
        offset += header + len;
    }
    None
}

fn wal_files_in(dir: &Path) -> StorageResult<Vec<WalFile>> {
    let io = |e: std::io::Error| {
        StorageError::Engine(format!("listing WAL files in {}: {e}", dir.display()))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let size = entry.metadata().map_err(io)?.len();
        let mut head = vec![0u8; BLOCK.min(size as usize)];
        let first_seq = match std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)) {
            Ok(()) => first_sequence(&head),
            // Deleted or still being created: not a file to manage.
            Err(_) => continue,
        };
        files.push(WalFile {
            path,
            first_seq,
            size,
        });
    }
    files.sort_by_key(|f| (f.first_seq.unwrap_or(u64::MAX), f.path.clone()));
    Ok(files)
}

impl Engine {
    /// Archived WAL files (no longer needed by RocksDB), oldest first.
    pub fn archived_wal_files(&self) -> StorageResult<Vec<WalFile>> {
        wal_files_in(&self.path().join("archive"))
    }

    /// WAL files RocksDB still uses (their memtables are not flushed).
    pub fn live_wal_files(&self) -> StorageResult<Vec<WalFile>> {
        wal_files_in(self.path())
    }

    /// Deletes an archived WAL file.
    pub fn delete_archived_wal(&self, file: &WalFile) -> StorageResult<()> {
        if file.path.parent() != Some(self.path().join("archive").as_path()) {
            return Err(StorageError::Engine(format!(
                "{} is not an archived WAL file",
                file.path.display()
            )));
        }
        std::fs::remove_file(&file.path)
            .map_err(|e| StorageError::Engine(format!("deleting {}: {e}", file.path.display())))
    }

    /// Flushes the memtable: its WAL file moves to the archive and a new
    /// one starts (so the archive can be trimmed in whole files).
    pub fn flush_memtable(&self) -> StorageResult<()> {
        Ok(self.db.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 0];
        r.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        r.push(kind);
        r.extend_from_slice(payload);
        r
    }

    #[test]
    fn wal_files_read_back_as_the_batches_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path(), crate::EngineOptions::default()).unwrap();
        let engine = store.engine();
        let mut seqs = Vec::new();
        for i in 0..200u32 {
            let mut txn = engine.begin(crate::Isolation::ReadCommitted);
            // Some batches larger than a 32 KB block: fragmented records.
            let size = if i % 50 == 0 { 70_000 } else { 10 };
            txn.put(i.to_be_bytes().to_vec(), vec![b'v'; size]);
            seqs.push(txn.commit_blocking().unwrap().unwrap());
        }
        let live = engine.live_wal_files().unwrap();
        let read: Vec<u64> = live
            .iter()
            .flat_map(|f| read_wal_file(&f.path).unwrap())
            .map(|b| b.seq)
            .filter(|s| seqs.contains(s))
            .collect();
        assert_eq!(read, seqs);
        let all = read_wal_file(&live[0].path).unwrap();
        let big = all.iter().find(|b| b.seq == seqs[50]).unwrap();
        assert!(big.data.len() > 70_000);
    }

    #[test]
    fn first_sequence_skips_metadata_records() {
        let mut batch = 42u64.to_le_bytes().to_vec();
        batch.extend_from_slice(&1u32.to_le_bytes());
        let mut file = record(9, &[1]); // compression type record
        file.extend(record(1, &batch));
        assert_eq!(first_sequence(&file), Some(42));
        assert_eq!(first_sequence(&[0u8; 64]), None);
        assert_eq!(first_sequence(&[]), None);
    }
}

/// Reads the batches of a WAL file (a copy in the archive directory):
/// reassembles fragmented records and returns each WriteBatch with the
/// sequence number in its header, in file order. Stops at the first
/// malformed or preallocated (zero) record, as RocksDB's reader does at a
/// torn tail.
pub fn read_wal_file(path: &Path) -> StorageResult<Vec<crate::CommittedBatch>> {
    let bytes = std::fs::read(path)
        .map_err(|e| StorageError::Engine(format!("reading {}: {e}", path.display())))?;
    let mut batches = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    while offset + HEADER <= bytes.len() {
        let in_block = BLOCK - offset % BLOCK;
        if in_block < HEADER {
            offset += in_block;
            continue;
        }
        let len = u16::from_le_bytes([bytes[offset + 4], bytes[offset + 5]]) as usize;
        let kind = bytes[offset + 6];
        let recyclable = matches!(kind, 5..=8) || (kind >= 10 && kind & 1 == 1);
        let header = if recyclable {
            RECYCLABLE_HEADER
        } else {
            HEADER
        };
        let start = offset + header;
        let Some(payload) = bytes.get(start..start + len) else {
            break; // torn tail
        };
        match kind {
            0 => break,
            1 | 5 => {
                pending.clear();
                push_batch(&mut batches, payload);
            }
            2 | 6 => {
                pending.clear();
                pending.extend_from_slice(payload);
            }
            3 | 7 => pending.extend_from_slice(payload),
            4 | 8 => {
                pending.extend_from_slice(payload);
                push_batch(&mut batches, &pending);
                pending.clear();
            }
            _ => {} // metadata records (compression type, timestamps, ...)
        }
        offset = start + len;
    }
    Ok(batches)
}

fn push_batch(batches: &mut Vec<crate::CommittedBatch>, rep: &[u8]) {
    if let Some(seq) = crate::batch::header_seq(rep) {
        batches.push(crate::CommittedBatch {
            seq,
            data: bytes::Bytes::copy_from_slice(rep),
        });
    }
}
