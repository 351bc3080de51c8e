//! The value of a trace part: a `TraceSummary` header, then the part's spans as one OTLP `TracesData`
//! (spans that share a resource and scope share one `ResourceSpans`/`ScopeSpans`). The LSM
//! compresses its blocks (LZ4), many parts at a time, which beats compressing each small part alone.

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::encoding::{self, WireType};
use prost::Message;

use super::keys::TraceSummary;
use crate::model::SpanRecord;

/// The encoding of `records` (in order) as an OTLP `TracesData`, written field by field so that no span
/// is cloned: runs of spans sharing a resource share one `ResourceSpans`, runs sharing a scope within it
/// one `ScopeSpans`.
pub fn encode_spans(records: &[&SpanRecord]) -> Vec<u8> {
    // Runs of equal resources, and within them runs of equal scopes, as index ranges.
    let mut resources: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        let same_resource = resources
            .last()
            .and_then(|(first, _)| records.get(*first))
            .is_some_and(|r| r.resource == rec.resource);
        if !same_resource {
            resources.push((i, Vec::new()));
        }
        let Some((_, scopes)) = resources.last_mut() else {
            continue;
        };
        match scopes.last_mut() {
            Some((first, end)) if records.get(*first).is_some_and(|r| r.scope == rec.scope) => {
                *end = i + 1
            }
            _ => scopes.push((i, i + 1)),
        }
    }
    let span_lens: Vec<usize> = records
        .iter()
        .map(|r| encoding::message::encoded_len(2, &r.span))
        .collect();
    let scope_len = |first: usize, end: usize| {
        records
            .get(first)
            .map_or(0, |r| encoding::message::encoded_len(1, &r.scope))
            + span_lens.get(first..end).map_or(0, |l| l.iter().sum())
    };
    let mut out = Vec::new();
    for (first, scopes) in &resources {
        let Some(resource) = records.get(*first).map(|r| &r.resource) else {
            continue;
        };
        let body = encoding::message::encoded_len(1, resource)
            + scopes
                .iter()
                .map(|(f, e)| delimited_len(2, scope_len(*f, *e)))
                .sum::<usize>();
        encoding::encode_key(1, WireType::LengthDelimited, &mut out);
        encoding::encode_varint(body as u64, &mut out);
        encoding::message::encode(1, resource, &mut out);
        for (f, e) in scopes {
            encoding::encode_key(2, WireType::LengthDelimited, &mut out);
            encoding::encode_varint(scope_len(*f, *e) as u64, &mut out);
            for (i, rec) in records.iter().enumerate().take(*e).skip(*f) {
                if i == *f {
                    encoding::message::encode(1, &rec.scope, &mut out);
                }
                encoding::message::encode(2, &rec.span, &mut out);
            }
        }
    }
    out
}

/// Length of a length-delimited field with tag `tag` and a body of `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len
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

/// The encoded `TracesData` of a stored value.
pub fn encoded_spans(value: &[u8]) -> Option<&[u8]> {
    value.get(TraceSummary::LEN..)
}

/// The spans of a stored value; `None` when it does not decode.
pub fn decode_value(value: &[u8]) -> Option<Vec<SpanRecord>> {
    let data = TracesData::decode(encoded_spans(value)?).ok()?;
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
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn rec(service: &str, scope: &str, span: u8) -> SpanRecord {
        SpanRecord::new(
            Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            },
            InstrumentationScope {
                name: scope.into(),
                ..Default::default()
            },
            Span {
                trace_id: vec![1; 16],
                span_id: vec![span; 8],
                name: format!("op{span}"),
                attributes: vec![string_attribute("k", "v")],
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn parts_round_trip_and_share_resources() {
        let records = [
            rec("a", "s", 1),
            rec("a", "s", 2),
            rec("a", "t", 3),
            rec("b", "t", 4),
            rec("a", "s", 5),
        ];
        let refs: Vec<&SpanRecord> = records.iter().collect();
        let spans = encode_spans(&refs);
        let data = TracesData::decode(spans.as_slice()).unwrap();
        let shape: Vec<Vec<usize>> = data
            .resource_spans
            .iter()
            .map(|rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).collect())
            .collect();
        assert_eq!(shape, vec![vec![2, 1], vec![1], vec![1]]);
        let summary = TraceSummary::default();
        let back = decode_value(&encode_value(&summary, &spans)).unwrap();
        assert_eq!(back, records.to_vec());
        assert_eq!(summary_of(&encode_value(&summary, &spans)), Some(summary));
    }
}
