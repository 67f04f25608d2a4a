//! What the status views show (SPEC 4.4), updated by the stream tasks.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::watch;

/// The secondary's view of its stream (pg_stat_wal_receiver).
#[derive(Debug, Clone, Default)]
pub struct ReceiverStatus {
    /// "starting", "copying", "streaming", "stopped", "error".
    pub state: String,
    pub primary_lsn: u64,
    pub received_lsn: u64,
    pub flushed_lsn: u64,
    pub applied_lsn: u64,
    pub last_message: Option<SystemTime>,
    /// Commit time on the secondary of the last applied batch.
    pub last_replay: Option<SystemTime>,
    pub last_error: Option<String>,
    /// Initial copy: (bytes received, bytes total).
    pub copy_progress: Option<(u64, u64)>,
    /// What the last re-copy threw away of this node's own history (the
    /// commits it made that its new primary never had), for the operator.
    pub discarded: Option<String>,
}

/// One secondary as its primary sees it (pg_stat_replication).
#[derive(Debug, Clone, Default)]
pub struct SenderStatus {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: String,
    pub user: String,
    pub slot: String,
    /// "catchup", "streaming", "backup", "stopping".
    pub state: String,
    pub sent_lsn: u64,
    pub write_lsn: u64,
    pub flush_lsn: u64,
    pub replay_lsn: u64,
    pub started: Option<SystemTime>,
    pub last_reply: Option<SystemTime>,
    /// Time from sending a batch to its acknowledgement, last measured.
    pub write_lag: Option<std::time::Duration>,
    pub flush_lag: Option<std::time::Duration>,
    pub replay_lag: Option<std::time::Duration>,
}

/// The highest positions any secondary has acknowledged (for commits
/// waiting on synchronous replication).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acks {
    pub written: u64,
    pub flushed: u64,
    pub applied: u64,
}

/// What a synchronous commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    Written,
    Flushed,
    Applied,
}

impl Acks {
    pub fn reached(&self, level: AckLevel, lsn: u64) -> bool {
        match level {
            AckLevel::Written => self.written >= lsn,
            AckLevel::Flushed => self.flushed >= lsn,
            AckLevel::Applied => self.applied >= lsn,
        }
    }
}

/// Shared status boards.
pub struct StatusBoard {
    pub receiver: Mutex<ReceiverStatus>,
    pub senders: Mutex<BTreeMap<i32, SenderStatus>>,
    pub acks: watch::Sender<Acks>,
    /// Bytes of WAL kept for each replication slot, as of the janitor's
    /// last pass.
    pub slot_wal_bytes: Mutex<BTreeMap<String, u64>>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard {
            receiver: Mutex::default(),
            senders: Mutex::default(),
            acks: watch::channel(Acks::default()).0,
            slot_wal_bytes: Mutex::default(),
        }
    }
}

impl StatusBoard {
    pub fn receiver(&self) -> ReceiverStatus {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_receiver(&self, f: impl FnOnce(&mut ReceiverStatus)) {
        f(&mut self.receiver.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn slot_wal_bytes(&self) -> BTreeMap<String, u64> {
        self.slot_wal_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn senders(&self) -> Vec<SenderStatus> {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn update_sender(&self, pid: i32, f: impl FnOnce(&mut SenderStatus)) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        f(senders.entry(pid).or_default())
    }

    /// Records a secondary's acknowledgement; wakes waiting commits.
    pub fn acknowledge(&self, written: u64, flushed: u64, applied: u64) {
        self.acks.send_if_modified(|a| {
            let before = *a;
            a.written = a.written.max(written);
            a.flushed = a.flushed.max(flushed);
            a.applied = a.applied.max(applied);
            *a != before
        });
    }

    pub fn remove_sender(&self, pid: i32) {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
    }
}
