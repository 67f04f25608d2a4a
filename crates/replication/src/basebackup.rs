//! The initial full copy: a RocksDB checkpoint of the primary, streamed
//! file by file in CopyData frames over the replication connection, and
//! written into the secondary's staging directory.
//!
//! Frames: `h` {files, bytes} once, then per file `f` {name, size} and
//! `d` chunks, then `z` {} at the end. Names are relative and checked on
//! the receiving side.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use duet_storage::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::{ReplError, ReplResult};

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Totals {
    files: u64,
    bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileHeader {
    name: String,
    size: u64,
}

fn frame(kind: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + body.len());
    b.put_u8(kind);
    b.put_slice(body);
    b.freeze()
}

fn json_frame<T: Serialize>(kind: u8, value: &T) -> Bytes {
    frame(kind, &serde_json::to_vec(value).unwrap_or_default())
}

/// Makes a checkpoint of `store` and streams it as frames on a channel
/// (read on a blocking thread); the checkpoint is removed afterwards.
pub fn send(store: &Store) -> ReplResult<mpsc::Receiver<ReplResult<Bytes>>> {
    let dir = store.data_dir().join(format!(
        "backup-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    ));
    crate::blocking(|| store.engine().checkpoint(&dir))?;
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let result = stream_dir(&dir, &tx);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    Ok(rx)
}

fn stream_dir(dir: &Path, tx: &mpsc::Sender<ReplResult<Bytes>>) -> ReplResult<()> {
    let io = |e: std::io::Error| ReplError::Failed(format!("reading the checkpoint: {e}"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            files.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata().map_err(io)?.len(),
            ));
        }
    }
    files.sort();
    let send = |b: Bytes| {
        tx.blocking_send(Ok(b))
            .map_err(|_| ReplError::Failed("the secondary went away during the copy".into()))
    };
    send(json_frame(
        b'h',
        &Totals {
            files: files.len() as u64,
            bytes: files.iter().map(|(_, s)| s).sum(),
        },
    ))?;
    let mut buf = vec![0u8; CHUNK];
    for (name, size) in files {
        send(json_frame(
            b'f',
            &FileHeader {
                name: name.clone(),
                size,
            },
        ))?;
        let mut f = std::fs::File::open(dir.join(&name)).map_err(io)?;
        let mut left = size;
        while left > 0 {
            let n = f.read(&mut buf[..CHUNK.min(left as usize)]).map_err(io)?;
            if n == 0 {
                return Err(ReplError::Failed(format!(
                    "checkpoint file {name} shrank while being copied"
                )));
            }
            send(frame(b'd', &buf[..n]))?;
            left -= n as u64;
        }
    }
    send(frame(b'z', b"{}"))?;
    Ok(())
}

/// Receives a copy into a staging directory.
pub struct Receiver {
    dir: PathBuf,
    file: Option<(std::fs::File, String, u64)>,
    pub total_bytes: u64,
    pub received_bytes: u64,
    done: bool,
}

impl Receiver {
    /// Starts a copy into `dir`, which is emptied first.
    pub fn new(dir: &Path) -> ReplResult<Receiver> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| ReplError::Failed(format!("cannot clear {}: {e}", dir.display())))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| ReplError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Receiver {
            dir: dir.to_path_buf(),
            file: None,
            total_bytes: 0,
            received_bytes: 0,
            done: false,
        })
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handles one frame of the copy.
    pub fn handle(&mut self, frame: &[u8]) -> ReplResult<()> {
        let bad = |what: &str| ReplError::Failed(format!("bad initial-copy frame: {what}"));
        let (kind, body) = frame.split_first().ok_or_else(|| bad("empty"))?;
        match kind {
            b'h' => {
                let totals: Totals = serde_json::from_slice(body).map_err(|_| bad("header"))?;
                self.total_bytes = totals.bytes;
            }
            b'f' => {
                self.finish_file()?;
                let header: FileHeader =
                    serde_json::from_slice(body).map_err(|_| bad("file header"))?;
                let name = Path::new(&header.name);
                let plain = name.components().count() == 1
                    && matches!(name.components().next(), Some(Component::Normal(_)));
                if !plain {
                    return Err(bad("file name is not a plain name"));
                }
                let f = std::fs::File::create(self.dir.join(name))
                    .map_err(|e| ReplError::Failed(format!("cannot write {}: {e}", header.name)))?;
                self.file = Some((f, header.name, header.size));
            }
            b'd' => {
                let (f, name, left) = self
                    .file
                    .as_mut()
                    .ok_or_else(|| bad("data before a file"))?;
                if body.len() as u64 > *left {
                    return Err(bad("more data than the file's size"));
                }
                f.write_all(body)
                    .map_err(|e| ReplError::Failed(format!("cannot write {name}: {e}")))?;
                *left -= body.len() as u64;
                self.received_bytes += body.len() as u64;
            }
            b'z' => {
                self.finish_file()?;
                std::fs::File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| ReplError::Failed(format!("cannot sync the copy: {e}")))?;
                self.done = true;
            }
            _ => return Err(bad("unknown kind")),
        }
        Ok(())
    }

    fn finish_file(&mut self) -> ReplResult<()> {
        if let Some((f, name, left)) = self.file.take() {
            if left != 0 {
                return Err(ReplError::Failed(format!(
                    "initial copy of {name} ended {left} bytes short"
                )));
            }
            f.sync_all()
                .map_err(|e| ReplError::Failed(format!("cannot sync {name}: {e}")))?;
        }
        Ok(())
    }
}
