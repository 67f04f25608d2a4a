//! The optional WAL archive directory (`replication.archive_dir`): before
//! the janitor removes a segment of the batch log it copies it here, and
//! the shipper reads batches from these copies when a secondary needs WAL
//! the log no longer has, so a secondary that was offline for long catches
//! up without a full copy. Files are named by their first sequence number;
//! the directory is the operator's to prune.

use std::path::{Path, PathBuf};

use duet_storage::batch_log::{parse_segment_name, read_segment, segment_name, Segment};
use duet_storage::CommittedBatch;

use crate::error::{ReplError, ReplResult};

pub struct WalArchive {
    dir: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ReplError {
    ReplError::Failed(format!(
        "WAL archive: cannot {what} {}: {e}",
        path.display()
    ))
}

impl WalArchive {
    pub fn open(dir: &Path) -> ReplResult<WalArchive> {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        Ok(WalArchive {
            dir: dir.to_path_buf(),
        })
    }

    /// Copies a sealed segment in (once), durably, before the log's copy
    /// goes.
    pub fn save(&self, segment: &Segment) -> ReplResult<()> {
        let name = segment_name(segment.first_seq);
        let target = self.dir.join(&name);
        if target.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::copy(&segment.path, &tmp).map_err(|e| io("copy into", &tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io("rename", &target, e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", &self.dir, e))
    }

    /// Removes every copy (after this node's data was replaced by a copy
    /// of another node's: its old WAL belongs to another history).
    pub fn clear(&self) -> ReplResult<()> {
        for (_, path) in self.files()? {
            std::fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
        }
        Ok(())
    }

    /// (first sequence number, path), oldest first.
    fn files(&self) -> ReplResult<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io("list", &self.dir, e))? {
            let path = entry.map_err(|e| io("list", &self.dir, e))?.path();
            if let Some(first) = parse_segment_name(&path) {
                files.push((first, path));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The first sequence number the archive holds.
    pub fn oldest(&self) -> ReplResult<Option<u64>> {
        Ok(self.files()?.first().map(|(f, _)| *f))
    }

    /// Up to `limit` batches starting exactly at `next`, from the copies.
    pub fn batches_from(&self, next: u64, limit: usize) -> ReplResult<Vec<CommittedBatch>> {
        let files = self.files()?;
        let Some(start) = files.iter().rposition(|(first, _)| *first <= next) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut expected = next;
        for (_, path) in &files[start..] {
            for batch in read_segment(path)? {
                if batch.seq < expected {
                    continue;
                }
                if batch.seq != expected {
                    return Ok(out); // a hole: the caller falls back to a copy
                }
                expected = batch.next_seq();
                out.push(batch);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}
