//! OTLP protobuf encoding of finished spans. The attributes, the resource,
//! the instrumentation scope and the export request around the spans are
//! meshtrace-core's (`otlp`).

use meshtrace_core::otlp::{
    encode_key, key_value, length_delimited as bytes, varint, AnyValue, Framing,
};
use prost::encoding::{encoded_len_varint, key_len, WireType};

use crate::span::{Span, SpanKind, StatusCode, Value};

/// OTLP span flags: the parent's remoteness is known (bit 8) and it is remote (bit 9).
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

pub const SCOPE_NAME: &str = "meshtrace";

/// The same span as prost message structs: the oracle [`encode_span`] is
/// tested against. Every parent we record is remote (the caller or the
/// application, never this process).
#[cfg(all(test, not(target_arch = "wasm32")))]
pub fn to_proto(span: &Span) -> opentelemetry_proto::tonic::trace::v1::Span {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue as Any, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, Status};
    let key_value = |k: &str, v: &Value| KeyValue {
        key: k.to_string(),
        value: Some(Any {
            value: Some(match any_value(v) {
                AnyValue::Str(s) => any_value::Value::StringValue(s.to_string()),
                AnyValue::Bool(b) => any_value::Value::BoolValue(b),
                AnyValue::Int(i) => any_value::Value::IntValue(i),
            }),
        }),
        ..Default::default()
    };
    ProtoSpan {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        trace_state: span.tracestate.clone().unwrap_or_default(),
        parent_span_id: span
            .parent_span_id
            .map(|p| p.0.to_vec())
            .unwrap_or_default(),
        flags: span_flags(span),
        name: span.name.clone(),
        kind: kind(span.kind) as i32,
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes: span
            .attributes
            .iter()
            .map(|(k, v)| key_value(k, v))
            .collect(),
        dropped_attributes_count: span.dropped_attributes,
        status: Some(Status {
            code: status_code(span.status) as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// A finished span in its OTLP protobuf form, encoded once when it ends.
///
/// Written field by field with prost's encoding primitives, lengths computed
/// arithmetically: no message structs, one allocation. The bytes are exactly
/// prost's encoding of [`to_proto`] (tested), which was 38% of the
/// per-request instructions when built and encoded the generic way.
pub fn encode_span(span: &Span) -> Vec<u8> {
    let mut buf = Vec::with_capacity(160 + span.name.len() + span.attributes.len() * 48);
    bytes(1, &span.trace_id.0, &mut buf);
    bytes(2, &span.span_id.0, &mut buf);
    if let Some(ts) = span.tracestate.as_deref().filter(|t| !t.is_empty()) {
        bytes(3, ts.as_bytes(), &mut buf);
    }
    if let Some(parent) = &span.parent_span_id {
        bytes(4, &parent.0, &mut buf);
    }
    if !span.name.is_empty() {
        bytes(5, span.name.as_bytes(), &mut buf);
    }
    encode_key(6, WireType::Varint, &mut buf);
    varint(u64::from(kind(span.kind)), &mut buf);
    for (tag, nanos) in [(7, span.start_unix_nanos), (8, span.end_unix_nanos)] {
        if nanos != 0 {
            encode_key(tag, WireType::SixtyFourBit, &mut buf);
            buf.extend_from_slice(&nanos.to_le_bytes());
        }
    }
    for (key, value) in &span.attributes {
        key_value(9, key, any_value(value), &mut buf);
    }
    if span.dropped_attributes != 0 {
        encode_key(10, WireType::Varint, &mut buf);
        varint(u64::from(span.dropped_attributes), &mut buf);
    }
    // Status: the message is empty; the code is left out when UNSET.
    let code = u64::from(status_code(span.status));
    let status_len = if code == 0 {
        0
    } else {
        key_len(3) + encoded_len_varint(code)
    };
    encode_key(15, WireType::LengthDelimited, &mut buf);
    varint(status_len as u64, &mut buf);
    if code != 0 {
        encode_key(3, WireType::Varint, &mut buf);
        varint(code, &mut buf);
    }
    // Field 16 last: prost writes fields in tag order.
    encode_key(16, WireType::ThirtyTwoBit, &mut buf);
    buf.extend_from_slice(&span_flags(span).to_le_bytes());
    buf
}

fn any_value(v: &Value) -> AnyValue<'_> {
    match v {
        Value::Str(s) => AnyValue::Str(s),
        Value::Static(s) => AnyValue::Str(s),
        Value::Bool(b) => AnyValue::Bool(*b),
        Value::Int(i) => AnyValue::Int(*i),
    }
}

fn span_flags(span: &Span) -> u32 {
    let mut flags = u32::from(span.trace_flags) | FLAG_HAS_IS_REMOTE;
    if span.parent_span_id.is_some() {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// `Span.SpanKind`.
fn kind(k: SpanKind) -> u8 {
    match k {
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    }
}

/// `Status.StatusCode`.
fn status_code(s: StatusCode) -> u8 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Error => 2,
    }
}

/// The export request's framing: this sidecar's resource, and meshtrace,
/// this version, as the instrumentation scope.
pub fn framing(resource: &[(String, String)]) -> Framing {
    Framing::new(resource, SCOPE_NAME, env!("CARGO_PKG_VERSION"))
}

/// Against prost's generated types, natively only (see Cargo.toml).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message;

    fn span() -> Span {
        Span {
            trace_id: TraceId::from_u128(0x0102),
            span_id: SpanId::from_u64(0x0304),
            parent_span_id: Some(SpanId::from_u64(0x0506)),
            trace_flags: 1,
            tracestate: Some("a=1".into()),
            name: "GET".into(),
            kind: SpanKind::Client,
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            attributes: vec![("http.response.status_code".into(), Value::Int(503))],
            dropped_attributes: 2,
            status: StatusCode::Error,
        }
    }

    #[test]
    fn encode_decodes_back_with_every_field() {
        let res = [("service.name".to_string(), "shop".to_string())];
        let bytes = framing(&res).request(&[encode_span(&span())]);
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let rs = &req.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let ss = &rs.scope_spans[0];
        let scope = ss.scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("meshtrace", env!("CARGO_PKG_VERSION"))
        );
        let s = &ss.spans[0];
        assert_eq!(s.trace_id, TraceId::from_u128(0x0102).0.to_vec());
        assert_eq!(s.parent_span_id, SpanId::from_u64(0x0506).0.to_vec());
        assert_eq!(s.kind, 3, "CLIENT");
        assert_eq!(s.flags, 0x301, "sampled, parent known to be remote");
        assert_eq!(s.status.as_ref().unwrap().code, 2, "ERROR");
        assert_eq!(s.trace_state, "a=1");
        assert_eq!(s.dropped_attributes_count, 2);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 10);
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(503))
        );
    }

    #[test]
    fn root_span_has_no_parent_and_is_not_remote() {
        let mut sp = span();
        sp.parent_span_id = None;
        let p = to_proto(&sp);
        assert!(p.parent_span_id.is_empty());
        assert_eq!(p.flags, 0x101);
    }

    #[test]
    fn span_bytes_are_exactly_prosts() {
        let base = span();
        let mut variants = vec![base.clone()];
        let mut root = base.clone();
        root.parent_span_id = None;
        root.tracestate = None;
        root.status = StatusCode::Unset;
        root.dropped_attributes = 0;
        variants.push(root);
        let mut attrs = base.clone();
        attrs.attributes = vec![
            ("s".into(), Value::Str("value".into())),
            ("empty".into(), Value::Str(String::new())),
            ("zero".into(), Value::Int(0)),
            ("negative".into(), Value::Int(-42)),
            ("big".into(), Value::Int(i64::MAX)),
            ("yes".into(), Value::Bool(true)),
            ("no".into(), Value::Bool(false)),
            ("".into(), Value::Str("no key".into())),
            ("long".into(), Value::Str("x".repeat(300))),
        ];
        attrs.name = String::new();
        attrs.tracestate = Some(String::new());
        variants.push(attrs);
        let mut unsampled = base;
        unsampled.trace_flags = 0;
        unsampled.start_unix_nanos = 0;
        variants.push(unsampled);
        for (i, v) in variants.iter().enumerate() {
            assert_eq!(encode_span(v), to_proto(v).encode_to_vec(), "variant {i}");
        }
    }
}
