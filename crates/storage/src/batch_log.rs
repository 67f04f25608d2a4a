//! duet's own copy of every committed batch, kept for replication: a
//! secondary that fell behind catches up from it, replication slots decide
//! how much of it stays, and the archive directory saves its segments.
//!
//! RocksDB's WAL is what makes a commit durable. RocksDB could keep its WAL
//! files for replication itself (an archive with a TTL), but then it cannot
//! recycle them, and the fsync of a commit into a fresh WAL file also
//! writes the file's size and extents, which an overwrite of a recycled
//! file does not (a quarter of the fsync here, docs/benchmarks.md). So
//! RocksDB recycles its WAL files and this log keeps the history: each
//! batch is appended right after RocksDB wrote it, under one lock, so in
//! sequence order, with no fsync of its own on the commit path (a
//! background thread syncs it once a second, and a segment is synced when
//! it is sealed). A crash of the process loses nothing (the appends are in
//! the page cache); after a crash of the machine the newest part may be
//! missing or torn: at open the log is cut after its last whole record and
//! refilled from RocksDB's live WAL ([`BatchLog::fill`]); what RocksDB no
//! longer has leaves a hole, and a secondary that needs it re-copies.
//!
//! Segment files `<first sequence number, 20 digits>.seg` hold records
//! `length (u32 LE) | crc32 of the batch (u32 LE) | batch`, the batch in
//! RocksDB's WriteBatch format with its sequence number in its header.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::batch::{header_count, header_seq, CommittedBatch, HEADER_LEN};
use crate::error::{StorageError, StorageResult};

/// A segment is sealed (and a new one started) past this size, unless
/// [`BatchLog::limit_segment_bytes`] set a smaller one.
const SEGMENT_BYTES: u64 = 16 << 20;
const RECORD_HEADER: usize = 8;
const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// Sequence number of its first batch.
    pub first_seq: u64,
    /// Bytes of whole records (for the segment being written, at the time
    /// it was listed).
    pub size: u64,
    /// The segment being appended to (never deleted).
    pub active: bool,
}

pub struct BatchLog {
    dir: PathBuf,
    /// Size past which a segment is sealed.
    segment_bytes: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    sealed: Vec<Segment>,
    active: Option<Active>,
    /// Where the next batch is expected to start (0: the log is empty).
    next_seq: u64,
    /// A record being assembled (reused).
    buf: Vec<u8>,
}

struct Active {
    segment: Segment,
    file: Arc<File>,
    synced: u64,
}

/// Present in the log's directory once a segment was dropped.
const TRIMMED_MARKER: &str = "TRIMMED";

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::from_message(format!("batch log: cannot {what} {}: {e}", path.display()))
}

/// A segment's file name (also its copy's in the archive directory).
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number a segment file's name gives, if it names one.
pub fn parse_segment_name(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".seg")?
        .parse()
        .ok()
}

/// The sequence numbers a batch uses: its first and the one after its last.
fn batch_range(data: &[u8]) -> Option<(u64, u64)> {
    let seq = header_seq(data)?;
    Some((seq, seq + header_count(data)?))
}

/// Reads the next whole record; None at the end or at a torn or corrupt
/// record (the caller tells the two apart by where it stopped).
fn read_record(reader: &mut impl Read, limit: u64, offset: &mut u64) -> Option<Vec<u8>> {
    if *offset + RECORD_HEADER as u64 > limit {
        return None;
    }
    let mut header = [0u8; RECORD_HEADER];
    reader.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as u64;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len < HEADER_LEN as u64 || *offset + RECORD_HEADER as u64 + len > limit {
        return None;
    }
    let mut data = vec![0u8; len as usize];
    reader.read_exact(&mut data).ok()?;
    if crc32fast::hash(&data) != crc {
        return None;
    }
    *offset += RECORD_HEADER as u64 + len;
    Some(data)
}

/// Every whole record of a segment file (a copy in the archive directory
/// too), in order; stops at a torn or corrupt tail.
pub fn read_segment(path: &Path) -> StorageResult<Vec<CommittedBatch>> {
    let file = File::open(path).map_err(|e| io_err("open", path, e))?;
    let limit = file.metadata().map_err(|e| io_err("stat", path, e))?.len();
    let mut reader = BufReader::new(file);
    let mut offset = 0;
    let mut batches = Vec::new();
    while let Some(data) = read_record(&mut reader, limit, &mut offset) {
        if let Some(seq) = header_seq(&data) {
            batches.push(CommittedBatch {
                seq,
                data: data.into(),
            });
        }
    }
    Ok(batches)
}

impl BatchLog {
    /// Opens the log in `dir` (created if missing), cutting a torn tail
    /// off its newest segment, and starts its background sync.
    pub fn open(dir: &Path) -> StorageResult<Arc<BatchLog>> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))? {
            let path = entry.map_err(|e| io_err("list", dir, e))?.path();
            if let Some(first_seq) = parse_segment_name(&path) {
                let size = std::fs::metadata(&path)
                    .map_err(|e| io_err("stat", &path, e))?
                    .len();
                segments.push(Segment {
                    path,
                    first_seq,
                    size,
                    active: false,
                });
            }
        }
        segments.sort_by_key(|s| s.first_seq);
        let mut next_seq = 0;
        let mut active = None;
        if let Some(last) = segments.pop() {
            let (whole, next) = Self::recover_tail(&last.path)?;
            if whole == 0 {
                std::fs::remove_file(&last.path).map_err(|e| io_err("remove", &last.path, e))?;
            } else {
                next_seq = next;
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| io_err("open", &last.path, e))?;
                active = Some(Active {
                    segment: Segment {
                        size: whole,
                        active: true,
                        ..last
                    },
                    file: Arc::new(file),
                    synced: whole,
                });
            }
        }
        if active.is_none() {
            // The newest sealed segment's end is where the log goes on.
            if let Some(last) = segments.last() {
                next_seq = read_segment(&last.path)?
                    .last()
                    .map_or(last.first_seq, |b| b.next_seq());
            }
        }
        let log = Arc::new(BatchLog {
            dir: dir.to_path_buf(),
            segment_bytes: SEGMENT_BYTES.into(),
            inner: Mutex::new(Inner {
                sealed: segments,
                active,
                next_seq,
                buf: Vec::new(),
            }),
        });
        Self::start_sync(Arc::downgrade(&log));
        Ok(log)
    }

    /// Scans the newest segment: cuts it after its last whole record
    /// (durably), and returns that length and the sequence number after
    /// its last batch.
    fn recover_tail(path: &Path) -> StorageResult<(u64, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_err("open", path, e))?;
        let len = file.metadata().map_err(|e| io_err("stat", path, e))?.len();
        let mut reader = BufReader::new(&file);
        let mut offset = 0;
        let mut next = 0;
        while let Some(data) = read_record(&mut reader, len, &mut offset) {
            if let Some((_, end)) = batch_range(&data) {
                next = end;
            }
        }
        drop(reader);
        if offset < len {
            tracing::warn!(
                segment = %path.display(),
                kept = offset,
                cut = len - offset,
                "batch log: cutting a torn tail (the machine stopped while it was written)"
            );
            file.set_len(offset)
                .map_err(|e| io_err("truncate", path, e))?;
            file.sync_all().map_err(|e| io_err("sync", path, e))?;
        }
        Ok((offset, next))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the append lock: a writer holds it across its RocksDB write
    /// and its [`Appender::append`], so batches land in sequence order.
    pub(crate) fn appender(&self) -> Appender<'_> {
        Appender {
            log: self,
            inner: self.lock(),
        }
    }

    /// Where the next batch is expected to start (0 while the log is empty).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Every segment, oldest first; the last may be the active one.
    pub fn segments(&self) -> Vec<Segment> {
        let inner = self.lock();
        let mut segments = inner.sealed.clone();
        segments.extend(inner.active.as_ref().map(|a| a.segment.clone()));
        segments
    }

    /// Seals the active segment (the next batch starts a new one).
    pub fn rotate(&self) -> StorageResult<()> {
        self.lock().seal()
    }

    /// Seals segments past `bytes` (at most the default 16 MB), so that a
    /// small retention limit can be kept in whole segments.
    pub fn limit_segment_bytes(&self, bytes: u64) {
        self.segment_bytes.store(
            bytes.clamp(1, SEGMENT_BYTES),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Removes a sealed segment.
    pub fn remove(&self, segment: &Segment) -> StorageResult<()> {
        self.mark_trimmed()?;
        let mut inner = self.lock();
        let Some(i) = inner.sealed.iter().position(|s| s.path == segment.path) else {
            return Err(StorageError::Engine(format!(
                "{} is not a sealed batch log segment",
                segment.path.display()
            )));
        };
        let removed = inner.sealed.remove(i);
        drop(inner);
        std::fs::remove_file(&removed.path).map_err(|e| io_err("remove", &removed.path, e))
    }

    /// Whether segments were ever dropped: if not, the log holds every
    /// batch since the node was created or copied.
    pub fn trimmed(&self) -> bool {
        self.dir.join(TRIMMED_MARKER).exists()
    }

    /// Records, durably and before the first segment goes, that the log
    /// no longer starts where the node's own history does.
    fn mark_trimmed(&self) -> StorageResult<()> {
        let marker = self.dir.join(TRIMMED_MARKER);
        if marker.exists() {
            return Ok(());
        }
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .and_then(|_| File::open(&self.dir))
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("create", &marker, e))
    }

    /// Batches from the one holding `after + 1` on, up to the end of the
    /// log as it is now. The first one starts past `after + 1` when the
    /// log no longer (or never) held that far back.
    pub fn read_after(&self, after: u64) -> BatchLogReader {
        let target = after.saturating_add(1);
        let segments = self.segments();
        let start = segments
            .iter()
            .rposition(|s| s.first_seq <= target)
            .unwrap_or(0);
        BatchLogReader {
            segments: segments.into_iter().skip(start).collect(),
            current: None,
            target,
        }
    }

    /// Makes every append so far durable.
    pub fn sync(&self) -> StorageResult<()> {
        let (file, path, size) = {
            let inner = self.lock();
            match &inner.active {
                Some(a) if a.synced < a.segment.size => {
                    (a.file.clone(), a.segment.path.clone(), a.segment.size)
                }
                _ => return Ok(()),
            }
        };
        file.sync_data().map_err(|e| io_err("sync", &path, e))?;
        let mut inner = self.lock();
        if let Some(a) = inner.active.as_mut().filter(|a| a.segment.path == path) {
            a.synced = a.synced.max(size);
        }
        Ok(())
    }

    fn start_sync(log: Weak<BatchLog>) {
        let spawned = std::thread::Builder::new()
            .name("duet-batch-log-sync".into())
            .spawn(move || loop {
                std::thread::sleep(SYNC_PERIOD);
                let Some(log) = log.upgrade() else { return };
                if let Err(e) = log.sync() {
                    tracing::warn!(error = %e, "batch log: background sync failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "batch log: cannot start the background sync; segments are synced when sealed");
        }
    }
}

/// The append lock (see [`BatchLog::appender`]).
pub(crate) struct Appender<'a> {
    log: &'a BatchLog,
    inner: MutexGuard<'a, Inner>,
}

impl Appender<'_> {
    /// Appends batches RocksDB wrote from `seq` on, one after the other
    /// (a group commit's commits, a secondary's burst), with one write;
    /// each header's sequence number is set to where the batch landed. A
    /// run that does not follow the previous one (after a hole) starts a
    /// new segment.
    pub(crate) fn append(&mut self, seq: u64, batches: &[&[u8]]) -> StorageResult<()> {
        let inner = &mut *self.inner;
        if inner.next_seq != 0 && seq != inner.next_seq {
            tracing::warn!(
                expected = inner.next_seq,
                got = seq,
                "batch log: a hole; a secondary that needs what is missing re-copies"
            );
            inner.seal()?;
        }
        if inner.active.is_none() {
            let path = self.log.dir.join(segment_name(seq));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_err("create", &path, e))?;
            File::open(&self.log.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("sync", &self.log.dir, e))?;
            inner.active = Some(Active {
                segment: Segment {
                    path,
                    first_seq: seq,
                    size: 0,
                    active: true,
                },
                file: Arc::new(file),
                synced: 0,
            });
        }
        inner.buf.clear();
        let mut next = seq;
        for data in batches {
            let Some(body) = data.get(8..) else { continue };
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&next.to_le_bytes());
            hasher.update(body);
            inner
                .buf
                .extend_from_slice(&(data.len() as u32).to_le_bytes());
            inner
                .buf
                .extend_from_slice(&hasher.finalize().to_le_bytes());
            inner.buf.extend_from_slice(&next.to_le_bytes());
            inner.buf.extend_from_slice(body);
            next += header_count(data).unwrap_or(0);
        }
        let Some(active) = inner.active.as_mut() else {
            return Ok(());
        };
        if let Err(e) = (&*active.file).write_all(&inner.buf) {
            // A partial record would hide every later one: cut it off.
            let _ = active.file.set_len(active.segment.size);
            return Err(io_err("append to", &active.segment.path, e));
        }
        active.segment.size += inner.buf.len() as u64;
        inner.next_seq = next;
        let segment_bytes = self
            .log
            .segment_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if active.segment.size >= segment_bytes {
            inner.seal()?;
        }
        Ok(())
    }
}

impl Inner {
    /// Syncs the active segment and moves it to the sealed ones.
    fn seal(&mut self) -> StorageResult<()> {
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        if active.synced < active.segment.size {
            active
                .file
                .sync_data()
                .map_err(|e| io_err("sync", &active.segment.path, e))?;
        }
        self.sealed.push(Segment {
            active: false,
            ..active.segment
        });
        Ok(())
    }
}

/// Reads batches back (see [`BatchLog::read_after`]).
pub struct BatchLogReader {
    /// The segments left to read, each up to its listed size.
    segments: std::collections::VecDeque<Segment>,
    current: Option<(BufReader<File>, u64, u64, PathBuf)>,
    /// Batches that end before this are skipped.
    target: u64,
}

impl Iterator for BatchLogReader {
    type Item = StorageResult<CommittedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let segment = self.segments.pop_front()?;
                let file = match File::open(&segment.path) {
                    Ok(file) => file,
                    // Removed by the janitor meanwhile: the caller sees
                    // the next batch start later than it asked for.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Some(Err(io_err("open", &segment.path, e))),
                };
                self.current = Some((BufReader::new(file), 0, segment.size, segment.path));
            }
            let (reader, offset, limit, path) = self.current.as_mut()?;
            let Some(data) = read_record(reader, *limit, offset) else {
                if *offset < *limit {
                    return Some(Err(StorageError::Corrupt(format!(
                        "batch log segment {} is corrupt at offset {offset}",
                        path.display()
                    ))));
                }
                self.current = None;
                continue;
            };
            let Some((seq, end)) = batch_range(&data) else {
                continue;
            };
            if end <= self.target && seq < self.target {
                continue;
            }
            return Some(Ok(CommittedBatch {
                seq,
                data: data.into(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RawBatch;

    /// A batch of `n` puts (its header's sequence number is left 0: the
    /// log stamps it).
    fn batch(n: usize) -> Vec<u8> {
        let mut b = RawBatch::new();
        for i in 0..n {
            b.put(format!("k{i}").as_bytes(), b"v");
        }
        b.data().to_vec()
    }

    fn seqs(log: &BatchLog, after: u64) -> Vec<(u64, u64)> {
        log.read_after(after)
            .map(|b| b.unwrap())
            .map(|b| (b.seq, b.count()))
            .collect()
    }

    #[test]
    fn batches_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = BatchLog::open(dir.path()).unwrap();
        let mut seq = 1;
        for i in 0..30 {
            log.appender().append(seq, &[&batch(1 + i % 3)]).unwrap();
            seq += 1 + i as u64 % 3;
            if i % 10 == 9 {
                log.rotate().unwrap();
            }
        }
        assert_eq!(log.next_seq(), seq);
        assert_eq!(log.segments().len(), 3);
        let all = seqs(&log, 0);
        assert_eq!(all.len(), 30);
        assert_eq!(all[0], (1, 1));
        // From the batch holding after + 1: seq 3 is inside (2, count 2).
        assert_eq!(seqs(&log, 2)[0], (2, 2));
        assert_eq!(seqs(&log, 3)[0], (4, 3));
        // The header carries the sequence number.
        let first = log.read_after(3).next().unwrap().unwrap();
        assert_eq!(header_seq(&first.data), Some(4));
        // A run of batches (a group commit) is one append.
        log.appender()
            .append(seq, &[&batch(2), &batch(1), &batch(3)])
            .unwrap();
        assert_eq!(seqs(&log, seq - 1), [(seq, 2), (seq + 2, 1), (seq + 3, 3)]);
        seq += 6;
        assert_eq!(log.next_seq(), seq);
        // A removed segment: reading from there starts later, and the log
        // says (for good) that it no longer starts where the node did.
        assert!(!log.trimmed());
        let oldest = log.segments()[0].clone();
        log.remove(&oldest).unwrap();
        assert!(seqs(&log, 0)[0].0 > 1);
        assert!(log.trimmed());
        drop(log);
        let log = BatchLog::open(dir.path()).unwrap();
        assert!(log.trimmed());
        // The active segment cannot be removed.
        log.appender().append(seq, &[&batch(1)]).unwrap();
        let active = log.segments().last().unwrap().clone();
        assert!(active.active);
        assert!(log.remove(&active).is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_at_open_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = BatchLog::open(dir.path()).unwrap();
        for seq in 1..=5 {
            log.appender().append(seq, &[&batch(1)]).unwrap();
        }
        let path = log.segments()[0].path.clone();
        let whole = log.segments()[0].size;
        drop(log);
        // The machine stopped in the middle of the sixth record.
        let mut sixth = Vec::new();
        sixth.extend_from_slice(&100u32.to_le_bytes());
        sixth.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&sixth)
            .unwrap();
        let log = BatchLog::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(log.next_seq(), 6);
        log.appender().append(6, &[&batch(2)]).unwrap();
        assert_eq!(
            seqs(&log, 0),
            [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2)]
        );
        // A corrupt record in the middle of a segment is an error, not
        // an early end.
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD_HEADER + 14] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = BatchLog {
            dir: dir.path().to_path_buf(),
            segment_bytes: SEGMENT_BYTES.into(),
            inner: Mutex::new(Inner {
                sealed: vec![Segment {
                    path: path.clone(),
                    first_seq: 1,
                    size: bytes.len() as u64,
                    active: false,
                }],
                active: None,
                next_seq: 8,
                buf: Vec::new(),
            }),
        };
        assert!(log.read_after(0).next().unwrap().is_err());
    }

    #[test]
    fn a_hole_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let log = BatchLog::open(dir.path()).unwrap();
        log.appender().append(1, &[&batch(2)]).unwrap();
        log.appender().append(10, &[&batch(1)]).unwrap();
        let segments = log.segments();
        assert_eq!(
            segments.iter().map(|s| s.first_seq).collect::<Vec<_>>(),
            [1, 10]
        );
        assert_eq!(seqs(&log, 0), [(1, 2), (10, 1)]);
        assert_eq!(seqs(&log, 4), [(10, 1)]);
        drop(log);
        // Reopened: the newest segment goes on.
        let log = BatchLog::open(dir.path()).unwrap();
        assert_eq!(log.next_seq(), 11);
        assert_eq!(read_segment(&segments[1].path).unwrap().len(), 1);
    }
}
