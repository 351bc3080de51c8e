//! Go's `time.ParseDuration` syntax (`100ms`, `1.2s`, `1h30m`, `250us`), which Jaeger's min/maxDuration use.
//! No maintained crate parses exactly this syntax (fractions and mixed units), hence this small parser.

/// Parses a non-negative Go duration into microseconds (rounded down).
pub fn parse_go_duration(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ns = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(format!("invalid duration {input:?}: expected a number"));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {input:?}"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit in duration {input:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {input:?}")),
        };
        total_ns += value * scale;
        rest = next;
    }
    let us = total_ns / 1e3;
    if !us.is_finite() || us > u64::MAX as f64 {
        return Err(format!("duration {input:?} out of range"));
    }
    Ok(us as u64)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, Result<u64, ()>, &str)] = &[
            ("100ms", Ok(100_000), "milliseconds"),
            ("1.2s", Ok(1_200_000), "fractional seconds"),
            ("1h30m", Ok(5_400_000_000), "mixed units"),
            ("250us", Ok(250), "microseconds ascii"),
            ("250µs", Ok(250), "microseconds micro sign"),
            ("1500ns", Ok(1), "nanoseconds round down"),
            ("0", Ok(0), "bare zero"),
            ("+5s", Ok(5_000_000), "leading plus"),
            ("-1s", Err(()), "negative"),
            ("10", Err(()), "missing unit"),
            ("10x", Err(()), "unknown unit"),
            ("", Err(()), "empty"),
            ("ms", Err(()), "unit without number"),
            ("1..2s", Err(()), "two dots"),
        ];
        for (input, want, why) in cases {
            assert_eq!(
                parse_go_duration(input).map_err(|_| ()),
                *want,
                "{why}: {input}"
            );
        }
    }
}
