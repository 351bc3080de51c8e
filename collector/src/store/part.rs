//! A trace part's spans, as read: one OTLP `TracesData` (spans that share a resource and scope share
//! one `ResourceSpans`/`ScopeSpans`; written from the part's layout in its chunk's body by
//! `model::layout::encode`, which copies every span's bytes as received).

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;

use crate::model::{records_of, SpanRecord};

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
        let mut encoded = Vec::new();
        batch.encode_into(&[0, 1, 2, 3, 4], &mut encoded);
        assert_eq!(records_in(&encoded).unwrap(), records.to_vec());
        assert_eq!(records_in(&[0xff, 0xff]), None, "bytes that do not decode");
        let data = TracesData::decode(&encoded[..]).unwrap();
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
