//! Replication slots on a primary (SPEC 4.3): each secondary's slot holds
//! the WAL after its last flushed LSN; `max_slot_wal_keep_size` bounds the
//! archive, and a slot whose WAL had to go is marked lost (its secondary
//! re-copies by itself). A janitor task trims the archive once a second.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::error::ReplResult;
use crate::node::Replication;
use crate::state::{Role, Slot};

const JANITOR_PERIOD: Duration = Duration::from_secs(1);

impl Replication {
    /// CREATE_REPLICATION_SLOT: creates the slot at `lsn`, or revives a
    /// lost one whose secondary has been re-copied.
    pub fn create_slot(&self, name: &str, lsn: u64) -> ReplResult<()> {
        self.update_state_in_memory(|state| {
            let slot = state.slots.entry(name.to_string()).or_insert(Slot {
                restart_lsn: lsn,
                lost: true,
            });
            if slot.lost {
                *slot = Slot {
                    restart_lsn: lsn,
                    lost: false,
                };
                return true;
            }
            false
        });
        self.save_if_dirty()
    }

    /// DROP_REPLICATION_SLOT.
    pub fn drop_slot(&self, name: &str) -> ReplResult<()> {
        self.update_state_in_memory(|state| state.slots.remove(name).is_some());
        self.save_if_dirty()
    }

    /// The secondary flushed `lsn`: the WAL up to it may go. Kept in
    /// memory; the janitor saves it.
    pub(crate) fn advance_slot(&self, name: &str, lsn: u64) {
        self.update_state_in_memory(|state| match state.slots.get_mut(name) {
            Some(slot) if lsn > slot.restart_lsn => {
                slot.restart_lsn = lsn;
                true
            }
            _ => false,
        });
    }

    /// Starts the task that trims the WAL archive.
    pub fn spawn_janitor(self: &Arc<Self>, max_keep_bytes: u64) {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(JANITOR_PERIOD);
            loop {
                tick.tick().await;
                let Some(node) = node.upgrade() else { return };
                let result =
                    tokio::task::spawn_blocking(move || node.trim_wal(max_keep_bytes)).await;
                if let Ok(Err(e)) = result {
                    warn!(error = %e, "trimming the WAL archive failed");
                }
            }
        });
    }

    /// One janitor pass: keep the WAL the slots need, within the limit.
    fn trim_wal(&self, max_keep_bytes: u64) -> ReplResult<()> {
        self.store.remove_retired();
        let engine = self.store.engine();
        // Before listing the files: commits made during this pass are in
        // files the listing may not show, and must not count as missing.
        let latest = engine.latest_sequence_number();
        let state = self.state();
        // Rotate a live WAL that grew past half the limit, so the archive
        // can be trimmed in whole files.
        let mut live = engine.live_wal_files()?;
        let live_bytes: u64 = live.iter().map(|f| f.size).sum();
        if state.role == Role::Primary && live_bytes > max_keep_bytes / 2 {
            engine.flush_memtable()?;
            live = engine.live_wal_files()?;
        }
        let archived = engine.archived_wal_files()?;
        let oldest_live = live.iter().filter_map(|f| f.first_seq).min();
        // Each archived file holds the sequence numbers up to the next
        // file's first one.
        let mut ends: Vec<u64> = Vec::with_capacity(archived.len());
        for (i, file) in archived.iter().enumerate() {
            let next = archived[i + 1..]
                .iter()
                .find_map(|f| f.first_seq)
                .or(oldest_live)
                .unwrap_or(latest + 1);
            ends.push(next.saturating_sub(1));
            debug_assert!(file.size > 0 || file.first_seq.is_none());
        }
        let needed_after = state
            .slots
            .values()
            .filter(|s| !s.lost)
            .map(|s| s.restart_lsn)
            .min();
        // Delete from the oldest file on, while a file is empty, holds
        // nothing a slot needs (with no slots, everything is kept up to the
        // limit: a secondary may be copying), or the archive is over the
        // limit; the first file kept ends the pass (no holes).
        let mut total: u64 = archived.iter().map(|f| f.size).sum();
        let mut oldest_kept: Option<u64> = None;
        let mut deleted = 0;
        for (file, end) in archived.iter().zip(&ends) {
            let needed = needed_after.is_none_or(|lsn| *end > lsn);
            if file.first_seq.is_some() && needed && total <= max_keep_bytes {
                oldest_kept = file.first_seq;
                break;
            }
            deleted += 1;
            if let Some(archive) = &self.archive {
                archive.save(file)?;
            }
            engine.delete_archived_wal(file)?;
            total = total.saturating_sub(file.size);
        }
        // Slots whose next batch is no longer in any WAL file (RocksDB's
        // or the archive directory's copies) are lost.
        let archived_copy = match &self.archive {
            Some(archive) => archive.oldest()?,
            None => None,
        };
        let oldest_available = archived_copy
            .or(oldest_kept)
            .or(oldest_live)
            .unwrap_or(latest + 1);
        let mut lost = Vec::new();
        self.update_state_in_memory(|state| {
            for (name, slot) in state.slots.iter_mut() {
                if !slot.lost
                    && slot.restart_lsn < latest
                    && slot.restart_lsn.saturating_add(1) < oldest_available
                {
                    slot.lost = true;
                    lost.push((name.clone(), slot.restart_lsn));
                }
            }
            !lost.is_empty()
        });
        for (name, lsn) in &lost {
            warn!(
                slot = %name,
                restart_lsn = lsn,
                max_slot_wal_keep_size_bytes = max_keep_bytes,
                "replication slot lost: its WAL exceeded max_slot_wal_keep_size; the secondary will re-copy"
            );
        }
        // WAL each slot holds back: the archived files it still needs and
        // the live WAL (for /metrics).
        let kept: Vec<(u64, u64)> = archived
            .iter()
            .zip(&ends)
            .skip(deleted)
            .map(|(f, end)| (f.size, *end))
            .collect();
        let retained = self
            .state()
            .slots
            .iter()
            .map(|(name, slot)| {
                let archived: u64 = kept
                    .iter()
                    .filter(|(_, end)| !slot.lost && *end > slot.restart_lsn)
                    .map(|(size, _)| size)
                    .sum();
                (name.clone(), archived + live_bytes)
            })
            .collect();
        *self
            .status
            .slot_wal_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = retained;
        self.save_if_dirty()?;
        Ok(())
    }
}
