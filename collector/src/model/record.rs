//! `SpanRecord`: one span with the resource and instrumentation scope it was sent with. This is the unit
//! the store keeps, encoded as an OTLP `ResourceSpans` holding exactly one span.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;

use super::ids::{span_id_from_bytes, trace_id_from_bytes, SpanId, TraceId};

/// The service name used when a resource carries no `service.name`.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// A validated span: its ids are known to be well-formed and non-zero.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub span: Span,
}

/// Every valid span of `data` as a record with its resource and scope; invalid spans are skipped.
pub fn records_of(data: TracesData) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for rs in data.resource_spans {
        let resource = rs.resource.unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.unwrap_or_default();
            for span in ss.spans {
                if let Ok(rec) = SpanRecord::new(resource.clone(), scope.clone(), span) {
                    out.push(rec);
                }
            }
        }
    }
    out
}

impl SpanRecord {
    /// Builds a record, or says why the span is rejected.
    pub fn new(
        resource: Resource,
        scope: InstrumentationScope,
        mut span: Span,
    ) -> Result<Self, &'static str> {
        let trace_id = trace_id_from_bytes(&span.trace_id)
            .ok_or("invalid trace id (empty, wrong length or all zero)")?;
        let span_id = span_id_from_bytes(&span.span_id)
            .ok_or("invalid span id (empty, wrong length or all zero)")?;
        if !span.parent_span_id.is_empty() && span_id_from_bytes(&span.parent_span_id).is_none() {
            if span.parent_span_id.iter().all(|b| *b == 0) {
                // An all-zero parent means "no parent" for some senders.
                span.parent_span_id.clear();
            } else {
                return Err("invalid parent span id (wrong length)");
            }
        }
        Ok(Self {
            trace_id,
            span_id,
            resource,
            scope,
            span,
        })
    }

    pub fn service_name(&self) -> &str {
        self.resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                },
            )
            .unwrap_or(UNKNOWN_SERVICE)
    }

    pub fn parent_span_id(&self) -> Option<SpanId> {
        span_id_from_bytes(&self.span.parent_span_id)
    }

    /// Start time in microseconds since the epoch.
    pub fn start_us(&self) -> u64 {
        self.span.start_time_unix_nano / 1_000
    }

    /// Duration in microseconds (zero when the end precedes the start).
    pub fn duration_us(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
            / 1_000
    }

    pub fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|s| s.code == status::StatusCode::Error as i32)
    }

    /// Jaeger's lower-case span kind name, empty for unspecified.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.span.kind)
    }

    /// Every tag a query may match on, as `(key, value)` strings: span attributes, resource attributes and
    /// the derived tags the Jaeger API shows (`span.kind`, `error`, `otel.status_code`).
    pub fn searchable_tags(&self) -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = self
            .span
            .attributes
            .iter()
            .chain(self.resource.attributes.iter())
            .filter_map(|kv| attribute_string(kv).map(|v| (kv.key.clone(), v)))
            .collect();
        let kind = self.kind_name();
        if !kind.is_empty() {
            tags.push(("span.kind".into(), kind.into()));
        }
        if self.is_error() {
            tags.push(("error".into(), "true".into()));
            tags.push(("otel.status_code".into(), "ERROR".into()));
        } else if self
            .span
            .status
            .as_ref()
            .is_some_and(|s| s.code == status::StatusCode::Ok as i32)
        {
            tags.push(("otel.status_code".into(), "OK".into()));
        }
        tags
    }

    /// Calls `f` with every searchable tag (the same ones, in the same order, as `searchable_tags`)
    /// without allocating for string attributes.
    pub fn for_each_tag(&self, mut f: impl FnMut(&str, &str)) {
        for kv in self
            .span
            .attributes
            .iter()
            .chain(self.resource.attributes.iter())
        {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => f(&kv.key, s),
                Some(_) => {
                    if let Some(v) = attribute_string(kv) {
                        f(&kv.key, &v);
                    }
                }
                None => {}
            }
        }
        let kind = self.kind_name();
        if !kind.is_empty() {
            f("span.kind", kind);
        }
        if self.is_error() {
            f("error", "true");
            f("otel.status_code", "ERROR");
        } else if self
            .span
            .status
            .as_ref()
            .is_some_and(|s| s.code == status::StatusCode::Ok as i32)
        {
            f("otel.status_code", "OK");
        }
    }

    /// A stable 4-byte discriminator that keeps apart spans sharing a span id (Zipkin's shared
    /// client/server spans; Envoy's Zipkin tracer sends several spans with one id) while a retried
    /// duplicate maps onto the same key.
    pub fn discriminator(&self) -> [u8; 4] {
        span_discriminator(
            self.service_name(),
            self.span.kind,
            self.span.start_time_unix_nano,
            &self.span.name,
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        ResourceSpans {
            resource: Some(self.resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(self.scope.clone()),
                spans: vec![self.span.clone()],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rs = ResourceSpans::decode(bytes).ok()?;
        let resource = rs.resource.unwrap_or_default();
        let ss = rs.scope_spans.into_iter().next()?;
        let span = ss.spans.into_iter().next()?;
        Self::new(resource, ss.scope.unwrap_or_default(), span).ok()
    }
}

/// `SpanRecord::discriminator` from its parts (CRC32 of service, kind, start and name).
pub fn span_discriminator(service: &str, kind: i32, start_ns: u64, name: &str) -> [u8; 4] {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(service.as_bytes());
    hasher.update(&kind.to_be_bytes());
    hasher.update(&start_ns.to_be_bytes());
    hasher.update(name.as_bytes());
    hasher.finalize().to_be_bytes()
}

/// Jaeger's lower-case name for an OTLP span kind.
pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "",
    }
}

/// The string form of a scalar attribute (what tag queries compare against); `None` for arrays, maps, bytes.
pub fn attribute_string(kv: &KeyValue) -> Option<String> {
    match kv
        .value
        .as_ref()
        .and_then(|v: &AnyValue| v.value.as_ref())?
    {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A string attribute.
pub fn string_attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
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

    fn span(trace: Vec<u8>, id: Vec<u8>, parent: Vec<u8>) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            ..Default::default()
        }
    }

    #[test]
    fn rejects_bad_ids_and_accepts_zero_parent() {
        let r = Resource::default();
        let s = InstrumentationScope::default();
        assert!(
            SpanRecord::new(r.clone(), s.clone(), span(vec![0; 16], vec![1; 8], vec![])).is_err(),
            "zero trace id"
        );
        assert!(
            SpanRecord::new(r.clone(), s.clone(), span(vec![1; 16], vec![], vec![])).is_err(),
            "empty span id"
        );
        assert!(
            SpanRecord::new(
                r.clone(),
                s.clone(),
                span(vec![1; 16], vec![1; 8], vec![1; 3])
            )
            .is_err(),
            "short parent"
        );
        let ok = SpanRecord::new(r, s, span(vec![1; 16], vec![1; 8], vec![0; 8]))
            .map_err(|e| e.to_string());
        assert_eq!(
            ok.map(|r| r.parent_span_id()),
            Ok(None),
            "all-zero parent means root"
        );
    }

    #[test]
    fn for_each_tag_sees_the_searchable_tags() {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", "cart")],
            ..Default::default()
        };
        let mut s = span(vec![7; 16], vec![3; 8], vec![]);
        s.kind = 2;
        s.attributes = vec![
            string_attribute("a", "x"),
            KeyValue {
                key: "n".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                }),
                ..Default::default()
            },
        ];
        s.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        });
        let rec = SpanRecord::new(resource, InstrumentationScope::default(), s).unwrap();
        let mut seen = Vec::new();
        rec.for_each_tag(|k, v| seen.push((k.to_string(), v.to_string())));
        assert_eq!(seen, rec.searchable_tags());
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn encodes_and_decodes_round_trip() {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", "cart")],
            ..Default::default()
        };
        let rec = SpanRecord::new(
            resource,
            InstrumentationScope::default(),
            span(vec![7; 16], vec![3; 8], vec![]),
        )
        .ok();
        let rec = rec.into_iter().next();
        let back = rec.as_ref().and_then(|r| SpanRecord::decode(&r.encode()));
        assert_eq!(back, rec);
        assert_eq!(
            back.map(|r| r.service_name().to_string()).as_deref(),
            Some("cart")
        );
    }
}
