//! PostgreSQL's binary format for numeric: base-10000 digits, a weight,
//! a sign and a display scale.

use rust_decimal::Decimal;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// PostgreSQL's numeric send format: base-10000 digits with a weight.
pub(super) fn numeric_to_binary(d: &Decimal) -> Vec<u8> {
    let scale = d.scale();
    let mantissa = d.mantissa().unsigned_abs();
    let digits_str = mantissa.to_string();
    // Split into integer and fractional decimal digit strings.
    let (int_part, frac_part) = if (scale as usize) >= digits_str.len() {
        (
            String::new(),
            format!(
                "{}{}",
                "0".repeat(scale as usize - digits_str.len()),
                digits_str
            ),
        )
    } else {
        let split = digits_str.len() - scale as usize;
        (
            digits_str[..split].to_string(),
            digits_str[split..].to_string(),
        )
    };
    let int_part = int_part.trim_start_matches('0').to_string();
    // Group into base-10000 digits aligned at the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_padded = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_padded = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
        );
    }
    let int_groups = groups.len() as i16;
    for chunk in frac_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
        );
    }
    let mut weight = int_groups - 1;
    // Strip leading zero groups (adjusting weight) and trailing zero groups.
    let mut start = 0;
    while start < groups.len() && groups[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = groups.len();
    while end > start && groups[end - 1] == 0 {
        end -= 1;
    }
    let digits = &groups[start..end];
    if digits.is_empty() {
        weight = 0;
    }
    let sign = if d.is_sign_negative() && !digits.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut out = Vec::with_capacity(8 + digits.len() * 2);
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in digits {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

pub(super) fn numeric_from_binary(b: &[u8]) -> Option<Decimal> {
    if b.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]);
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as u32;
    let ndigits = usize::try_from(ndigits).ok()?;
    if b.len() != 8 + ndigits * 2 || !matches!(sign, NUMERIC_POS | NUMERIC_NEG) {
        return None;
    }
    let mut result = Decimal::ZERO;
    for i in 0..ndigits {
        let digit = i16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]);
        if !(0..10000).contains(&digit) {
            return None;
        }
        let power = weight - i as i32;
        let mut term = Decimal::from(digit);
        if power >= 0 {
            for _ in 0..power {
                term = term.checked_mul(Decimal::from(10000))?;
            }
        } else {
            term.set_scale((-power * 4) as u32).ok()?;
        }
        result = result.checked_add(term)?;
    }
    if sign == NUMERIC_NEG {
        result.set_sign_negative(true);
    }
    result.rescale(dscale.min(28));
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trips() {
        for s in [
            "0",
            "1",
            "-1",
            "12345.678",
            "0.0001",
            "10000",
            "99999999.99",
            "-0.5",
            "1.50",
        ] {
            let d: Decimal = s.parse().unwrap();
            let back = numeric_from_binary(&numeric_to_binary(&d)).unwrap();
            assert_eq!(back, d, "{s}");
            assert_eq!(back.to_string(), d.to_string(), "{s}");
        }
    }
}
