//! From an OTLP export request to validated span records, shared by OTLP/HTTP and OTLP/gRPC.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::model::SpanRecord;

/// The spans of one request, split into the ones to store and a count of the rejected ones.
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
        ExportTraceServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                error_message: format!(
                    "{} span(s) rejected: {}",
                    self.rejected,
                    self.first_error.as_deref().unwrap_or("invalid span")
                ),
            }),
        }
    }
}

pub fn split_request(req: ExportTraceServiceRequest) -> Conversion {
    let mut out = Conversion::default();
    for rs in req.resource_spans {
        let resource = rs.resource.unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.unwrap_or_default();
            for span in ss.spans {
                match SpanRecord::new(resource.clone(), scope.clone(), span) {
                    Ok(rec) => out.records.push(rec),
                    Err(why) => out.reject(why),
                }
            }
        }
    }
    out
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
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

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
        let c = split_request(req);
        assert_eq!((c.records.len(), c.rejected), (1, 2));
        let partial = c.response().partial_success;
        assert_eq!(partial.map(|p| p.rejected_spans), Some(2));
        assert_eq!(
            Conversion::default().response().partial_success,
            None,
            "all accepted: no partial_success"
        );
    }
}
