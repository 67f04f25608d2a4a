//! Order-preserving key encoding, after toyDB's keycode: the byte order of
//! encoded keys equals the logical order of the values, so RocksDB's
//! bytewise iteration gives primary-key order and index range scans.
//!
//! Each component starts with a tag byte, so NULLs (tag 0x00 for NULLS
//! FIRST, 0xFF for NULLS LAST) and values of one column always compare
//! correctly. Variable-length data is escaped: 0x00 becomes 0x00 0xFF and
//! the terminator is 0x00 0x00, which sorts before any continuation.

/// Component tags.
pub mod tag {
    pub const NULL_FIRST: u8 = 0x00;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const INT: u8 = 0x04;
    pub const FLOAT: u8 = 0x05;
    pub const BYTES: u8 = 0x06;
    pub const NULL_LAST: u8 = 0xFF;
}

/// Appends a u64 in big-endian (order-preserving) form, no tag.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a u32 in big-endian form, no tag.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a signed integer: sign bit flipped so negatives sort first.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.push(tag::INT);
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends a float: positive floats get the sign bit set, negative floats
/// are fully inverted, so the IEEE bit pattern sorts numerically.
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    // PostgreSQL treats all NaNs as equal and above every number.
    let v = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 0 {
        bits | (1 << 63)
    } else {
        !bits
    };
    out.push(tag::FLOAT);
    out.extend_from_slice(&ordered.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { tag::TRUE } else { tag::FALSE });
}

/// Appends escaped, terminated bytes.
pub fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.push(tag::BYTES);
    put_escaped(out, v);
}

/// Escaped, terminated bytes without a tag (for catalog names).
pub fn put_escaped(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

pub fn put_null(out: &mut Vec<u8>, nulls_first: bool) {
    out.push(if nulls_first {
        tag::NULL_FIRST
    } else {
        tag::NULL_LAST
    });
}

/// Inverts the bytes appended since `start`, for DESC index columns.
pub fn invert_from(out: &mut [u8], start: usize) {
    for b in &mut out[start..] {
        *b = !*b;
    }
}

/// The smallest key strictly greater than every key with this prefix, or
/// None if the prefix is all 0xFF (no upper bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_i(v: i64) -> Vec<u8> {
        let mut o = Vec::new();
        put_i64(&mut o, v);
        o
    }

    fn enc_f(v: f64) -> Vec<u8> {
        let mut o = Vec::new();
        put_f64(&mut o, v);
        o
    }

    fn enc_b(v: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        put_bytes(&mut o, v);
        o
    }

    #[test]
    fn integers_sort_numerically() {
        let vals = [i64::MIN, -1000, -1, 0, 1, 2, 1000, i64::MAX];
        for w in vals.windows(2) {
            assert!(enc_i(w[0]) < enc_i(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn floats_sort_numerically() {
        let vals = [
            f64::NEG_INFINITY,
            -1e10,
            -1.5,
            -0.0,
            1e-300,
            1.5,
            1e10,
            f64::INFINITY,
            f64::NAN,
        ];
        for w in vals.windows(2) {
            assert!(enc_f(w[0]) <= enc_f(w[1]), "{} <= {}", w[0], w[1]);
        }
        assert_eq!(enc_f(-0.0), enc_f(0.0));
    }

    #[test]
    fn bytes_sort_and_escape() {
        let vals: [&[u8]; 6] = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"a", b"ab"];
        for w in vals.windows(2) {
            assert!(enc_b(w[0]) < enc_b(w[1]), "{:?} < {:?}", w[0], w[1]);
        }
        // A composite key: ("a", 1) < ("a\0", 0) < ("b", 0)
        let mut k1 = enc_b(b"a");
        k1.extend(enc_i(1));
        let mut k2 = enc_b(b"a\x00");
        k2.extend(enc_i(0));
        let mut k3 = enc_b(b"b");
        k3.extend(enc_i(0));
        assert!(k1 < k2 && k2 < k3);
    }

    #[test]
    fn nulls_sort_at_the_requested_end() {
        let mut first = Vec::new();
        put_null(&mut first, true);
        let mut last = Vec::new();
        put_null(&mut last, false);
        assert!(first < enc_i(i64::MIN) && first < enc_b(b""));
        assert!(last > enc_f(f64::NAN) && last > enc_b(b"\xff\xff"));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
