//! Jaeger: `uber-trace-id` and `uberctx-*` baggage.
//!
//! `{trace-id}:{span-id}:{parent-span-id}:{flags}`, ids of 1..=32 / 1..=16 hex
//! digits left-padded with zeros, flags hex (0x01 sampled, 0x02 debug). Some
//! clients URL-encode the separators. The parent field is deprecated: we
//! write `0`. Baggage values are URL-encoded, one header per item.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::baggage::{is_token, Member};
use super::{
    header, text, Baggage, EditValue, Extraction, Header, HeaderEdit, HeaderList, IdsHex, Incoming,
    InlineValue, Sampling, SpanContext, TraceState,
};
use crate::ids::{hex_digit, SpanId, TraceId};

pub const UBER_TRACE_ID: &str = "uber-trace-id";
pub const BAGGAGE_PREFIX: &str = "uberctx-";
/// Forces sampling (read by the sampler; listed here with its format).
pub const DEBUG_ID: &str = "jaeger-debug-id";

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

/// Baggage values keep URL-unreserved characters as they are.
const VALUE_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn parse(value: &str) -> Option<Incoming> {
    let v = value.trim();
    let decoded: Cow<str> = if v.contains('%') {
        Cow::Owned(v.replace("%3A", ":").replace("%3a", ":"))
    } else {
        Cow::Borrowed(v)
    };
    let mut fields = decoded.split(':');
    let trace_id = TraceId::from_hex_padded(fields.next()?).filter(TraceId::is_valid)?;
    let span_id = SpanId::from_hex_padded(fields.next()?).filter(SpanId::is_valid)?;
    // Deprecated parent: must be hex, otherwise ignored.
    SpanId::from_hex_padded(fields.next()?)?;
    let flags_field = fields.next()?;
    if fields.next().is_some() || flags_field.is_empty() || flags_field.len() > 2 {
        return None;
    }
    let flags = flags_field
        .bytes()
        .try_fold(0u8, |acc, c| hex_digit(c, true).map(|d| (acc << 4) | d))?;
    let sampling = if flags & FLAG_DEBUG != 0 {
        Sampling::Debug
    } else if flags & FLAG_SAMPLED != 0 {
        Sampling::Accept
    } else {
        Sampling::Deny
    };
    Some(Incoming {
        parent: Some((trace_id, span_id)),
        sampling,
        random: false,
        tracestate: TraceState::default(),
    })
}

pub fn extract(headers: &HeaderList) -> Extraction {
    match header(headers, UBER_TRACE_ID) {
        Header::Absent => Extraction::Absent,
        Header::Several => Extraction::Malformed,
        Header::One(v) => parse(&text(v)).map_or(Extraction::Malformed, Extraction::Found),
    }
}

pub fn format(ctx: &SpanContext, hex: &IdsHex) -> EditValue {
    let mut flags = 0u8;
    if ctx.sampled || ctx.debug {
        flags |= FLAG_SAMPLED;
    }
    if ctx.debug {
        flags |= FLAG_DEBUG;
    }
    let flag = [char::from_digit(u32::from(flags), 16).map_or(b'0', |c| c as u8)];
    let mut value = InlineValue::new();
    hex.put_short_trace(&mut value);
    value.put(b":").put(hex.span()).put(b":0:").put(&flag);
    value.value()
}

pub fn inject(ctx: &SpanContext, hex: &IdsHex, edits: &mut Vec<HeaderEdit>) {
    edits.push(HeaderEdit::set(UBER_TRACE_ID, format(ctx, hex)));
}

fn decode_value(v: &str) -> String {
    // Jaeger clients use URL query escaping: `+` is a space.
    let spaced: Cow<str> = if v.contains('+') {
        Cow::Owned(v.replace('+', " "))
    } else {
        Cow::Borrowed(v)
    };
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Adds every `uberctx-*` header to `into`; returns how many were invalid.
pub fn extract_baggage(headers: &HeaderList, into: &mut Baggage) -> u32 {
    let mut malformed = 0;
    for &(name, value) in headers {
        let Some(key) = name.strip_prefix(BAGGAGE_PREFIX) else {
            continue;
        };
        if !is_token(key) {
            malformed += 1;
            continue;
        }
        // Header names are case-insensitive, so `uberctx-{key}` arrives lower-cased: a W3C member with
        // the same key in any case is the same entry (it was written both ways by the hop before), and
        // keeps its case.
        if into
            .members()
            .iter()
            .any(|m| m.key.eq_ignore_ascii_case(key))
        {
            continue;
        }
        into.push(Member {
            key: key.to_string(),
            value: decode_value(text(value).trim()),
            properties: None,
        });
    }
    malformed
}

/// Writes every baggage member as `uberctx-{key}` and removes the incoming
/// `uberctx-*` headers that are not among them.
pub fn inject_baggage(baggage: &Baggage, headers: &HeaderList, edits: &mut Vec<HeaderEdit>) {
    let members = baggage.members();
    for (i, m) in members.iter().enumerate() {
        // W3C keys that differ only in case share one `uberctx-` header: the first member has it.
        let earlier = members.get(..i).unwrap_or_default();
        if earlier.iter().any(|e| e.key.eq_ignore_ascii_case(&m.key)) {
            continue;
        }
        let value = utf8_percent_encode(&m.value, VALUE_ESCAPES).to_string();
        edits.push(HeaderEdit::set(
            format!("{BAGGAGE_PREFIX}{}", m.key.to_ascii_lowercase()),
            value,
        ));
    }
    for &(name, _) in headers {
        if let Some(key) = name.strip_prefix(BAGGAGE_PREFIX) {
            let kept = baggage
                .members()
                .iter()
                .any(|m| m.key.eq_ignore_ascii_case(key));
            if !kept && !edits.iter().any(|e| e.name == name) {
                edits.push(HeaderEdit::remove(name.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, hdrs};
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn uber_trace_id_rules() {
        type Row<'a> = (&'a str, Option<(&'a str, &'a str, Sampling)>, &'a str);
        let rows: &[Row] = &[
            (
                "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
                Some((
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    Sampling::Accept,
                )),
                "128-bit, sampled",
            ),
            (
                "a3ce929d0e0e4736:f067aa0ba902b7:0:0",
                Some((
                    "0000000000000000a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    Sampling::Deny,
                )),
                "short ids padded",
            ),
            (
                "abc:def:0:3",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    Sampling::Debug,
                )),
                "debug flag",
            ),
            (
                "abc%3Adef%3A0%3A1",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    Sampling::Accept,
                )),
                "URL-encoded separators",
            ),
            (
                "abc%3adef%3a0%3a1",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    Sampling::Accept,
                )),
                "lower-case escapes",
            ),
            (
                "ABC:DEF:0:1",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    Sampling::Accept,
                )),
                "upper-case hex",
            ),
            (
                "abc:def:5:01",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    Sampling::Accept,
                )),
                "parent ignored, 2-digit flags",
            ),
            ("0:def:0:1", None, "zero trace id"),
            ("abc:0:0:1", None, "zero span id"),
            ("abc:def:0", None, "three fields"),
            ("abc:def:0:1:9", None, "five fields"),
            ("abc:def:0:", None, "empty flags"),
            ("abc:def:0:100", None, "flags over a byte"),
            ("abc:xyz:0:1", None, "non-hex span id"),
            (
                "123456789012345678901234567890123:def:0:1",
                None,
                "33-digit trace id",
            ),
            ("", None, "empty"),
        ];
        for (v, want, why) in rows {
            let got = parse(v).map(|i| {
                let (t, s) = i.parent.unwrap();
                (t.to_string(), s.to_string(), i.sampling)
            });
            let want = want.map(|(t, s, d)| (t.to_string(), s.to_string(), d));
            assert_eq!(got, want, "{why}: {v}");
        }
    }

    #[test]
    fn inject_writes_short_ids_and_flags() {
        let mut c = ctx();
        assert_eq!(
            format(&c, &IdsHex::new(&c)),
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
        );
        c.trace_id = TraceId::from_u128(0xabc);
        c.debug = true;
        assert_eq!(
            format(&c, &IdsHex::new(&c)),
            "0000000000000abc:00f067aa0ba902b7:0:3"
        );
        c.debug = false;
        c.sampled = false;
        assert!(format(&c, &IdsHex::new(&c)).ends_with(":0:0"));
    }

    #[test]
    fn baggage_round_trip_with_url_encoding() {
        let h = hdrs(&[("uberctx-user", "J%C3%BCrgen+Jr"), ("uberctx-bad key", "x")]);
        let mut b = Baggage::default();
        assert_eq!(extract_baggage(&h, &mut b), 1, "invalid key counted");
        assert_eq!(b.get("user"), Some("Jürgen Jr"));
        let mut edits = Vec::new();
        inject_baggage(&b, &h, &mut edits);
        assert!(edits.contains(&HeaderEdit::set("uberctx-user", "J%C3%BCrgen%20Jr")));
        assert!(edits.contains(&HeaderEdit::remove("uberctx-bad key")));
    }

    #[test]
    fn a_w3c_member_and_its_lower_cased_uberctx_twin_are_one_member() {
        let mut b = Baggage::default();
        assert!(b.push(Member {
            key: "TenantId".into(),
            value: "w3c".into(),
            properties: None,
        }));
        let h = hdrs(&[("uberctx-tenantid", "jaeger"), ("uberctx-user", "x")]);
        assert_eq!(extract_baggage(&h, &mut b), 0);
        let keys: Vec<_> = b.members().iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["TenantId", "user"], "no lower-cased twin");
        assert_eq!(b.get("TenantId"), Some("w3c"), "the W3C member wins");
        let mut edits = Vec::new();
        inject_baggage(&b, &h, &mut edits);
        assert!(edits.contains(&HeaderEdit::set("uberctx-tenantid", "w3c")));

        // Two W3C members whose keys differ only in case share one header: the first member's value.
        let mut b = Baggage::default();
        for (key, value) in [("k", "first"), ("K", "second")] {
            assert!(b.push(Member {
                key: key.into(),
                value: value.into(),
                properties: None,
            }));
        }
        let mut edits = Vec::new();
        inject_baggage(&b, &[], &mut edits);
        assert_eq!(edits, [HeaderEdit::set("uberctx-k", "first")]);
    }
}
