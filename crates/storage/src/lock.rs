//! Row locks: writers lock the keys they change until commit or rollback,
//! waiting for a concurrent holder. A wait-for graph detects deadlocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{StorageError, StorageResult};
use crate::interrupt::StatementControl;

pub type TxnId = u64;

struct LockEntry {
    holder: TxnId,
    released: Arc<Notify>,
}

#[derive(Default)]
struct LockTable {
    locks: HashMap<Vec<u8>, LockEntry>,
    /// waiter -> holder it waits for (a transaction waits for one lock at a time)
    waits_for: HashMap<TxnId, TxnId>,
}

/// The in-process lock manager shared by all transactions of a node.
#[derive(Default)]
pub struct LockManager {
    table: Mutex<LockTable>,
}

impl LockManager {
    /// Acquires the lock on `key` for `txn`, waiting for another holder to
    /// finish. Returns true if newly acquired, false if already held.
    pub async fn lock(
        &self,
        txn: TxnId,
        key: &[u8],
        ctl: &StatementControl,
    ) -> StorageResult<bool> {
        loop {
            let released = {
                let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
                let holder = match t.locks.get(key) {
                    None => {
                        t.locks.insert(
                            key.to_vec(),
                            LockEntry {
                                holder: txn,
                                released: Arc::new(Notify::new()),
                            },
                        );
                        return Ok(true);
                    }
                    Some(e) if e.holder == txn => return Ok(false),
                    Some(e) => e.holder,
                };
                // Deadlock check: does the holder (transitively) wait for us?
                let mut h = holder;
                let mut steps = 0;
                while let Some(&next) = t.waits_for.get(&h) {
                    if next == txn || steps > 10_000 {
                        return Err(StorageError::Deadlock);
                    }
                    h = next;
                    steps += 1;
                }
                t.waits_for.insert(txn, holder);
                t.locks.get(key).map(|e| e.released.clone())
            };
            let Some(released) = released else { continue };
            let notified = released.notified();
            tokio::pin!(notified);
            // Register before re-checking so a release in between is not missed.
            notified.as_mut().enable();
            // Still held by the same holder we registered against? If the lock
            // changed hands meanwhile, its new entry has a new Notify: retry.
            let still_held = {
                let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
                matches!(t.locks.get(key), Some(e) if e.holder != txn && Arc::ptr_eq(&e.released, &released))
            };
            let outcome = if still_held {
                self.wait(notified, ctl).await
            } else {
                Ok(())
            };
            self.table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waits_for
                .remove(&txn);
            outcome?;
        }
    }

    async fn wait(
        &self,
        notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        ctl: &StatementControl,
    ) -> StorageResult<()> {
        // Register for cancellation before checking the flag, so a cancel
        // arriving in between is not missed.
        let canceled = ctl.interrupt.notify().notified();
        tokio::pin!(canceled);
        canceled.as_mut().enable();
        ctl.check()?;
        let timeout = async {
            match ctl.deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => Ok(()),
            _ = canceled => Err(StorageError::Canceled),
            _ = timeout => Err(StorageError::Timeout),
        }
    }

    /// Releases every lock in `keys` held by `txn`, waking waiters.
    pub fn release_all<'a>(&self, txn: TxnId, keys: impl IntoIterator<Item = &'a Vec<u8>>) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if matches!(t.locks.get(key), Some(e) if e.holder == txn) {
                if let Some(e) = t.locks.remove(key) {
                    e.released.notify_waiters();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn second_locker_waits_for_release() {
        let lm = Arc::new(LockManager::default());
        let ctl = StatementControl::default();
        assert!(lm.lock(1, b"k", &ctl).await.unwrap());
        assert!(!lm.lock(1, b"k", &ctl).await.unwrap());
        let lm2 = lm.clone();
        let waiter =
            tokio::spawn(async move { lm2.lock(2, b"k", &StatementControl::default()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        lm.release_all(1, [&b"k".to_vec()]);
        assert!(waiter.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn deadlock_is_detected() {
        let lm = Arc::new(LockManager::default());
        let ctl = StatementControl::default();
        lm.lock(1, b"a", &ctl).await.unwrap();
        lm.lock(2, b"b", &ctl).await.unwrap();
        let lm2 = lm.clone();
        let t1 = tokio::spawn(async move { lm2.lock(1, b"b", &StatementControl::default()).await });
        // Wait until txn 1 is registered as waiting, then close the cycle.
        for _ in 0..100 {
            if lm.table.lock().unwrap().waits_for.contains_key(&1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = lm.lock(2, b"a", &ctl).await.unwrap_err();
        assert!(matches!(err, StorageError::Deadlock));
        lm.release_all(2, [&b"b".to_vec()]);
        assert!(t1.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn cancel_interrupts_a_wait() {
        let lm = Arc::new(LockManager::default());
        lm.lock(1, b"k", &StatementControl::default())
            .await
            .unwrap();
        let ctl = StatementControl::default();
        let interrupt = ctl.interrupt.clone();
        let lm2 = lm.clone();
        let waiter = tokio::spawn(async move { lm2.lock(2, b"k", &ctl).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        interrupt.cancel();
        assert!(matches!(waiter.await.unwrap(), Err(StorageError::Canceled)));
    }
}
