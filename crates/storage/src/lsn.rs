//! The LSN as users see it: a commit's RocksDB sequence number, written in
//! PostgreSQL's `X/X` notation (so status views and LSN functions look
//! familiar).

/// PostgreSQL's LSN notation (`X/X`) for a RocksDB sequence number.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses an LSN as [`format_lsn`] prints it (PostgreSQL's `X/X`, hex).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
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
        assert_eq!(super::parse_lsn("1/A2"), Some(0x1_0000_00A2));
        assert_eq!(super::parse_lsn("0/11"), Some(17));
        assert_eq!(super::parse_lsn("11"), None);
        assert_eq!(super::parse_lsn("1/100000000"), None);
    }
}
