//! W3C Trace Context Level 2: `traceparent` and `tracestate`.
//!
//! An invalid traceparent is ignored (the trace restarts) and its tracestate
//! dropped with it; the bad value is never forwarded, because inject always
//! rewrites the header. Higher versions are read by their version-00 prefix
//! and written back as version 00.

use super::tracestate::TraceState;
use super::{
    header, hex_into, joined, text, EditValue, Extraction, Header, HeaderEdit, HeaderList, IdsHex,
    Incoming, InlineValue, Sampling, SpanContext,
};
use crate::ids::{parse_hex_exact, SpanId, TraceId};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

const SAMPLED: u8 = 0x01;
const RANDOM: u8 = 0x02;
/// `00-` + 32 + `-` + 16 + `-` + 2.
const V00_LEN: usize = 55;

/// The fields of a valid traceparent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: u8,
}

/// Parses a traceparent value by the Level 2 rules; `None` when invalid.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
    let version = parse_hex_exact::<1>(v.get(..2)?, false)?[0];
    if version == 0xff {
        return None;
    }
    match version {
        0 if v.len() != V00_LEN => return None,
        // A future version: at least the version-00 fields, then end or `-`.
        _ if v.len() < V00_LEN => return None,
        _ if v.len() > V00_LEN && v.get(V00_LEN) != Some(&b'-') => return None,
        _ => {}
    }
    if v.get(2) != Some(&b'-') || v.get(35) != Some(&b'-') || v.get(52) != Some(&b'-') {
        return None;
    }
    let trace_id = TraceId(parse_hex_exact::<16>(v.get(3..35)?, false)?);
    let span_id = SpanId(parse_hex_exact::<8>(v.get(36..52)?, false)?);
    let flags = parse_hex_exact::<1>(v.get(53..55)?, false)?[0];
    if !trace_id.is_valid() || !span_id.is_valid() {
        return None;
    }
    Some(TraceParent {
        trace_id,
        span_id,
        flags,
    })
}

/// The caller's context; an invalid tracestate list is discarded whole and
/// counted in `malformed` (the traceparent still holds).
pub fn extract(headers: &HeaderList, malformed: &mut u32) -> Extraction {
    let tp = match header(headers, TRACEPARENT) {
        Header::Absent => return Extraction::Absent,
        Header::Several => return Extraction::Malformed,
        Header::One(v) => match parse_traceparent(&text(v)) {
            Some(tp) => tp,
            None => return Extraction::Malformed,
        },
    };
    let tracestate = match joined(headers, TRACESTATE).map(|v| TraceState::parse(&v)) {
        Some(Ok(ts)) => ts,
        Some(Err(_)) => {
            *malformed += 1;
            TraceState::default()
        }
        None => TraceState::default(),
    };
    Extraction::Found(Incoming {
        parent: Some((tp.trace_id, tp.span_id)),
        sampling: if tp.flags & SAMPLED != 0 {
            Sampling::Accept
        } else {
            Sampling::Deny
        },
        random: tp.flags & RANDOM != 0,
        tracestate,
    })
}

/// The version-00 traceparent for `ctx`: only the sampled and random flags.
pub fn format_traceparent(ctx: &SpanContext) -> EditValue {
    traceparent(ctx, &IdsHex::new(ctx))
}

/// [`format_traceparent`] with the ids' hex already written.
fn traceparent(ctx: &SpanContext, hex: &IdsHex) -> EditValue {
    let mut flags = 0u8;
    if ctx.sampled {
        flags |= SAMPLED;
    }
    if ctx.random {
        flags |= RANDOM;
    }
    let mut digits = [0u8; 2];
    hex_into(&mut digits, &[flags]);
    InlineValue::new()
        .put(b"00-")
        .put(hex.trace())
        .put(b"-")
        .put(hex.span())
        .put(b"-")
        .put(&digits)
        .value()
}

pub fn inject(ctx: &SpanContext, hex: &IdsHex, edits: &mut Vec<HeaderEdit>) {
    edits.push(HeaderEdit::set(TRACEPARENT, traceparent(ctx, hex)));
    // Never an empty tracestate: without members the header is removed.
    match ctx.tracestate.header_value() {
        Some(v) => edits.push(HeaderEdit::set(TRACESTATE, v)),
        None => edits.push(HeaderEdit::remove(TRACESTATE)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, hdrs};
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn traceparent_rules() {
        let rows: &[(&str, Option<u8>, &str)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some(1),
                "valid, sampled",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some(0),
                "valid, not sampled",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                Some(3),
                "random flag",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                Some(0xff),
                "unknown flags are read",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
                "version ff is invalid",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
                "upper-case trace id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                None,
                "upper-case span id",
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
                "upper-case version",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
                "all-zero trace id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
                "all-zero span id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
                "short trace id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                None,
                "short span id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                None,
                "one-digit flags",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
                "v00 with trailing data",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                None,
                "wrong separators",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                None,
                "non-hex flags",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some(1),
                "future version, v00 length",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future",
                Some(1),
                "future version with more fields",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                None,
                "future version: flags not followed by -",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
                "future version too short",
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                Some(1),
                "surrounding OWS",
            ),
            ("", None, "empty"),
            (
                "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
                "non-ASCII",
            ),
        ];
        for (value, flags, why) in rows {
            let parsed = parse_traceparent(value);
            assert_eq!(parsed.map(|p| p.flags), *flags, "{why}: {value:?}");
            if let Some(p) = parsed {
                assert_eq!(p.trace_id.to_string(), TRACE, "{why}");
                assert_eq!(p.span_id.to_string(), SPAN, "{why}");
            }
        }
    }

    #[test]
    fn several_traceparent_headers_are_invalid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let h = hdrs(&[("traceparent", tp), ("traceparent", tp)]);
        assert_eq!(extract(&h, &mut 0), Extraction::Malformed);
    }

    #[test]
    fn extract_reads_flags_and_tracestate() {
        let h = hdrs(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ]);
        let mut malformed = 0;
        let Extraction::Found(inc) = extract(&h, &mut malformed) else {
            panic!("valid traceparent")
        };
        assert_eq!(malformed, 0);
        assert_eq!(inc.sampling, Sampling::Deny, "sampled bit clear");
        assert!(inc.random, "random bit kept");
        assert_eq!(
            inc.tracestate.header_value().as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
    }

    #[test]
    fn invalid_tracestate_is_dropped_and_counted_the_parent_kept() {
        let h = hdrs(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "foo=1"),
            ("tracestate", "FOO=2"),
        ]);
        let mut malformed = 0;
        let Extraction::Found(inc) = extract(&h, &mut malformed) else {
            panic!("the traceparent is valid")
        };
        assert!(inc.tracestate.is_empty(), "the whole list is discarded");
        assert_eq!(
            inc.parent.map(|(t, _)| t.to_string()).as_deref(),
            Some(TRACE)
        );
        assert_eq!(malformed, 1);
    }

    #[test]
    fn inject_writes_version_00_with_sampled_and_random_only() {
        let mut c = ctx();
        c.debug = true;
        let mut edits = Vec::new();
        inject(&c, &IdsHex::new(&c), &mut edits);
        assert_eq!(
            edits.first().and_then(|e| e.value.clone()).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")
        );
        assert_eq!(
            edits.get(1),
            Some(&HeaderEdit::remove(TRACESTATE)),
            "no empty tracestate"
        );
        c.sampled = false;
        c.random = false;
        assert!(format_traceparent(&c).ends_with("-00"));
    }
}
