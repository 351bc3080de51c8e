//! Span records back into an OTLP `TracesData`: spans that share a resource share one `ResourceSpans`,
//! and within it spans that share a scope one `ScopeSpans`. Serialized with opentelemetry-proto's serde
//! mapping this is OTLP JSON (hex ids, 64-bit integers as strings, lowerCamelCase).

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use serde_json::Value;

use crate::model::SpanRecord;

/// The records (in start order) as one `TracesData`.
pub fn traces_data(mut records: Vec<SpanRecord>) -> TracesData {
    records.sort_by_key(|r| (r.span.start_time_unix_nano, r.span_id));
    let mut out: Vec<ResourceSpans> = Vec::new();
    for rec in records {
        let resource = Some(rec.resource);
        let rs = match out.iter_mut().position(|rs| rs.resource == resource) {
            Some(i) => out.get_mut(i),
            None => {
                out.push(ResourceSpans {
                    resource,
                    scope_spans: Vec::new(),
                    schema_url: String::new(),
                });
                out.last_mut()
            }
        };
        let Some(rs) = rs else { continue };
        let scope = Some(rec.scope);
        match rs.scope_spans.iter_mut().find(|ss| ss.scope == scope) {
            Some(ss) => ss.spans.push(rec.span),
            None => rs.scope_spans.push(ScopeSpans {
                scope,
                spans: vec![rec.span],
                schema_url: String::new(),
            }),
        }
    }
    TracesData {
        resource_spans: out,
    }
}

/// OTLP JSON of `data` as proto3's JSON mapping writes it: unset message fields (a span without status)
/// and empty parent ids are left out rather than written as `null` and `""`.
pub fn to_json(data: &TracesData) -> Value {
    fn clean(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, x| !(x.is_null() || (k == "parentSpanId" && x == "")));
                map.values_mut().for_each(clean);
            }
            Value::Array(items) => items.iter_mut().for_each(clean),
            _ => {}
        }
    }
    let mut v =
        serde_json::to_value(data).unwrap_or_else(|_| serde_json::json!({"resourceSpans": []}));
    clean(&mut v);
    v
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
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn rec(service: &str, id: u8, start: u64) -> SpanRecord {
        SpanRecord::new(
            Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            },
            Default::default(),
            Span {
                trace_id: vec![0xab; 16],
                span_id: vec![id; 8],
                start_time_unix_nano: start,
                end_time_unix_nano: start + 5,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn spans_group_under_their_resource_and_serialize_as_otlp_json() {
        let data = traces_data(vec![rec("b", 3, 30), rec("a", 1, 10), rec("b", 2, 20)]);
        let shape: Vec<usize> = data
            .resource_spans
            .iter()
            .map(|rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).sum())
            .collect();
        assert_eq!(shape, [1, 2], "a's span first (earliest), then both of b's");
        let json = to_json(&data);
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(
            span.get("status").is_none(),
            "no status: left out, not null: {span}"
        );
        assert!(
            span.get("parentSpanId").is_none(),
            "a root has no parent id: {span}"
        );
        assert_eq!(span["traceId"], "ab".repeat(16), "hex trace id");
        assert_eq!(span["spanId"], "0101010101010101");
        assert_eq!(span["startTimeUnixNano"], "10", "u64 as a decimal string");
    }
}
