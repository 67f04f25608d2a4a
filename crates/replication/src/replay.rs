//! The secondary's write pipeline: the [`Applier`] that merges shipped
//! batches into bursts, and how each burst is written. Live, a burst is a
//! few batches, written and synced on the stream's own thread (a hand-off
//! to another thread would add a cross-CPU wake-up, tens of µs, to the
//! commit-to-visible lag). Catching up, a burst is written on a blocking
//! thread while the stream reads, checks and merges the next one, and the
//! WAL is synced at most every [`BACKGROUND_SYNC_INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use duet_storage::Engine;
use tokio::time::Instant;

use crate::applier::{Applier, BackgroundWrite};
use crate::error::ReplResult;
use crate::status::StatusBoard;

/// A burst this long means the secondary is catching up (live, at most a
/// few commits queue up between two bursts): it is then written in the
/// background while the next one is read.
pub const CATCH_UP_BURST: usize = 64;

/// While catching up, the WAL is synced (and the primary told what is
/// durable) at least this often: a sync blocks the next write, and only
/// the primary's acknowledgements wait for it.
pub const BACKGROUND_SYNC_INTERVAL: Duration = Duration::from_millis(20);

pub struct Replay {
    pub applier: Applier,
    /// The burst being written in the background, if any.
    writing: Option<BackgroundWrite>,
    last_sync: Instant,
    engine: Arc<Engine>,
    status: Arc<StatusBoard>,
}

impl Replay {
    pub fn new(lsn: u64, engine: Arc<Engine>, status: Arc<StatusBoard>) -> Replay {
        Replay {
            applier: Applier::new(lsn),
            writing: None,
            last_sync: Instant::now(),
            engine,
            status,
        }
    }

    /// Whether a burst is being written in the background.
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Waits until the background write is done and counts it (pending
    /// forever without one). Cancel-safe: the write stays in place until
    /// it has finished.
    pub async fn written(&mut self) -> ReplResult<()> {
        let Some(w) = self.writing.as_mut() else {
            return std::future::pending().await;
        };
        let done = w.finish().await;
        self.writing = None;
        self.applier.written(done?);
        Ok(())
    }

    /// Waits for the background write, if any.
    async fn settle(&mut self) -> ReplResult<()> {
        if self.is_writing() {
            self.written().await?;
        }
        Ok(())
    }

    /// Writes and syncs everything received, here, once any background
    /// write is done.
    pub async fn flush(&mut self) -> ReplResult<()> {
        self.settle().await?;
        let Replay {
            applier,
            engine,
            status,
            ..
        } = self;
        crate::blocking(|| applier.flush(engine, status))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Ends a burst of `taken` messages: in the background if that many
    /// had queued up (after the previous background write is done: one
    /// write at a time, in LSN order), else here.
    pub async fn end_burst(&mut self, taken: usize) -> ReplResult<()> {
        if taken < CATCH_UP_BURST && !self.applier.burst_full() {
            return self.flush().await;
        }
        self.settle().await?;
        if let Some(burst) = self.applier.take()? {
            let sync = self.last_sync.elapsed() >= BACKGROUND_SYNC_INTERVAL;
            if sync {
                self.last_sync = Instant::now();
            }
            self.writing = Some(BackgroundWrite::start(
                burst,
                sync,
                self.engine.clone(),
                self.status.clone(),
            ));
        }
        Ok(())
    }
}
