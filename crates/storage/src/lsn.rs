//! The LSN as users see it: a commit's RocksDB sequence number, written in
//! PostgreSQL's `X/X` notation (so status views and LSN functions look
//! familiar).

/// PostgreSQL's LSN notation (`X/X`) for a RocksDB sequence number.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Runs blocking work (fsync, WAL reads, waiting for commits, a scan) from
/// async code without stalling the worker's other tasks: on a multi-thread
/// runtime (the server's shards are) the worker hands its tasks to another
/// thread meanwhile; elsewhere (current-thread tests, plain threads) it
/// just runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsns_print_as_postgresql_does() {
        assert_eq!(super::format_lsn(0x1_0000_00A2), "1/A2");
        assert_eq!(super::format_lsn(17), "0/11");
    }
}
