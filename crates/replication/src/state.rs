//! The node's replication state (SPEC 4.1): role, epoch, primary URL and
//! service state. Node-local: kept in `replication.json` in the data
//! directory, outside the replicated keyspace, written with fsync + rename
//! so a crash leaves the old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ReplError, ReplResult};

const STATE_FILE: &str = "replication.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A regular, read-write node with no replication.
    #[default]
    Default,
    /// Read-write; ships its batches to a secondary.
    Primary,
    /// Read-only hot standby; replays its primary's batches.
    Secondary,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Default => "DEFAULT",
            Role::Primary => "PRIMARY",
            Role::Secondary => "SECONDARY",
        })
    }
}

/// The replication service on a secondary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// No service (SERVICE CREATE not run, or dropped).
    #[default]
    None,
    /// Created (slot made, copy done), not streaming.
    Created,
    /// Streaming; resumes by itself after restarts.
    Running,
    /// Paused by SERVICE STOP at a consistent LSN; slot kept.
    Stopped,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::None => "NONE",
            Service::Created => "CREATED",
            Service::Running => "RUNNING",
            Service::Stopped => "STOPPED",
        })
    }
}

/// What a node remembers about replication across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeState {
    pub role: Role,
    /// Fencing term: bumped by every promotion. Batches and commands from
    /// a node with a lower epoch are refused.
    pub epoch: u64,
    /// The primary's URL as the operator wrote it (password included, as
    /// libpq keeps it in its service file; this file is mode 0600).
    pub primary_url: Option<String>,
    pub service: Service,
    /// Name of this node's slot on its primary.
    pub slot: Option<String>,
    /// On a primary: its secondaries' slots.
    pub slots: BTreeMap<String, Slot>,
}

/// A replication slot: the primary keeps the WAL after `restart_lsn` for
/// the secondary that owns it, up to `max_slot_wal_keep_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Slot {
    /// The secondary's flushed LSN, as last acknowledged.
    pub restart_lsn: u64,
    /// The WAL after `restart_lsn` was removed (over the size limit): the
    /// secondary must re-copy (it does so by itself).
    pub lost: bool,
}

/// The state file of one data directory.
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(data_dir: &Path) -> StateFile {
        StateFile {
            path: data_dir.join(STATE_FILE),
        }
    }

    /// The stored state, or the default (a DEFAULT node) if none was saved.
    pub fn load(&self) -> ReplResult<NodeState> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ReplError::State(format!("{} is not valid: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeState::default()),
            Err(e) => Err(ReplError::State(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub fn save(&self, state: &NodeState) -> ReplResult<()> {
        let fail = |e: std::io::Error| {
            ReplError::State(format!("cannot write {}: {e}", self.path.display()))
        };
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| ReplError::State(format!("cannot encode the replication state: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(fail)?;
        f.write_all(&bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_reload_and_defaults_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load().unwrap(), NodeState::default());
        let state = NodeState {
            role: Role::Secondary,
            epoch: 3,
            primary_url: Some("postgresql://root@127.0.0.1:1/defaultdb".into()),
            service: Service::Running,
            slot: Some("duet_abc".into()),
            slots: BTreeMap::from([(
                "duet_x".to_string(),
                Slot {
                    restart_lsn: 7,
                    lost: false,
                },
            )]),
        };
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
    }
}
