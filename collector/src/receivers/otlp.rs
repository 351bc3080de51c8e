//! What the receivers share: the spans of one request with the count of those rejected (`Conversion`,
//! for receivers that build span structs), and the OTLP response.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::model::SpanRecord;

/// The spans of one request as records (Jaeger, Zipkin), split into the ones to store and a count of the
/// rejected ones.
#[derive(Debug, Default)]
pub struct Conversion {
    pub records: Vec<SpanRecord>,
    pub rejected: usize,
    /// Why the first rejected span was rejected.
    pub first_error: Option<String>,
}

impl Conversion {
    pub fn total(&self) -> usize {
        self.records.len() + self.rejected
    }

    pub fn reject(&mut self, why: &str) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why.to_string());
        }
    }

    /// The OTLP response: `partial_success` only when something was rejected.
    pub fn response(&self) -> ExportTraceServiceResponse {
        response(self.rejected, self.first_error.as_deref())
    }
}

/// The OTLP response for a request of which `rejected` spans were left out (`partial_success` only then).
pub fn response(rejected: usize, first_error: Option<&str>) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: format!(
                "{rejected} span(s) rejected: {}",
                first_error.unwrap_or("invalid span")
            ),
        }),
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
    use crate::model::SpanBatch;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    #[test]
    fn rejects_only_the_bad_spans() {
        let good = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let zero = Span {
            trace_id: vec![0; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let empty = Span::default();
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good, zero, empty],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = SpanBatch::parse(req.encode_to_vec().into()).unwrap();
        let (rejected, why) = batch.rejected();
        assert_eq!((batch.len(), rejected), (1, 2));
        let partial = response(rejected, why).partial_success;
        assert_eq!(partial.map(|p| p.rejected_spans), Some(2));
        assert_eq!(
            Conversion::default().response().partial_success,
            None,
            "all accepted: no partial_success"
        );
    }
}
