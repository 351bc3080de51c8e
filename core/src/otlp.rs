//! The OTLP/protobuf the filter writes around its spans: attributes
//! (`KeyValue`), the `Resource` and `InstrumentationScope`, and the
//! `ExportTraceServiceRequest` framing spans encoded beforehand.
//!
//! Written field by field with prost's wire primitives (keys, varints,
//! lengths computed arithmetically) rather than through generated message
//! types: the crate that has those, opentelemetry-proto, brings
//! opentelemetry_sdk with it, which has no place in a proxy's module. The
//! bytes are exactly what prost writes for the same messages (tested against
//! opentelemetry-proto's types, which stay a test dependency).

use prost::encoding::{encode_varint, encoded_len_varint, key_len, WireType};

/// An attribute's value, as `AnyValue` carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyValue<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
}

/// Writes a varint: below 128 (every field key of these messages, nearly
/// every length) one byte pushed in place, else prost's `encode_varint`,
/// which is not inlined: a span's attributes write about six varints each.
#[inline]
pub fn varint(v: u64, buf: &mut Vec<u8>) {
    match u8::try_from(v) {
        Ok(b) if b < 0x80 => buf.push(b),
        _ => encode_varint(v, buf),
    }
}

/// Writes a field key (tag and wire type) as prost's `encode_key` does.
#[inline]
pub fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// Writes a length-delimited field: key, length, bytes.
pub fn length_delimited(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Writes `key = value` as a `KeyValue` in field `tag` of the enclosing
/// message (a span's or a resource's `attributes`).
pub fn key_value(tag: u32, key: &str, value: AnyValue<'_>, buf: &mut Vec<u8>) {
    let value_len = any_value_len(value);
    let kv_len = str_len(1, key) + key_len(2) + encoded_len_varint(value_len as u64) + value_len;
    encode_key(tag, WireType::LengthDelimited, buf);
    varint(kv_len as u64, buf);
    if !key.is_empty() {
        length_delimited(1, key.as_bytes(), buf);
    }
    encode_key(2, WireType::LengthDelimited, buf);
    varint(value_len as u64, buf);
    match value {
        AnyValue::Str(v) => length_delimited(1, v.as_bytes(), buf),
        AnyValue::Bool(v) => {
            encode_key(2, WireType::Varint, buf);
            varint(u64::from(v), buf);
        }
        AnyValue::Int(v) => {
            encode_key(3, WireType::Varint, buf);
            varint(v as u64, buf);
        }
    }
}

/// Encoded length of a string field (absent when empty, as prost does).
fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn any_value_len(v: AnyValue<'_>) -> usize {
    // A oneof member is written even when it holds its default value.
    match v {
        AnyValue::Str(s) => key_len(1) + encoded_len_varint(s.len() as u64) + s.len(),
        AnyValue::Bool(b) => key_len(2) + encoded_len_varint(u64::from(b)),
        AnyValue::Int(i) => key_len(3) + encoded_len_varint(i as u64),
    }
}

/// Builds ExportTraceServiceRequests around spans encoded beforehand.
///
/// Encoding the whole request with prost makes every level recompute the
/// lengths of all it holds; here each span is encoded once, when it ends, and
/// a batch is framed around the bytes: `request { resource_spans(1) {
/// resource(1), scope_spans(2) { scope(1), spans(2)... } } }`. The bytes are
/// the same as prost's encoding of the same request (tested).
pub struct Framing {
    /// `resource` field of ResourceSpans, encoded.
    resource: Vec<u8>,
    /// `scope` field of ScopeSpans, encoded.
    scope: Vec<u8>,
}

impl Framing {
    /// A resource of string attributes, and the instrumentation scope's name
    /// and version.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        resource: &[(K, V)],
        scope_name: &str,
        scope_version: &str,
    ) -> Self {
        let mut attributes = Vec::new();
        for (k, v) in resource {
            key_value(1, k.as_ref(), AnyValue::Str(v.as_ref()), &mut attributes);
        }
        let mut scope = Vec::new();
        for (tag, s) in [(1, scope_name), (2, scope_version)] {
            if !s.is_empty() {
                length_delimited(tag, s.as_bytes(), &mut scope);
            }
        }
        let mut r = Vec::new();
        length_delimited(1, &attributes, &mut r);
        let mut sc = Vec::new();
        length_delimited(1, &scope, &mut sc);
        Framing {
            resource: r,
            scope: sc,
        }
    }

    /// One request holding `spans` (each an encoded Span).
    pub fn request<B: AsRef<[u8]>>(&self, spans: &[B]) -> Vec<u8> {
        let spans_len: usize = spans
            .iter()
            .map(|s| {
                let n = s.as_ref().len();
                key_len(2) + encoded_len_varint(n as u64) + n
            })
            .sum();
        let mut scope_spans = Vec::with_capacity(self.scope.len() + spans_len);
        scope_spans.extend_from_slice(&self.scope);
        for s in spans {
            length_delimited(2, s.as_ref(), &mut scope_spans);
        }
        let mut resource_spans = Vec::with_capacity(self.resource.len() + scope_spans.len() + 16);
        resource_spans.extend_from_slice(&self.resource);
        length_delimited(2, &scope_spans, &mut resource_spans);
        let mut out = Vec::with_capacity(resource_spans.len() + 16);
        length_delimited(1, &resource_spans, &mut out);
        out
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue as ProtoValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn proto_kv(key: &str, value: AnyValue<'_>) -> KeyValue {
        let value = match value {
            AnyValue::Str(s) => any_value::Value::StringValue(s.into()),
            AnyValue::Bool(b) => any_value::Value::BoolValue(b),
            AnyValue::Int(i) => any_value::Value::IntValue(i),
        };
        KeyValue {
            key: key.into(),
            value: Some(ProtoValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn key_values_are_exactly_prosts() {
        let long = "x".repeat(300);
        let rows: &[(&str, AnyValue)] = &[
            ("s", AnyValue::Str("value")),
            ("empty", AnyValue::Str("")),
            ("zero", AnyValue::Int(0)),
            ("negative", AnyValue::Int(-42)),
            ("big", AnyValue::Int(i64::MAX)),
            ("yes", AnyValue::Bool(true)),
            ("no", AnyValue::Bool(false)),
            ("", AnyValue::Str("no key")),
            ("long", AnyValue::Str(&long)),
        ];
        for (key, value) in rows {
            // A resource's attributes are field 1: one KeyValue each.
            let mut ours = Vec::new();
            key_value(1, key, *value, &mut ours);
            let theirs = Resource {
                attributes: vec![proto_kv(key, *value)],
                ..Default::default()
            }
            .encode_to_vec();
            assert_eq!(ours, theirs, "{key} = {value:?}");
        }
    }

    #[test]
    fn framing_is_byte_for_byte_what_prost_writes() {
        let attrs = [("service.name", "shop"), ("k8s.namespace.name", "prod")];
        let resource = Resource {
            attributes: attrs
                .iter()
                .map(|(k, v)| proto_kv(k, AnyValue::Str(v)))
                .collect(),
            ..Default::default()
        };
        let spans: Vec<Span> = (0..3u8)
            .map(|i| Span {
                trace_id: vec![1; 16],
                span_id: vec![i + 1; 8],
                name: format!("GET /{i}"),
                ..Default::default()
            })
            .collect();
        for (name, version) in [("meshtrace", "0.1.0"), ("meshtrace", ""), ("", "")] {
            let by_prost = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: name.into(),
                            version: version.into(),
                            ..Default::default()
                        }),
                        spans: spans.clone(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            }
            .encode_to_vec();
            let encoded: Vec<Vec<u8>> = spans.iter().map(Message::encode_to_vec).collect();
            let framing = Framing::new(&attrs, name, version);
            assert_eq!(
                framing.request(&encoded),
                by_prost,
                "scope {name:?} {version:?}"
            );
        }
        let empty: [Vec<u8>; 0] = [];
        let no_attrs: [(&str, &str); 0] = [];
        let req = ExportTraceServiceRequest::decode(
            Framing::new(&no_attrs, "m", "1").request(&empty).as_slice(),
        )
        .unwrap();
        assert!(req.resource_spans[0].scope_spans[0].spans.is_empty());
        assert!(req.resource_spans[0].resource.is_some());
    }
}
