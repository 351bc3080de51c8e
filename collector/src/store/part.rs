//! The value of a trace part: a `TraceSummary` header, then where its spans are (`chunk::Location`).
//! A part's spans are one OTLP `TracesData` (spans that share a resource and scope share one
//! `ResourceSpans`/`ScopeSpans`; written by `SpanBatch::encode_into`, which copies every span's bytes as
//! received), kept in the chunk of the submission that brought them, compressed with the other parts'
//! spans of that submission.

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;

use super::keys::TraceSummary;
use crate::model::{records_of, SpanRecord};

pub fn summary_of(value: &[u8]) -> Option<TraceSummary> {
    TraceSummary::decode(value)
}

/// The spans of a part's encoded `TracesData`; `None` when they do not decode.
pub fn records_in(encoded: &[u8]) -> Option<Vec<SpanRecord>> {
    TracesData::decode(encoded).ok().map(records_of)
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
    use crate::model::{string_attribute, SpanBatch};
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
        let batch = SpanBatch::from_records(&records);
        let summary = TraceSummary {
            start_us: 1,
            end_us: 2,
            error: true,
            bytes: 3,
        };
        let mut value = summary.encode().to_vec();
        batch.encode_into(&[0, 1, 2, 3, 4], &mut value);
        assert_eq!(summary_of(&value), Some(summary));
        let encoded = &value[TraceSummary::LEN..];
        assert_eq!(records_in(encoded).unwrap(), records.to_vec());
        let data = TracesData::decode(&value[TraceSummary::LEN..]).unwrap();
        let shape: Vec<Vec<usize>> = data
            .resource_spans
            .iter()
            .map(|rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).collect())
            .collect();
        assert_eq!(
            shape,
            vec![vec![2, 1], vec![1], vec![1]],
            "runs share resources and scopes"
        );
    }
}
