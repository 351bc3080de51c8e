//! The value of a trace part: a `TraceSummary` header, then the part's spans as one OTLP `TracesData`
//! (spans that share a resource and scope share one `ResourceSpans`/`ScopeSpans`). The LSM
//! compresses its blocks (LZ4), many parts at a time, which beats compressing each small part alone.

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message;

use super::keys::TraceSummary;
use crate::model::SpanRecord;

/// The uncompressed encoding of `records` (in order).
pub fn encode_spans(records: &[&SpanRecord]) -> Vec<u8> {
    let mut data = TracesData::default();
    for rec in records {
        let same_resource = data
            .resource_spans
            .last()
            .is_some_and(|rs| rs.resource.as_ref() == Some(&rec.resource));
        if !same_resource {
            data.resource_spans.push(ResourceSpans {
                resource: Some(rec.resource.clone()),
                scope_spans: Vec::new(),
                schema_url: String::new(),
            });
        }
        let Some(rs) = data.resource_spans.last_mut() else {
            continue;
        };
        let same_scope = rs
            .scope_spans
            .last()
            .is_some_and(|ss| ss.scope.as_ref() == Some(&rec.scope));
        if !same_scope {
            rs.scope_spans.push(ScopeSpans {
                scope: Some(rec.scope.clone()),
                spans: Vec::new(),
                schema_url: String::new(),
            });
        }
        if let Some(ss) = rs.scope_spans.last_mut() {
            ss.spans.push(rec.span.clone());
        }
    }
    data.encode_to_vec()
}

/// The stored value: header then the encoded spans.
pub fn encode_value(summary: &TraceSummary, spans: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TraceSummary::LEN + spans.len());
    out.extend_from_slice(&summary.encode());
    out.extend_from_slice(spans);
    out
}

pub fn summary_of(value: &[u8]) -> Option<TraceSummary> {
    TraceSummary::decode(value)
}

/// The spans of a stored value; `None` when it does not decode.
pub fn decode_value(value: &[u8]) -> Option<Vec<SpanRecord>> {
    let data = TracesData::decode(value.get(TraceSummary::LEN..)?).ok()?;
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
    Some(out)
}
