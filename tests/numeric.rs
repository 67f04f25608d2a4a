//! numeric over the binary protocol.

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A `numeric` value as its decimal text, usable as a binary parameter and
/// result with tokio-postgres (which has no numeric type of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNumeric(pub String);

impl PgNumeric {
    pub fn new(text: &str) -> PgNumeric {
        PgNumeric(text.to_owned())
    }
}

impl ToSql for PgNumeric {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&encode_numeric(&self.0)?);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgNumeric, BoxError> {
        let text = crate::slt::render_binary(&Type::NUMERIC, raw).map_err(|e| e.to_string())?;
        Ok(PgNumeric(text))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// The binary form of a decimal literal such as `-12.340`: ndigits, weight,
/// sign, dscale, then base-10000 digits.
fn encode_numeric(text: &str) -> Result<Vec<u8>, BoxError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(format!("not a decimal number: {text:?}").into());
    }
    let int = int.trim_start_matches('0');
    // Pad both parts to whole base-10000 digits around the decimal point.
    let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
    let frac_padded = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect()
    };
    let mut digits = group(&int);
    let mut weight = digits.len() as i16 - 1;
    digits.extend(group(&frac_padded));
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign: u16 = if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac.len() as u16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_round_trip_through_the_binary_form() {
        for text in [
            "0",
            "0.00",
            "1",
            "-1",
            "12.340",
            "0.0005",
            "0.000005",
            "123456789.000001",
            "-10000",
            "99999999",
        ] {
            let bytes = encode_numeric(text).unwrap();
            let back = crate::slt::render_binary(&Type::NUMERIC, &bytes).unwrap();
            assert_eq!(back, text);
        }
        assert!(encode_numeric("1e5").is_err());
        assert!(encode_numeric("").is_err());
    }
}
