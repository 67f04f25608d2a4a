//! systemd's service protocol (`Type=notify`): READY=1 once the node
//! listens, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1
//! when its shutdown starts, and WATCHDOG=1 pings at half the `WatchdogSec`
//! interval. All of it does nothing when systemd
//! (NOTIFY_SOCKET) is not there.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

fn notify(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, state) {
        warn!("cannot notify systemd: {e}");
    }
}

/// The node accepts connections.
pub(crate) fn ready() {
    notify(&[NotifyState::Ready]);
    if let Some(usec) = watchdog_usec() {
        let every = Duration::from_micros(usec / 2);
        debug!("systemd watchdog: pinging every {every:?}");
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// WATCHDOG_USEC, unless WATCHDOG_PID names another process (as
/// libsystemd's sd_watchdog_enabled reads them; systemd sets both).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        _ => (usec > 0).then_some(usec),
    }
}

/// Shutdown has begun.
pub(crate) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// A configuration reload (SIGHUP) has begun; [`reloaded`] ends it.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// The reload is over (whether or not the new configuration loaded).
pub(crate) fn reloaded() {
    notify(&[NotifyState::Ready]);
}
