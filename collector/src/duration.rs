//! Go's `time.ParseDuration` syntax (`100ms`, `1.2s`, `1h30m`, `250us`): what Jaeger's min/maxDuration, the
//! flags and the config file use. No maintained crate parses exactly this syntax (fractions and mixed
//! units), hence this small parser.

use std::time::Duration;

/// Parses a non-negative Go duration (nanosecond precision).
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
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
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(format!("duration {input:?} out of range"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// A Go duration string in a config file (`#[serde(deserialize_with = "crate::duration::deserialize")]`).
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    parse_go_duration(&s).map_err(serde::de::Error::custom)
}

/// Whole microseconds, saturating (the store and the query API count in µs).
pub fn as_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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
        let ms = Duration::from_millis;
        let cases: &[(&str, Result<Duration, ()>, &str)] = &[
            ("100ms", Ok(ms(100)), "milliseconds"),
            ("1.2s", Ok(ms(1200)), "fractional seconds"),
            ("1h30m", Ok(Duration::from_secs(5400)), "mixed units"),
            (
                "250us",
                Ok(Duration::from_micros(250)),
                "microseconds ascii",
            ),
            (
                "250µs",
                Ok(Duration::from_micros(250)),
                "microseconds micro sign",
            ),
            ("1500ns", Ok(Duration::from_nanos(1500)), "nanoseconds kept"),
            ("0", Ok(Duration::ZERO), "bare zero"),
            ("+5s", Ok(Duration::from_secs(5)), "leading plus"),
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
        assert_eq!(as_micros(Duration::from_nanos(1500)), 1, "µs round down");
    }
}
