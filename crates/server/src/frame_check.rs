//! Checks a frontend message's layout before pgwire decodes it.
//!
//! pgwire's decoders read counts and lengths straight from the body and
//! trust them (a Bind whose parameter length runs past the message
//! panics). PostgreSQL reads every field with a bounds check and answers
//! "insufficient data left in message" (08P01); this walks the fields of
//! each message type that carries counts or lengths the same way, so a
//! malformed message is refused with PostgreSQL's error and never reaches
//! a decoder that could panic.

/// The body of one message (after the type byte and length).
struct Fields<'a>(&'a [u8]);

const SHORT: &str = "insufficient data left in message";

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(SHORT.into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count of following items: never negative.
    fn count(&mut self) -> Result<usize, String> {
        usize::try_from(self.i16()?).map_err(|_| "invalid count in message".to_string())
    }

    fn cstr(&mut self) -> Result<(), String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| "invalid string in message".to_string())?;
        self.0 = &self.0[end + 1..];
        Ok(())
    }

    /// Length-prefixed values (-1 is NULL).
    fn values(&mut self) -> Result<(), String> {
        for _ in 0..self.count()? {
            match self.i32()? {
                -1 => {}
                len if len >= 0 => {
                    self.take(len as usize)?;
                }
                _ => return Err("invalid value length in message".into()),
            }
        }
        Ok(())
    }

    fn skip(&mut self, items: usize, size: usize) -> Result<(), String> {
        self.take(items.saturating_mul(size)).map(|_| ())
    }
}

/// Checks the body of a message of type `kind`. Types without counts or
/// lengths are left to the decoder.
pub(crate) fn check(kind: u8, body: &[u8]) -> Result<(), String> {
    let mut f = Fields(body);
    match kind {
        // Bind: portal, statement, parameter formats, values, result formats.
        b'B' => {
            f.cstr()?;
            f.cstr()?;
            let formats = f.count()?;
            f.skip(formats, 2)?;
            f.values()?;
            let results = f.count()?;
            f.skip(results, 2)?;
        }
        // Parse: name, query, parameter type OIDs.
        b'P' => {
            f.cstr()?;
            f.cstr()?;
            let types = f.count()?;
            f.skip(types, 4)?;
        }
        // FunctionCall: OID, argument formats, arguments, result format.
        b'F' => {
            f.i32()?;
            let formats = f.count()?;
            f.skip(formats, 2)?;
            f.values()?;
            f.i16()?;
        }
        // Describe, Close: 'S' or 'P', then a name.
        b'D' | b'C' => {
            f.take(1)?;
            f.cstr()?;
        }
        // Execute: portal, row limit.
        b'E' => {
            f.cstr()?;
            f.i32()?;
        }
        // Query, CopyFail.
        b'Q' | b'f' => f.cstr()?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_value_longer_than_the_message_is_refused() {
        let mut body = b"\0\0".to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&0x00ff_0000i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_eq!(check(b'B', &body), Err(SHORT.to_string()));
        assert!(check(b'B', b"\0\0\0\0\0\0\0\0").is_ok());
    }

    #[test]
    fn counts_and_strings_are_checked() {
        assert!(check(b'P', b"s\0SELECT 1\0\xff\xff").is_err());
        assert!(check(b'P', b"s\0SELECT $1\0\0\x01\0\0\0\x17").is_ok());
        assert!(check(b'Q', b"no terminator").is_err());
        assert!(check(b'E', b"\0\0\0").is_err());
        assert!(check(b'D', b"S").is_err());
        assert!(check(b'S', b"").is_ok());
    }
}
