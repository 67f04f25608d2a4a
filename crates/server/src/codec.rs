//! The frame codec used after TLS negotiation.
//!
//! pgwire's own server codec decodes message bodies straight out of the
//! receive buffer, so a message whose body is shorter than its fields can
//! read into the next message or panic. This codec first cuts exactly one
//! frame (type byte + length) out of the buffer, then lets pgwire decode that
//! frame alone, so a malformed message is an error for that message only
//! (answered with FATAL 08P01) and never desynchronises or crashes the task.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, BytesMut};
use pgwire::error::PgWireError;
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion,
};
use tokio_util::codec::{Decoder, Encoder};

/// Largest frontend message accepted after startup (PostgreSQL's limit for
/// one message is 1 GB).
const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;
/// How far ahead of the bytes received the buffer grows for a long
/// message: its length field alone never allocates a gigabyte.
const MAX_RESERVE_AHEAD: usize = 64 << 10;

/// Largest startup-phase packet (StartupMessage, CancelRequest), as in
/// PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const MAX_STARTUP_LEN: usize = 10_000;

/// Which kind of frames the peer sends next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Untyped packets: StartupMessage or CancelRequest.
    Startup,
    /// Typed messages: authentication responses and queries.
    Normal,
}

/// Why a frame could not be decoded: always a protocol violation.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Protocol(String),
    /// A startup packet asking for a protocol major version other than 3.
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug)]
pub struct PgCodec {
    /// What the next frame is; the connection moves it to Normal after
    /// the startup packet.
    pub phase: Phase,
}

impl PgCodec {
    pub fn new() -> Self {
        PgCodec {
            phase: Phase::Startup,
        }
    }
}

impl Default for PgCodec {
    fn default() -> Self {
        PgCodec::new()
    }
}

fn decode_frame(
    frame: &mut BytesMut,
    startup: bool,
) -> Result<Option<PgWireFrontendMessage>, CodecError> {
    // Cancel keys may be 4 bytes (3.0) or longer (3.2); decoding as 3.2
    // accepts both as bytes.
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_2);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = startup;
    let result = catch_unwind(AssertUnwindSafe(|| {
        PgWireFrontendMessage::decode(frame, &ctx)
    }));
    match result {
        Ok(Ok(Some(msg))) => Ok(Some(msg)),
        Ok(Ok(None)) => Err(CodecError::Protocol("incomplete message".into())),
        Ok(Err(e)) => Err(CodecError::Protocol(describe_decode_error(e))),
        Err(_) => Err(CodecError::Protocol("invalid message format".into())),
    }
}

fn describe_decode_error(e: PgWireError) -> String {
    match e {
        PgWireError::InvalidMessageType(t) => {
            format!("invalid frontend message type {t}")
        }
        PgWireError::InvalidStartupMessage => "invalid startup packet layout".into(),
        other => format!("invalid message: {other}"),
    }
}

impl Decoder for PgCodec {
    type Item = PgWireFrontendMessage;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.phase {
            Phase::Startup => {
                if src.len() < 4 {
                    return Ok(None);
                }
                let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                if len < 8 || len as usize > MAX_STARTUP_LEN {
                    return Err(CodecError::Protocol(
                        "invalid length of startup packet".into(),
                    ));
                }
                let len = len as usize;
                if src.len() < len {
                    src.reserve((len - src.len()).min(MAX_RESERVE_AHEAD));
                    return Ok(None);
                }
                let mut frame = src.split_to(len);
                let code = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
                // 1234.x are the SSL/GSS/cancel request codes.
                if major != 3 && major != 1234 {
                    return Err(CodecError::Unsupported(format!(
                        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                    )));
                }
                decode_frame(&mut frame, true)
            }
            Phase::Normal => {
                if src.len() < 5 {
                    return Ok(None);
                }
                let len = i32::from_be_bytes([src[1], src[2], src[3], src[4]]);
                if len < 4 || len as usize > MAX_MESSAGE_LEN {
                    return Err(CodecError::Protocol(format!(
                        "invalid message length {len} for message type \"{}\"",
                        src[0].escape_ascii()
                    )));
                }
                let total = 1 + len as usize;
                if src.len() < total {
                    src.reserve((total - src.len()).min(MAX_RESERVE_AHEAD));
                    return Ok(None);
                }
                let mut frame = src.split_to(total);
                crate::frame_check::check(frame[0], &frame[5..]).map_err(CodecError::Protocol)?;
                let msg = decode_frame(&mut frame, false)?;
                // A body longer than its fields is tolerated (PostgreSQL
                // checks it per message type; clients never send one).
                frame.advance(frame.remaining());
                Ok(msg)
            }
        }
    }
}

impl Encoder<PgWireBackendMessage> for PgCodec {
    type Error = io::Error;

    fn encode(&mut self, item: PgWireBackendMessage, dst: &mut BytesMut) -> Result<(), io::Error> {
        item.encode(dst)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn truncated_bind_is_an_error_not_a_panic() {
        let mut codec = PgCodec {
            phase: Phase::Normal,
        };
        let mut buf = BytesMut::new();
        // 'B', length 6: portal "" + statement "" and nothing else.
        buf.put_u8(b'B');
        buf.put_i32(6);
        buf.put_u8(0);
        buf.put_u8(0);
        // followed by a valid Sync
        buf.put_u8(b'S');
        buf.put_i32(4);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn decodes_query_and_sync() {
        let mut codec = PgCodec {
            phase: Phase::Normal,
        };
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_i32(4 + 9);
        buf.put_slice(b"SELECT 1\0");
        buf.put_u8(b'S');
        buf.put_i32(4);
        match codec.decode(&mut buf) {
            Ok(Some(PgWireFrontendMessage::Query(q))) => assert_eq!(q.query, "SELECT 1"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(PgWireFrontendMessage::Sync(_)))
        ));
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn garbage_type_is_an_error() {
        let mut codec = PgCodec {
            phase: Phase::Normal,
        };
        let mut buf = BytesMut::new();
        buf.put_u8(b'!');
        buf.put_i32(4);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn startup_and_cancel() {
        let mut codec = PgCodec::new();
        let mut buf = BytesMut::new();
        buf.put_i32(16);
        buf.put_i32(80877102);
        buf.put_i32(42);
        buf.put_i32(7);
        match codec.decode(&mut buf) {
            Ok(Some(PgWireFrontendMessage::CancelRequest(c))) => {
                assert_eq!(c.pid, 42);
                assert_eq!(c.secret_key.as_i32(), Some(7));
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = b"user\0root\0\0";
        buf.put_i32(8 + body.len() as i32);
        buf.put_i32(196608);
        buf.put_slice(body);
        match codec.decode(&mut buf) {
            Ok(Some(PgWireFrontendMessage::Startup(s))) => {
                assert_eq!(s.parameters.get("user").map(String::as_str), Some("root"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
