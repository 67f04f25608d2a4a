//! Replication slots on a primary (SPEC 4.3): each secondary's slot holds
//! the WAL (the batch log's segments, see duet_storage::batch_log) after
//! its last flushed LSN; `max_slot_wal_keep_size` bounds the log, and a
//! slot whose WAL had to go is marked lost (its secondary re-copies by
//! itself). A janitor task trims the log once a second.

use std::sync::Arc;
use std::time::Duration;

use duet_storage::VERIFY_WINDOW;
use tracing::warn;

use crate::error::ReplResult;
use crate::node::Replication;
use crate::state::Slot;

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

    /// Starts the task that trims the batch log.
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
                    warn!(error = %e, "trimming the batch log failed");
                }
            }
        });
    }

    /// One janitor pass: keep the batch log the slots need, within the
    /// limit.
    fn trim_wal(&self, max_keep_bytes: u64) -> ReplResult<()> {
        self.store.remove_retired();
        let engine = self.store.engine();
        let log = engine.batch_log();
        // Before listing the segments: commits made during this pass are
        // in segments the listing may not show, and must not count as
        // missing.
        let latest = engine.latest_sequence_number();
        let state = self.state();
        // Segments of at most half the limit, so the log can be trimmed
        // in whole segments.
        log.limit_segment_bytes(max_keep_bytes / 2);
        let segments = log.segments();
        // Each segment holds the sequence numbers up to the next one's
        // first.
        let ends: Vec<u64> = (0..segments.len())
            .map(|i| {
                segments
                    .get(i + 1)
                    .map_or(latest, |next| next.first_seq.saturating_sub(1))
            })
            .collect();
        let needed_after = state
            .slots
            .values()
            .filter(|s| !s.lost)
            .map(|s| s.restart_lsn)
            .min();
        // Delete from the oldest sealed segment on, while it holds nothing
        // a slot needs (with no slots, everything is kept up to the limit:
        // a secondary may be copying) or the log is over the limit; the
        // first segment kept ends the pass (no holes).
        let mut total: u64 = segments.iter().map(|s| s.size).sum();
        let mut deleted = 0;
        for (segment, end) in segments.iter().zip(&ends) {
            // A slot also needs the LSNs its secondary proves its last
            // commits with when it reconnects (see `sender::verify_tail`).
            let needed = needed_after.is_none_or(|lsn| *end > lsn.saturating_sub(VERIFY_WINDOW));
            if segment.active || (needed && total <= max_keep_bytes) {
                break;
            }
            if let Some(archive) = &self.archive {
                archive.save(segment)?;
            }
            log.remove(segment)?;
            total = total.saturating_sub(segment.size);
            deleted += 1;
        }
        let oldest_kept = segments.get(deleted).map(|s| s.first_seq);
        // Slots whose next batch is no longer in the log or the archive
        // directory's copies are lost.
        let archived_copy = match &self.archive {
            Some(archive) => archive.oldest()?,
            None => None,
        };
        let oldest_available = archived_copy.or(oldest_kept).unwrap_or(latest + 1);
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
        // WAL each slot holds back (for /metrics).
        let kept: Vec<(u64, u64)> = segments
            .iter()
            .zip(&ends)
            .skip(deleted)
            .map(|(s, end)| (s.size, *end))
            .collect();
        let retained = self
            .state()
            .slots
            .iter()
            .map(|(name, slot)| {
                let bytes: u64 = kept
                    .iter()
                    .filter(|(_, end)| !slot.lost && *end > slot.restart_lsn)
                    .map(|(size, _)| size)
                    .sum();
                (name.clone(), bytes)
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
