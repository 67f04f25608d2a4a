//! Connections run on shards: one single-worker runtime per CPU, each with
//! its own I/O driver, instead of one work-stealing runtime. A message on
//! a socket then wakes the one thread that owns the connection, with no
//! hand-off between workers (cross-CPU wake-ups dominated profiles of
//! short queries). A shard is still a multi-thread-flavored runtime, so a
//! long statement can `block_in_place` and its other sessions move on.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Handle, Runtime};

pub(crate) struct Shards {
    runtimes: Vec<Runtime>,
    next: AtomicUsize,
}

impl Shards {
    /// One shard per CPU (at least one), its threads with `stack_size`
    /// bytes of stack (see `duet_sql::depth`).
    pub(crate) fn new(stack_size: usize) -> std::io::Result<Shards> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtimes = (0..n)
            .map(|i| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_stack_size(stack_size)
                    .thread_name(format!("duet-shard-{i}"))
                    .enable_all()
                    .build()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Shards {
            runtimes,
            next: AtomicUsize::new(0),
        })
    }

    /// The shard for the next connection (round robin).
    pub(crate) fn next(&self) -> Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len();
        self.runtimes[i].handle().clone()
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        // Runtimes may not be dropped (blocking) inside an async context.
        for runtime in self.runtimes.drain(..) {
            runtime.shutdown_background();
        }
    }
}
