//! RFC 3339 timestamps (Jaeger API v3's `startTimeMin`, `startTime`, ...; the metrics API's points) to
//! and from Unix nanoseconds, with the `time` crate.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses `2024-05-01T10:00:00.123456789Z` (any offset) into Unix nanoseconds; times before 1970 are
/// refused.
pub fn parse_rfc3339_ns(input: &str) -> Result<u64, String> {
    let t = OffsetDateTime::parse(input.trim(), &Rfc3339)
        .map_err(|e| format!("{input:?} is not an RFC 3339 time: {e}"))?;
    u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{input:?} is before 1970"))
}

/// Unix milliseconds as RFC 3339 in UTC with millisecond precision (`2021-09-10T11:03:43.806Z`), as
/// proto3 JSON writes a `google.protobuf.Timestamp`.
pub fn format_rfc3339_ms(unix_ms: u64) -> String {
    let ns = i128::from(unix_ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
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
    fn parses_and_formats_rfc3339() {
        let cases: &[(&str, Option<u64>, &str)] = &[
            (
                "2023-11-14T22:13:20Z",
                Some(1_700_000_000_000_000_000),
                "seconds, UTC",
            ),
            (
                "2023-11-14T22:13:20.000Z",
                Some(1_700_000_000_000_000_000),
                "what JavaScript's toISOString writes",
            ),
            (
                "2023-11-14T22:13:20.123456789Z",
                Some(1_700_000_000_123_456_789),
                "nanoseconds",
            ),
            (
                "2023-11-14T23:13:20+01:00",
                Some(1_700_000_000_000_000_000),
                "an offset",
            ),
            ("1969-12-31T23:59:59Z", None, "before 1970"),
            ("2023-11-14", None, "a date alone"),
            ("1700000000", None, "epoch seconds"),
        ];
        for (input, want, why) in cases {
            assert_eq!(parse_rfc3339_ns(input).ok(), *want, "{why}: {input}");
        }
        assert_eq!(
            format_rfc3339_ms(1_631_271_823_806),
            "2021-09-10T11:03:43.806Z"
        );
    }
}
