//! `resource.Quantity` values as the scheduler counts them: `MilliValue()` for cpu and
//! `Value()` for everything else, both rounded up (as upstream's `Quantity` rounds).

/// The quantity's value times 10^`scale` (0 for `Value()`, 3 for `MilliValue()`),
/// rounded up, saturating at `i64`'s bounds. `None` when the text is not a quantity.
pub fn scaled(text: &str, scale: i32) -> Option<i64> {
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    // mantissa * 10^exp10 * 2^exp2
    const LIMIT: u128 = 10u128.pow(36);
    let mut mantissa: u128 = 0;
    let mut exp10: i32 = 0;
    let mut inexact = false;
    for d in int_part.bytes() {
        if mantissa < LIMIT {
            mantissa = mantissa * 10 + u128::from(d - b'0');
        } else {
            exp10 += 1;
            inexact |= d != b'0';
        }
    }
    for d in frac_part.bytes() {
        if mantissa < LIMIT {
            mantissa = mantissa * 10 + u128::from(d - b'0');
            exp10 -= 1;
        } else {
            inexact |= d != b'0';
        }
    }
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ => {
            let e = suffix.strip_prefix(['e', 'E'])?;
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            exp10 = exp10.checked_add(e.parse::<i32>().ok()?)?;
        }
    }
    exp10 = exp10.checked_add(scale)?;
    let magnitude = ceil_scaled(mantissa, exp10, exp2, inexact);
    let value = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Some(if negative { -value } else { value })
}

/// ceil(mantissa * 10^exp10 * 2^exp2), saturating at u128::MAX.
fn ceil_scaled(mantissa: u128, exp10: i32, exp2: u32, inexact: bool) -> u128 {
    if mantissa == 0 {
        return 0;
    }
    let mut m = mantissa;
    for _ in 0..exp2 {
        m = m.saturating_mul(2);
    }
    if exp10 >= 0 {
        for _ in 0..exp10 {
            m = m.saturating_mul(10);
        }
        return m;
    }
    let mut rounded_up = inexact;
    for _ in 0..(-exp10) {
        if m == 0 {
            break;
        }
        rounded_up |= !m.is_multiple_of(10);
        m /= 10;
    }
    if rounded_up {
        m + 1
    } else {
        m
    }
}

/// `Value()`: the quantity in units, rounded up.
pub fn value(text: &str) -> Option<i64> {
    scaled(text, 0)
}

/// `MilliValue()`: the quantity in thousandths, rounded up.
pub fn milli_value(text: &str) -> Option<i64> {
    scaled(text, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, i32, Option<i64>)]) {
        for (text, scale, want) in cases {
            assert_eq!(scaled(text, *scale), *want, "{text} at scale {scale}");
        }
    }

    #[test]
    fn quantities() {
        check(&[
            ("1", 3, Some(1000)),
            ("100m", 3, Some(100)),
            ("0.5", 3, Some(500)),
            (".5", 3, Some(500)),
            ("1.", 3, Some(1000)),
            ("1.5", 0, Some(2)),
            ("2500m", 0, Some(3)),
            ("1n", 3, Some(1)),
            ("1u", 0, Some(1)),
            ("0", 3, Some(0)),
            ("128Mi", 0, Some(128 * 1024 * 1024)),
            ("1Gi", 0, Some(1 << 30)),
            ("1.5Gi", 0, Some(3 << 29)),
            ("1Ki", 3, Some(1024 * 1000)),
            ("1k", 0, Some(1000)),
            ("1M", 0, Some(1_000_000)),
            ("1G", 0, Some(1_000_000_000)),
            ("1T", 0, Some(1_000_000_000_000)),
            ("1E", 0, Some(1_000_000_000_000_000_000)),
            ("8Ei", 0, Some(i64::MAX)),
            ("1e3", 0, Some(1000)),
            ("1E3", 0, Some(1000)),
            ("12e-1", 0, Some(2)),
            ("1e+2", 3, Some(100_000)),
            ("110", 0, Some(110)),
            ("+5", 0, Some(5)),
            ("-5", 0, Some(-5)),
            ("0.0001", 3, Some(1)),
            ("", 0, None),
            ("abc", 0, None),
            ("1Q", 0, None),
            ("1.2.3", 0, None),
            ("e3", 0, None),
            ("1e", 0, None),
        ]);
    }
}
