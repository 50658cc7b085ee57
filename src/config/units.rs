//! Durations and byte sizes with units, as written in omen.yaml (`30s`, `5m`, `32MiB`).

use std::time::Duration;

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h`, `1d` or `1w`.
/// A compound like `1h30m` is accepted, as in Prometheus.
///
/// # Errors
/// A one-line reason when the text is empty, lacks a unit or has an unknown unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: expected a number followed by a unit (ms, s, m, h, d, w)"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ms, s, m, h, d, w)"
                ))
            }
            u => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {u:?} (ms, s, m, h, d, w)"
                ))
            }
        };
        rest = &rest[unit_len..];
        total_ms = n
            .checked_mul(ms_per)
            .and_then(|v| v.checked_add(total_ms))
            .filter(|v| *v <= u64::MAX as u128)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Parses a byte size such as `512`, `64KiB`, `32MiB`, `1GiB`, `10MB` or `1GB`.
///
/// # Errors
/// A one-line reason when the text is not a number with a known unit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("invalid size {text:?}: expected a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)"));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("invalid size {text:?}: number too large"))?;
    let mult: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {u:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("7d", 604_800_000),
            ("1w", 604_800_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "30", "s", "5 parsecs", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512", 512),
            ("64KiB", 65_536),
            ("32MiB", 33_554_432),
            ("1GB", 1_000_000_000),
        ];
        for (text, n) in ok {
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
        for bad in ["", "MiB", "12XB", "-5"] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }
}
