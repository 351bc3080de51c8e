//! Jaeger API v3's `TraceSummary` of a trace, computed from the lean view of its spans, with meshtrace's
//! diagnostics counts as an extension field (`meshtrace`). Root: among the spans without a parent, the
//! one that starts first (as Jaeger picks it); services sorted by name.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diagnostics::{self, Counts};
use crate::model::TraceId;
use crate::store::SpanSkeleton;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    pub name: String,
    pub span_count: u32,
    pub error_span_count: u32,
}

/// meshtrace's extension of a summary: what the diagnostics found, as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshtraceCounts {
    pub root_span_count: u32,
    pub untraced_callee_count: u32,
    pub clock_skew_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service_name: String,
    pub root_operation_name: String,
    /// Unix nanoseconds as a decimal string (proto3 JSON for 64-bit integers).
    pub min_start_time_unix_nano: String,
    pub max_end_time_unix_nano: String,
    pub span_count: u32,
    pub error_span_count: u32,
    pub orphan_span_count: u32,
    pub services: Vec<ServiceSummary>,
    pub meshtrace: MeshtraceCounts,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The summary of a trace and the counts of its problems (`None` for a trace without spans).
pub fn summarize(trace: &TraceId, spans: &[SpanSkeleton]) -> Option<(TraceSummary, Counts)> {
    let root = spans
        .iter()
        .filter(|s| s.parent.is_none())
        .min_by_key(|s| (s.start_ns, s.span_id));
    let start = spans.iter().map(|s| s.start_ns).min()?;
    let end = spans.iter().map(|s| s.end_ns.max(s.start_ns)).max()?;
    let mut services: BTreeMap<&str, ServiceSummary> = BTreeMap::new();
    for s in spans {
        let entry = services
            .entry(&s.service)
            .or_insert_with(|| ServiceSummary {
                name: s.service.to_string(),
                span_count: 0,
                error_span_count: 0,
            });
        entry.span_count += 1;
        entry.error_span_count += u32::from(s.error);
    }
    let counts = diagnostics::count(spans);
    let summary = TraceSummary {
        trace_id: hex::encode(trace),
        root_service_name: root.map(|r| r.service.to_string()).unwrap_or_default(),
        root_operation_name: root.map(|r| r.name.clone()).unwrap_or_default(),
        min_start_time_unix_nano: start.to_string(),
        max_end_time_unix_nano: end.to_string(),
        span_count: count(spans.len()),
        error_span_count: count(spans.iter().filter(|s| s.error).count()),
        orphan_span_count: count(counts.orphans),
        services: services.into_values().collect(),
        meshtrace: MeshtraceCounts {
            root_span_count: count(counts.roots),
            untraced_callee_count: count(counts.untraced_callees),
            clock_skew_count: count(counts.clock_skew),
        },
    };
    Some((summary, counts))
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
    use std::sync::Arc;

    fn sk(
        id: u8,
        parent: Option<u8>,
        service: &str,
        start: u64,
        end: u64,
        error: bool,
    ) -> SpanSkeleton {
        SpanSkeleton {
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            service: Arc::from(service),
            name: format!("op{id}"),
            kind: 2,
            start_ns: start,
            end_ns: end,
            error,
            context_source: None,
            peer: None,
        }
    }

    #[test]
    fn summary_counts_spans_errors_orphans_and_services() {
        let spans = [
            sk(2, Some(1), "cart", 5, 50, true),
            sk(1, None, "front", 10, 100, false),
            sk(3, Some(9), "billing", 20, 120, true),
            sk(4, None, "batch", 30, 40, false),
        ];
        let (s, counts) = summarize(&[7; 16], &spans).unwrap();
        assert_eq!(s.trace_id, "07".repeat(16));
        assert_eq!(
            (s.root_service_name.as_str(), s.root_operation_name.as_str()),
            ("front", "op1"),
            "the earliest span without a parent is the root"
        );
        assert_eq!(
            (
                s.min_start_time_unix_nano.as_str(),
                s.max_end_time_unix_nano.as_str()
            ),
            ("5", "120")
        );
        assert_eq!(
            (s.span_count, s.error_span_count, s.orphan_span_count),
            (4, 2, 1)
        );
        let names: Vec<&str> = s.services.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            ["batch", "billing", "cart", "front"],
            "sorted by name"
        );
        assert_eq!(s.services[2].error_span_count, 1);
        assert_eq!(s.meshtrace.root_span_count, 2);
        assert_eq!(
            s.meshtrace.clock_skew_count, 1,
            "cart starts before its parent"
        );
        assert_eq!(counts.roots, 2);
        assert!(summarize(&[7; 16], &[]).is_none(), "no spans, no summary");
    }
}
