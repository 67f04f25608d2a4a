//! The messages of a replication stream, carried in CopyData frames (as in
//! PostgreSQL's walsender protocol: a one-byte kind, then fixed fields).
//!
//! Primary -> secondary: `w` a batch (epoch, LSN, CRC-32 of the batch,
//! batch bytes), `k` a keepalive (the primary's LSN), `e` the stop point
//! (LSN and content checksum, after SERVICE STOP).
//! Secondary -> primary: `r` its written / flushed / applied LSNs, `x` a
//! stop request.

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryMessage {
    Batch { epoch: u64, lsn: u64, data: Bytes },
    Keepalive { lsn: u64, reply_requested: bool },
    StopPoint { lsn: u64, checksum: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondaryMessage {
    Status {
        written: u64,
        flushed: u64,
        applied: u64,
    },
    Stop,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty replication frame")]
    Empty,
    #[error("unknown replication frame kind {0:?}")]
    UnknownKind(char),
    #[error("replication frame {0:?} is truncated")]
    Truncated(char),
    #[error("batch at LSN {lsn} failed its CRC check")]
    BadCrc { lsn: u64 },
    #[error("replication frame {0:?} is malformed")]
    Malformed(char),
}

/// Reads fixed-size big-endian fields off the front of a frame.
struct Reader<'a> {
    kind: char,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u64(&mut self) -> Result<u64, FrameError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(FrameError::Truncated(self.kind))?;
        self.rest = tail;
        Ok(u64::from_be_bytes(*head))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(FrameError::Truncated(self.kind))?;
        self.rest = tail;
        Ok(u32::from_be_bytes(*head))
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        let (head, tail) = self
            .rest
            .split_first()
            .ok_or(FrameError::Truncated(self.kind))?;
        self.rest = tail;
        Ok(*head)
    }
}

fn split(frame: &[u8]) -> Result<Reader<'_>, FrameError> {
    let (kind, rest) = frame.split_first().ok_or(FrameError::Empty)?;
    Ok(Reader {
        kind: *kind as char,
        rest,
    })
}

impl PrimaryMessage {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            PrimaryMessage::Batch { epoch, lsn, data } => {
                b.reserve(21 + data.len());
                b.put_u8(b'w');
                b.put_u64(*epoch);
                b.put_u64(*lsn);
                b.put_u32(crc32fast::hash(data));
                b.put_slice(data);
            }
            PrimaryMessage::Keepalive {
                lsn,
                reply_requested,
            } => {
                b.put_u8(b'k');
                b.put_u64(*lsn);
                b.put_u8(*reply_requested as u8);
            }
            PrimaryMessage::StopPoint { lsn, checksum } => {
                b.put_u8(b'e');
                b.put_u64(*lsn);
                b.put_slice(checksum.as_bytes());
            }
        }
        b.freeze()
    }

    pub fn decode(frame: Bytes) -> Result<PrimaryMessage, FrameError> {
        let mut r = split(&frame)?;
        match r.kind {
            'w' => {
                let epoch = r.u64()?;
                let lsn = r.u64()?;
                let crc = r.u32()?;
                let data = frame.slice(frame.len() - r.rest.len()..);
                if crc32fast::hash(&data) != crc {
                    return Err(FrameError::BadCrc { lsn });
                }
                Ok(PrimaryMessage::Batch { epoch, lsn, data })
            }
            'k' => Ok(PrimaryMessage::Keepalive {
                lsn: r.u64()?,
                reply_requested: r.u8()? != 0,
            }),
            'e' => {
                let lsn = r.u64()?;
                let checksum = std::str::from_utf8(r.rest)
                    .map_err(|_| FrameError::Malformed('e'))?
                    .to_string();
                Ok(PrimaryMessage::StopPoint { lsn, checksum })
            }
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

impl SecondaryMessage {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            SecondaryMessage::Status {
                written,
                flushed,
                applied,
            } => {
                b.put_u8(b'r');
                b.put_u64(*written);
                b.put_u64(*flushed);
                b.put_u64(*applied);
            }
            SecondaryMessage::Stop => b.put_u8(b'x'),
        }
        b.freeze()
    }

    pub fn decode(frame: &[u8]) -> Result<SecondaryMessage, FrameError> {
        let mut r = split(frame)?;
        match r.kind {
            'r' => Ok(SecondaryMessage::Status {
                written: r.u64()?,
                flushed: r.u64()?,
                applied: r.u64()?,
            }),
            'x' => Ok(SecondaryMessage::Stop),
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for m in [
            PrimaryMessage::Batch {
                epoch: 2,
                lsn: 77,
                data: Bytes::from_static(b"batch bytes"),
            },
            PrimaryMessage::Keepalive {
                lsn: 9,
                reply_requested: true,
            },
            PrimaryMessage::StopPoint {
                lsn: 9,
                checksum: "3:abcd".into(),
            },
        ] {
            assert_eq!(PrimaryMessage::decode(m.encode()).unwrap(), m);
        }
        for m in [
            SecondaryMessage::Status {
                written: 3,
                flushed: 2,
                applied: 1,
            },
            SecondaryMessage::Stop,
        ] {
            assert_eq!(SecondaryMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn corrupted_and_truncated_frames_are_rejected() {
        let m = PrimaryMessage::Batch {
            epoch: 1,
            lsn: 5,
            data: Bytes::from_static(b"payload"),
        };
        let mut bytes = m.encode().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(
            PrimaryMessage::decode(Bytes::from(bytes)),
            Err(FrameError::BadCrc { lsn: 5 })
        );
        assert_eq!(
            PrimaryMessage::decode(Bytes::from_static(b"w\0\0")),
            Err(FrameError::Truncated('w'))
        );
        assert_eq!(PrimaryMessage::decode(Bytes::new()), Err(FrameError::Empty));
        assert_eq!(
            SecondaryMessage::decode(b"q"),
            Err(FrameError::UnknownKind('q'))
        );
    }
}
