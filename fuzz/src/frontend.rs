use bytes::BytesMut;
use duet_server::codec::{PgCodec, Phase};
use pgwire::messages::PgWireFrontendMessage;
use tokio_util::codec::Decoder;

/// Decodes `data` as a connection's byte stream. The first byte picks where
/// the stream starts: a startup packet (even) or typed messages (odd).
pub fn frontend_message(data: &[u8]) {
    crate::panics_abort();
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let mut codec = PgCodec::new();
    if first % 2 == 1 {
        codec.phase = Phase::Normal;
    }
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(PgWireFrontendMessage::Startup(_))) => codec.phase = Phase::Normal,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        // Every decoded message consumes input: the loop cannot spin.
        assert!(buf.len() < before, "a message was decoded from no bytes");
    }
    // A length field never makes the buffer grow past a bounded read-ahead.
    assert!(
        buf.capacity() <= 2 * stream.len() + (128 << 10),
        "buffer of {} bytes for {} bytes of input",
        buf.capacity(),
        stream.len()
    );
}
