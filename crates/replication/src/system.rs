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

fn epoch_key(epoch: u64) -> Vec<u8> {
    let mut k = EPOCH_PREFIX.to_vec();
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// (epoch, LSN of its first batch), oldest first. Epoch 0 (the node's
/// first life) is implicit and starts at LSN 0.
pub fn epoch_history(engine: &Engine) -> ReplResult<Vec<(u64, u64)>> {
    let mut history = vec![(0, 0)];
    for epoch in 1.. {
        match engine.get_committed(&epoch_key(epoch))? {
            Some(v) => {
                let lsn: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| ReplError::State(format!("epoch {epoch} record is malformed")))?;
                history.push((epoch, u64::from_be_bytes(lsn)));
            }
            None => break,
        }
    }
    Ok(history)
}

/// Starts a new epoch at the next LSN: the promotion's own batch.
pub fn begin_epoch(engine: &Engine, epoch: u64) -> ReplResult<u64> {
    let lsn = engine.latest_sequence_number() + 1;
    let written = engine.write_unfenced(&[(epoch_key(epoch), lsn.to_be_bytes().to_vec())])?;
    if written != lsn {
        return Err(ReplError::Failed(format!(
            "epoch {epoch} began at LSN {written}, expected {lsn}: a write raced the promotion"
        )));
    }
    Ok(lsn)
}

/// Whether a node at `lsn` in `epoch` can continue from a primary whose
/// history is `history`: true if everything it has is on the primary.
/// False means the histories diverged (it wrote past the point where the
/// primary's next epoch began) and it must be re-copied.
pub fn can_follow(history: &[(u64, u64)], epoch: u64, lsn: u64) -> bool {
    match history.iter().find(|(e, _)| *e > epoch) {
        // The primary moved to a later epoch at `start`: the follower's
        // batches must all be before it.
        Some((_, start)) => lsn < *start,
        // Same epoch (or the follower is ahead in epochs: not a prefix).
        None => history.last().map(|(e, _)| *e == epoch).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn following_needs_a_common_prefix() {
        let history = [(0, 0), (1, 100), (2, 250)];
        // A former primary of epoch 0 that stopped at LSN 99: a prefix.
        assert!(can_follow(&history, 0, 99));
        // It wrote LSN 100 itself before the promotion: diverged.
        assert!(!can_follow(&history, 0, 100));
        assert!(can_follow(&history, 1, 249));
        assert!(!can_follow(&history, 1, 260));
        // Same epoch: anything goes (the primary checks the LSN exists).
        assert!(can_follow(&history, 2, 300));
        // A follower claiming a later epoch than the primary knows.
        assert!(!can_follow(&history, 3, 10));
    }
}
