//! Test-only hooks a node turns on when started with `DUET_TEST_HOOKS=1`
//! in its environment: never in production, where the functions they add
//! do not exist.

use std::sync::atomic::{AtomicBool, Ordering};

static PANIC_HOOK: AtomicBool = AtomicBool::new(false);

/// Turns on `duet_test_panic(text)`, a function that panics inside the
/// session that calls it.
pub fn enable_panic_hook() {
    PANIC_HOOK.store(true, Ordering::Relaxed);
}

pub fn panic_hook_enabled() -> bool {
    PANIC_HOOK.load(Ordering::Relaxed)
}
