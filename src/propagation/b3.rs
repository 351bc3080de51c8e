//! B3, single header (`b3`) and multi header (`x-b3-*`).
//!
//! Trace ids are 16 or 32 lower-case hex digits (64-bit ids are left-padded
//! to 128 bits and written back short); `b3: 0` alone is a deny without ids;
//! the debug flag implies sampled and is written instead of it.

use std::borrow::Cow;

use super::{
    header, text, Extraction, Header, HeaderEdit, HeaderList, IdsHex, Incoming, InlineValue,
    Sampling, SpanContext, TraceState,
};
use crate::ids::{parse_hex_exact, SpanId, TraceId};

pub const SINGLE: &str = "b3";
pub const TRACE_ID: &str = "x-b3-traceid";
pub const SPAN_ID: &str = "x-b3-spanid";
pub const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
pub const SAMPLED: &str = "x-b3-sampled";
pub const FLAGS: &str = "x-b3-flags";

fn trace_id(s: &str) -> Option<TraceId> {
    let id = match s.len() {
        16 => TraceId::from_u128(u128::from(u64::from_be_bytes(parse_hex_exact::<8>(
            s.as_bytes(),
            false,
        )?))),
        32 => TraceId::from_hex(s)?,
        _ => return None,
    };
    id.is_valid().then_some(id)
}

fn span_id(s: &str) -> Option<SpanId> {
    SpanId::from_hex(s).filter(SpanId::is_valid)
}

fn decision(s: &str) -> Option<Sampling> {
    match s {
        "1" => Some(Sampling::Accept),
        "0" => Some(Sampling::Deny),
        "d" => Some(Sampling::Debug),
        _ => None,
    }
}

fn found(parent: Option<(TraceId, SpanId)>, sampling: Sampling) -> Extraction {
    Extraction::Found(Incoming {
        parent,
        sampling,
        random: false,
        tracestate: TraceState::default(),
    })
}

/// `b3: {traceid}-{spanid}[-{1|0|d}[-{parentspanid}]]`, or a decision alone.
pub fn parse_single(value: &str) -> Option<Extraction> {
    let v = value.trim();
    let mut fields = v.split('-');
    let first = fields.next()?;
    let Some(second) = fields.next() else {
        // A decision alone: `0`, `1` or `d`.
        return decision(first).map(|s| found(None, s));
    };
    let ids = (trace_id(first)?, span_id(second)?);
    let sampling = match fields.next() {
        None => Sampling::Deferred,
        Some(s) => decision(s)?,
    };
    if let Some(parent) = fields.next() {
        span_id(parent)?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(found(Some(ids), sampling))
}

pub fn extract_single(headers: &HeaderList) -> Extraction {
    match header(headers, SINGLE) {
        Header::Absent => Extraction::Absent,
        Header::Several => Extraction::Malformed,
        Header::One(v) => parse_single(&text(v)).unwrap_or(Extraction::Malformed),
    }
}

/// The value of a multi header: absent, one value, or invalid (sent twice).
fn one<'a>(headers: &HeaderList<'a>, name: &str) -> Result<Option<Cow<'a, str>>, ()> {
    match header(headers, name) {
        Header::Absent => Ok(None),
        Header::One(v) => Ok(Some(match text(v) {
            Cow::Borrowed(v) => Cow::Borrowed(v.trim()),
            Cow::Owned(v) => Cow::Owned(v.trim().to_owned()),
        })),
        Header::Several => Err(()),
    }
}

pub fn extract_multi(headers: &HeaderList) -> Extraction {
    parse_multi(headers).unwrap_or(Extraction::Malformed)
}

fn parse_multi(headers: &HeaderList) -> Result<Extraction, ()> {
    let tid = one(headers, TRACE_ID)?;
    let sid = one(headers, SPAN_ID)?;
    let parent = one(headers, PARENT_SPAN_ID)?;
    let sampled = one(headers, SAMPLED)?;
    let flags = one(headers, FLAGS)?;
    if tid.is_none() && sid.is_none() && sampled.is_none() && flags.is_none() {
        return Ok(Extraction::Absent);
    }
    let sampling = match (flags.as_deref(), sampled.as_deref()) {
        (Some("1"), _) => Sampling::Debug,
        (Some("0") | None, Some("1" | "true")) => Sampling::Accept,
        (Some("0") | None, Some("0" | "false")) => Sampling::Deny,
        (Some("0") | None, None) => Sampling::Deferred,
        _ => return Err(()),
    };
    let ids = match (tid, sid) {
        (None, None) => None,
        (Some(t), Some(s)) => Some((trace_id(&t).ok_or(())?, span_id(&s).ok_or(())?)),
        _ => return Err(()),
    };
    if let Some(p) = parent {
        span_id(&p).ok_or(())?;
    }
    Ok(found(ids, sampling))
}

fn decision_char(ctx: &SpanContext) -> &'static [u8; 1] {
    match (ctx.debug, ctx.sampled) {
        (true, _) => b"d",
        (false, true) => b"1",
        (false, false) => b"0",
    }
}

pub fn inject_single(ctx: &SpanContext, hex: &IdsHex, edits: &mut Vec<HeaderEdit>) {
    let mut value = InlineValue::new();
    hex.put_short_trace(&mut value);
    value.put(b"-").put(hex.span()).put(b"-");
    value.put(decision_char(ctx));
    let value = value.value();
    edits.push(HeaderEdit::set(SINGLE, value));
}

pub fn inject_multi(ctx: &SpanContext, hex: &IdsHex, edits: &mut Vec<HeaderEdit>) {
    edits.push(HeaderEdit::set(TRACE_ID, {
        let mut id = InlineValue::new();
        hex.put_short_trace(&mut id);
        id.value()
    }));
    edits.push(HeaderEdit::set(
        SPAN_ID,
        InlineValue::new().put(hex.span()).value(),
    ));
    if ctx.debug {
        // Debug implies sampled: the spec says not to send both.
        edits.push(HeaderEdit::set(FLAGS, "1"));
    } else {
        let s = if ctx.sampled { "1" } else { "0" };
        edits.push(HeaderEdit::set(SAMPLED, s));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, hdrs};
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parent(e: &Extraction) -> Option<String> {
        match e {
            Extraction::Found(i) => i.parent.map(|(t, s)| format!("{t}/{s}")),
            _ => None,
        }
    }

    fn sampling(e: &Extraction) -> Option<Sampling> {
        match e {
            Extraction::Found(i) => Some(i.sampling),
            _ => None,
        }
    }

    #[test]
    fn single_header_rules() {
        let t = "80f198ee56343ba864fe8b2a57d3eff7";
        let rows: &[(&str, Option<Sampling>, bool, &str)] = &[
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
                Some(Sampling::Accept),
                true,
                "all fields",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
                Some(Sampling::Accept),
                true,
                "no parent",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
                Some(Sampling::Deferred),
                true,
                "no decision: deferred",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
                Some(Sampling::Debug),
                true,
                "debug",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
                Some(Sampling::Deny),
                true,
                "not sampled",
            ),
            ("0", Some(Sampling::Deny), false, "deny alone"),
            ("1", Some(Sampling::Accept), false, "accept alone"),
            ("d", Some(Sampling::Debug), false, "debug alone"),
            ("2", None, false, "unknown decision"),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x",
                None,
                false,
                "bad decision",
            ),
            (
                "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",
                None,
                false,
                "upper-case id",
            ),
            (
                "80f198ee56343ba-e457b5a2e4d86bd1-1",
                None,
                false,
                "15-digit trace id",
            ),
            (
                "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
                None,
                false,
                "zero trace id",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
                None,
                false,
                "zero span id",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-xyz",
                None,
                false,
                "bad parent",
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-9",
                None,
                false,
                "extra field",
            ),
            ("", None, false, "empty"),
        ];
        for (v, s, has_ids, why) in rows {
            let e = parse_single(v).unwrap_or(Extraction::Malformed);
            assert_eq!(sampling(&e), *s, "{why}");
            assert_eq!(parent(&e).is_some(), *has_ids, "{why}");
            if *has_ids {
                assert_eq!(parent(&e), Some(format!("{t}/e457b5a2e4d86bd1")), "{why}");
            }
        }
    }

    #[test]
    fn sixty_four_bit_ids_are_left_padded() {
        let e = parse_single("a3ce929d0e0e4736-00f067aa0ba902b7-1").unwrap();
        assert_eq!(
            parent(&e).as_deref(),
            Some("0000000000000000a3ce929d0e0e4736/00f067aa0ba902b7")
        );
    }

    #[test]
    fn multi_header_rules() {
        type Row<'a> = (&'a [(&'a str, &'a str)], Option<Sampling>, bool, &'a str);
        let tid = ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124");
        let sid = ("x-b3-spanid", "a2fb4a1d1a96d312");
        let rows: &[Row] = &[
            (
                &[tid, sid, ("x-b3-sampled", "1")],
                Some(Sampling::Accept),
                true,
                "sampled",
            ),
            (
                &[tid, sid, ("x-b3-sampled", "true")],
                Some(Sampling::Accept),
                true,
                "true accepted",
            ),
            (
                &[tid, sid, ("x-b3-sampled", "false")],
                Some(Sampling::Deny),
                true,
                "false accepted",
            ),
            (&[tid, sid], Some(Sampling::Deferred), true, "no decision"),
            (
                &[tid, sid, ("x-b3-flags", "1")],
                Some(Sampling::Debug),
                true,
                "debug",
            ),
            (
                &[tid, sid, ("x-b3-flags", "1"), ("x-b3-sampled", "0")],
                Some(Sampling::Debug),
                true,
                "debug wins",
            ),
            (
                &[("x-b3-sampled", "0")],
                Some(Sampling::Deny),
                false,
                "decision alone",
            ),
            (&[tid], None, false, "trace id without span id"),
            (&[sid], None, false, "span id without trace id"),
            (
                &[tid, sid, ("x-b3-sampled", "yes")],
                None,
                false,
                "bad sampled",
            ),
            (&[tid, sid, ("x-b3-flags", "2")], None, false, "bad flags"),
            (
                &[tid, sid, ("x-b3-parentspanid", "zz")],
                None,
                false,
                "bad parent",
            ),
            (
                &[("x-b3-traceid", "463ac35c9f6413ad"), sid],
                Some(Sampling::Deferred),
                true,
                "64-bit",
            ),
            (&[tid, sid, sid], None, false, "span id sent twice"),
        ];
        for (pairs, s, has_ids, why) in rows {
            let e = extract_multi(&hdrs(pairs));
            assert_eq!(sampling(&e), *s, "{why}");
            assert_eq!(parent(&e).is_some(), *has_ids, "{why}");
        }
        assert_eq!(
            extract_multi(&hdrs(&[("x-other", "1")])),
            Extraction::Absent
        );
    }

    #[test]
    fn inject_forms() {
        let mut c = ctx();
        let mut e = Vec::new();
        inject_single(&c, &IdsHex::new(&c), &mut e);
        assert_eq!(
            e[0].value.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")
        );
        c.debug = true;
        c.trace_id = TraceId::from_u128(0xa3ce_929d_0e0e_4736);
        let mut e = Vec::new();
        inject_single(&c, &IdsHex::new(&c), &mut e);
        inject_multi(&c, &IdsHex::new(&c), &mut e);
        assert_eq!(
            e[0].value.as_deref(),
            Some("a3ce929d0e0e4736-00f067aa0ba902b7-d")
        );
        assert_eq!(
            e[1].value.as_deref(),
            Some("a3ce929d0e0e4736"),
            "64-bit written short"
        );
        assert_eq!(e[3], HeaderEdit::set(FLAGS, "1"));
        assert!(
            e.iter().all(|x| x.name != SAMPLED),
            "debug: no x-b3-sampled"
        );
    }
}
