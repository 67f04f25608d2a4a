//! Replicated node-level keys, under prefix 0x00 (the SQL catalog and data
//! use 0x01 and up): the system id, which names a history (a copy of a
//! primary has its id), and the epoch history, one key per promotion with
//! the LSN at which that epoch began. Two nodes with the same system id
//! share history up to the first epoch start that one of them lacks.

use duet_storage::Engine;

use crate::error::{ReplError, ReplResult};

const SYSTEM_ID_KEY: &[u8] = b"\x00\x01system_id";
const EPOCH_PREFIX: &[u8] = b"\x00\x02epoch";

/// The system id, creating it on a node that has none (first start).
pub fn ensure_system_id(engine: &Engine) -> ReplResult<String> {
    if let Some(id) = system_id(engine)? {
        return Ok(id);
    }
    let id = new_system_id();
    engine.write_unfenced(&[(SYSTEM_ID_KEY.to_vec(), id.as_bytes().to_vec())])?;
    Ok(id)
}

pub fn system_id(engine: &Engine) -> ReplResult<Option<String>> {
    Ok(engine
        .get_committed(SYSTEM_ID_KEY)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

fn new_system_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos, std::process::id())
}

fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mix in the time for good measure.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() | 1
}

fn epoch_key(epoch: u64) -> Vec<u8> {
    let mut k = EPOCH_PREFIX.to_vec();
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// One promotion: its epoch number, the LSN of its first batch, and a
/// random token, so that two promotions that picked the same number (two
/// secondaries of one primary, both promoted) are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: u64,
    pub start: u64,
    pub token: u64,
}

impl Epoch {
    /// `epoch:start:token`, as IDENTIFY_SYSTEM and START_REPLICATION
    /// carry it.
    pub fn to_text(&self) -> String {
        format!("{}:{}:{:x}", self.epoch, self.start, self.token)
    }

    pub fn from_text(text: &str) -> Option<Epoch> {
        let mut parts = text.split(':');
        let epoch = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let token = u64::from_str_radix(parts.next()?, 16).ok()?;
        parts.next().is_none().then_some(Epoch {
            epoch,
            start,
            token,
        })
    }
}

/// The node's epochs, oldest first. Epoch 0 (the node's first life) is
/// implicit: it starts at LSN 0 with token 0.
pub fn epoch_history(engine: &Engine) -> ReplResult<Vec<Epoch>> {
    let mut history = vec![Epoch {
        epoch: 0,
        start: 0,
        token: 0,
    }];
    for epoch in 1.. {
        let Some(v) = engine.get_committed(&epoch_key(epoch))? else {
            break;
        };
        let field = |range: std::ops::Range<usize>| -> ReplResult<u64> {
            let bytes: [u8; 8] = v
                .get(range)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ReplError::State(format!("epoch {epoch} record is malformed")))?;
            Ok(u64::from_be_bytes(bytes))
        };
        history.push(Epoch {
            epoch,
            start: field(0..8)?,
            token: field(8..16)?,
        });
    }
    Ok(history)
}

/// The epoch the node is in: its last record.
pub fn current_epoch(history: &[Epoch]) -> Epoch {
    history.last().copied().unwrap_or(Epoch {
        epoch: 0,
        start: 0,
        token: 0,
    })
}

/// Starts a new epoch at the next LSN: the promotion's own batch.
pub fn begin_epoch(engine: &Engine, epoch: u64) -> ReplResult<u64> {
    let lsn = engine.latest_sequence_number() + 1;
    let mut value = lsn.to_be_bytes().to_vec();
    value.extend_from_slice(&random_token().to_be_bytes());
    let written = engine.write_unfenced(&[(epoch_key(epoch), value)])?;
    if written != lsn {
        return Err(ReplError::Failed(format!(
            "epoch {epoch} began at LSN {written}, expected {lsn}: a write raced the promotion"
        )));
    }
    Ok(lsn)
}

/// Whether a node whose last epoch is `current` and whose data ends at
/// `lsn` can continue from a primary whose history is `history`: true if
/// everything it has is on the primary. False means the histories
/// diverged (it is in an epoch the primary never had, or it wrote past the
/// point where the primary's next epoch began) and it must be re-copied.
pub fn can_follow(history: &[Epoch], current: Epoch, lsn: u64) -> bool {
    let Some(i) = history.iter().position(|e| *e == current) else {
        return false;
    };
    match history.get(i + 1) {
        // The primary moved on to a later epoch at `start`: the follower's
        // batches must all be before it.
        Some(next) => lsn < next.start,
        // Same epoch: anything the primary has (checked by the caller).
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: u64, start: u64, token: u64) -> Epoch {
        Epoch {
            epoch,
            start,
            token,
        }
    }

    #[test]
    fn following_needs_a_common_prefix() {
        let history = [e(0, 0, 0), e(1, 100, 7), e(2, 250, 9)];
        // A former primary of epoch 0 that stopped at LSN 99: a prefix.
        assert!(can_follow(&history, e(0, 0, 0), 99));
        // It wrote LSN 100 itself before the promotion: diverged.
        assert!(!can_follow(&history, e(0, 0, 0), 100));
        assert!(can_follow(&history, e(1, 100, 7), 249));
        assert!(!can_follow(&history, e(1, 100, 7), 260));
        // Same epoch: anything goes (the caller checks the LSN exists).
        assert!(can_follow(&history, e(2, 250, 9), 300));
        // A follower in an epoch the primary never had.
        assert!(!can_follow(&history, e(3, 10, 1), 10));
        // Another promotion that picked the same number: diverged.
        assert!(!can_follow(&history, e(1, 120, 8), 110));
        assert!(!can_follow(&history, e(1, 100, 8), 110));
        assert_eq!(
            Epoch::from_text(&e(2, 250, 9).to_text()),
            Some(e(2, 250, 9))
        );
        assert_eq!(Epoch::from_text("2:250"), None);
    }
}
