//! Busy polling between statements.
//!
//! A client that sends its next statement right after a reply (a driver
//! in a loop, pgbench, a batch job) mostly finds the session's thread
//! asleep in `epoll_wait`: waking it costs an inter-processor interrupt,
//! and in a VM the exit and re-entry of a halted vCPU, about 45 µs
//! measured here in each direction, three times what a point query
//! executes in. So a session alone on its shard keeps polling its socket,
//! and the shard's other I/O, for a short window after a reply instead of
//! parking at once, as Linux's `busy_read` does for network queues; a
//! request that arrives in the window is served without the wake-up.
//!
//! The cost is CPU: up to `busy_poll_us` of spinning per wait. It is only
//! paid while it pays off: after a wait that outlasted the window (a
//! client that thinks, an idle connection) the session parks at once,
//! until a message again comes within the window. A shard with other
//! sessions never spins (its thread has their work to do, and spinning
//! would take CPU from everything else on a small machine).

use std::time::{Duration, Instant};

/// One session's busy-poll state.
#[derive(Debug)]
pub(crate) struct BusyPoll {
    window: Duration,
    /// Whether the last wait for the client ended within the window.
    paid_off: bool,
    /// When the current wait began, while the session waits.
    waiting_since: Option<Instant>,
}

impl BusyPoll {
    /// Polls for up to `window` (zero turns busy polling off).
    pub(crate) fn new(window: Duration) -> BusyPoll {
        BusyPoll {
            window,
            paid_off: true,
            waiting_since: None,
        }
    }

    /// Starts a wait for the client; returns the deadline of a busy poll
    /// if one is worth it now.
    pub(crate) fn start_wait(&mut self) -> Option<Instant> {
        let now = Instant::now();
        self.waiting_since = Some(now);
        (!self.window.is_zero() && self.paid_off && alone_on_shard()).then(|| now + self.window)
    }

    /// Whether a busy poll that began with [`BusyPoll::start_wait`] goes on.
    pub(crate) fn keep_polling(deadline: Instant) -> bool {
        Instant::now() < deadline && alone_on_shard()
    }

    /// Ends a wait: a message came.
    pub(crate) fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.paid_off = since.elapsed() <= self.window;
        }
    }
}

/// True when the current task is the only one on its runtime (a shard
/// serving just this session).
fn alone_on_shard() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_alive_tasks() <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_worker_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_wait_longer_than_the_window_stops_polling_until_a_short_one() {
        single_worker_runtime().block_on(async {
            // A window far longer than any stall between two statements
            // of a busy test machine.
            let mut poll = BusyPoll::new(Duration::from_millis(500));
            assert!(poll.start_wait().is_some(), "polls at first");
            tokio::time::sleep(Duration::from_millis(600)).await;
            poll.end_wait();
            assert!(poll.start_wait().is_none(), "the long wait did not pay");
            poll.end_wait();
            assert!(poll.start_wait().is_some(), "a short wait turns it back on");
        });
    }

    #[test]
    fn a_shard_with_other_sessions_or_a_zero_window_never_polls() {
        let runtime = single_worker_runtime();
        runtime.block_on(async {
            let mut off = BusyPoll::new(Duration::ZERO);
            assert!(off.start_wait().is_none());
        });
        let (_keep, parked) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(parked);
        let shared = runtime.spawn(async {
            let mut poll = BusyPoll::new(Duration::from_millis(20));
            poll.start_wait().is_none()
        });
        assert!(runtime.block_on(shared).expect("task"));
    }
}
