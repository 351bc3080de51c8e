//! OTLP protobuf encoding of finished spans, with the opentelemetry-proto
//! prost messages.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span as ProtoSpan, Status,
};
use prost::Message;

use crate::span::{Span, SpanKind, StatusCode, Value};

pub use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;

/// OTLP span flags: the parent's remoteness is known (bit 8) and it is remote (bit 9).
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

pub const SCOPE_NAME: &str = "meshtrace";

fn any_value(v: Value) -> AnyValue {
    let value = match v {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    AnyValue { value: Some(value) }
}

pub fn key_value(key: impl Into<String>, value: impl Into<Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(any_value(value.into())),
        ..Default::default()
    }
}

/// Converts a finished span; every parent we record is remote (the caller
/// or the application, never this process).
pub fn to_proto(span: Span) -> ProtoSpan {
    let mut flags = u32::from(span.trace_flags) | FLAG_HAS_IS_REMOTE;
    if span.parent_span_id.is_some() {
        flags |= FLAG_IS_REMOTE;
    }
    let (code, message) = match span.status {
        StatusCode::Unset => (status::StatusCode::Unset, String::new()),
        StatusCode::Error => (status::StatusCode::Error, String::new()),
    };
    ProtoSpan {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        trace_state: span.tracestate.unwrap_or_default(),
        parent_span_id: span
            .parent_span_id
            .map(|p| p.0.to_vec())
            .unwrap_or_default(),
        flags,
        name: span.name,
        kind: match span.kind {
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
        } as i32,
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes: span
            .attributes
            .into_iter()
            .map(|(k, v)| key_value(k.into_owned(), v))
            .collect(),
        dropped_attributes_count: span.dropped_attributes,
        status: Some(Status {
            code: code as i32,
            message,
        }),
        ..Default::default()
    }
}

pub fn resource(attributes: Vec<(&'static str, String)>) -> Resource {
    Resource {
        attributes: attributes
            .into_iter()
            .map(|(k, v)| key_value(k, v))
            .collect(),
        ..Default::default()
    }
}

/// An ExportTraceServiceRequest holding `spans` under one resource and scope.
pub fn encode(resource: &Resource, spans: Vec<ProtoSpan>) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
        let res = resource(vec![("service.name", "shop".into())]);
        let bytes = encode(&res, vec![to_proto(span())]);
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let rs = &req.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "meshtrace");
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
        let p = to_proto(sp);
        assert!(p.parent_span_id.is_empty());
        assert_eq!(p.flags, 0x101);
    }
}
