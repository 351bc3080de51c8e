//! Trace and span ids: fixed-size byte arrays, never all zero. Hex is read by meshtrace-core's rules, the
//! filter's.

/// A 128-bit trace id.
pub type TraceId = [u8; 16];
/// A 64-bit span id.
pub type SpanId = [u8; 8];

/// Reads a trace id from its wire bytes; `None` when the length is wrong or all bytes are zero.
pub fn trace_id_from_bytes(bytes: &[u8]) -> Option<TraceId> {
    let id: TraceId = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

/// Reads a span id from its wire bytes; `None` when the length is wrong or all bytes are zero.
pub fn span_id_from_bytes(bytes: &[u8]) -> Option<SpanId> {
    let id: SpanId = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

/// Parses a hex trace id of 1 to 32 digits (64-bit ids are left-padded with zeros, as B3 and Jaeger do).
pub fn parse_trace_id(hex_id: &str) -> Option<TraceId> {
    meshtrace_core::ids::TraceId::from_hex_padded(hex_id)
        .filter(|id| id.is_valid())
        .map(|id| id.0)
}

/// Parses a hex span id of 1 to 16 digits, left-padded with zeros.
pub fn parse_span_id(hex_id: &str) -> Option<SpanId> {
    meshtrace_core::ids::SpanId::from_hex_padded(hex_id)
        .filter(|id| id.is_valid())
        .map(|id| id.0)
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
    fn parses_and_pads_ids() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "0af7651916cd43dd8448eb211c80319c",
                Some("0af7651916cd43dd8448eb211c80319c"),
                "full 128-bit id",
            ),
            (
                "8448eb211c80319c",
                Some("00000000000000008448eb211c80319c"),
                "64-bit id is left-padded",
            ),
            (
                "abc",
                Some("00000000000000000000000000000abc"),
                "short id is left-padded",
            ),
            (
                "0AF7651916CD43DD8448EB211C80319C",
                Some("0af7651916cd43dd8448eb211c80319c"),
                "upper case accepted on input",
            ),
            (
                "00000000000000000000000000000000",
                None,
                "all zero is invalid",
            ),
            ("", None, "empty is invalid"),
            ("0af7651916cd43dd8448eb211c80319c0", None, "too long"),
            ("0af7651916cd43dd8448eb211c80319g", None, "non-hex"),
        ];
        for (input, want, why) in cases {
            let got = parse_trace_id(input).map(hex::encode);
            assert_eq!(got.as_deref(), *want, "{why}");
        }
        assert_eq!(
            parse_span_id("1").map(hex::encode).as_deref(),
            Some("0000000000000001")
        );
        assert_eq!(parse_span_id("0000000000000000"), None);
    }

    #[test]
    fn bytes_must_have_the_right_length_and_not_be_zero() {
        assert!(trace_id_from_bytes(&[1; 16]).is_some());
        assert!(trace_id_from_bytes(&[0; 16]).is_none());
        assert!(trace_id_from_bytes(&[1; 8]).is_none());
        assert!(span_id_from_bytes(&[1; 8]).is_some());
        assert!(span_id_from_bytes(&[]).is_none());
    }
}
