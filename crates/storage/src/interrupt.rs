//! Cooperative cancellation of a running statement: CancelRequest and
//! statement_timeout both end up here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use crate::error::{StorageError, StorageResult};

/// Shared between a session and whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// Requests cancellation of the statement now running.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Clears a pending request (at the start of each statement).
    pub fn reset(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }

    pub fn is_canceled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

/// What a long-running operation checks: cancellation and a deadline.
#[derive(Debug, Clone, Default)]
pub struct StatementControl {
    pub interrupt: Interrupt,
    pub deadline: Option<Instant>,
}

impl StatementControl {
    /// Errors if the statement was canceled or ran past its deadline.
    pub fn check(&self) -> StorageResult<()> {
        if self.interrupt.is_canceled() {
            return Err(StorageError::Canceled);
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return Err(StorageError::Timeout);
            }
        }
        Ok(())
    }
}
