//! `traces_total{service_name, operation_name, span_kind, status}` and the histogram
//! `traces_duration_seconds{service_name, operation_name, span_kind}`, from every span received.
//!
//! Cardinality is bounded: once `max_series` distinct (service, operation, kind) combinations exist, a new
//! combination is counted under `operation_name="__overflow__"` (and `service_name="__overflow__"` too
//! when the service itself is new), so the number of series stays bounded whatever the senders do.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use foldhash::fast::RandomState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{SpanBatch, SpanRef};

/// The label value used past the cardinality limit.
pub const OVERFLOW: &str = "__overflow__";

/// Latency buckets in seconds, 2 ms to 15 s (the OpenTelemetry spanmetrics connector's defaults).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    service_name: String,
    operation_name: String,
    span_kind: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DurationLabels {
    service_name: String,
    operation_name: String,
    span_kind: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Default)]
struct Seen {
    series: HashSet<(String, String, &'static str)>,
    services: HashSet<String>,
}

pub struct SpanMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    overflowed: Counter,
    seen: Mutex<Seen>,
    max_series: usize,
    /// The counter and histogram of every series within the limit, by service, then operation, then
    /// (kind, status): found by the batch's borrowed names without building labels (two `String`s, the
    /// families' hashing and locks) each time a batch has the series. The families never drop a series,
    /// so a handle kept here stays the one they export.
    handles: Mutex<Handles>,
}

type Handles = HashMap<String, HashMap<String, Vec<Handle>, RandomState>, RandomState>;

#[derive(Clone)]
struct Handle {
    kind: &'static str,
    status: &'static str,
    /// Counted under `__overflow__` labels (never remembered: the limit is asked again next time).
    overflowed: bool,
    calls: Counter,
    duration: Histogram,
}

/// The span kind label: `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
pub fn kind_label(span: &SpanRef<'_>) -> &'static str {
    match span.kind_name() {
        "" => "unspecified",
        k => k,
    }
}

/// The status label: `error`, `ok` or `unset`.
pub fn status_label(span: &SpanRef<'_>) -> &'static str {
    match span.status_code() {
        2 => "error",
        1 => "ok",
        _ => "unset",
    }
}

impl SpanMetrics {
    /// Registers the metrics (unprefixed: dashboards use these names) in `registry`.
    pub fn new(registry: &mut Registry, max_series: usize) -> Self {
        let m = Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            overflowed: Counter::default(),
            seen: Mutex::new(Seen::default()),
            max_series,
            handles: Mutex::new(Handles::default()),
        };
        registry.register(
            "traces",
            "Spans received, by service, operation, kind and status (before tail sampling)",
            m.calls.clone(),
        );
        registry.register(
            "traces_duration_seconds",
            "Span durations, by service, operation and kind (before tail sampling)",
            m.duration.clone(),
        );
        registry.register(
            "traces_span_metrics_overflow",
            "Spans counted under the __overflow__ label because the series limit was reached",
            m.overflowed.clone(),
        );
        m
    }

    /// Maps a (service, operation, kind) to the labels it is counted under, applying the series limit;
    /// true when the limit changed them.
    fn labels(&self, service: &str, operation: &str, kind: &'static str) -> (String, String, bool) {
        let Ok(mut seen) = self.seen.lock() else {
            return (OVERFLOW.into(), OVERFLOW.into(), true);
        };
        let key = (service.to_string(), operation.to_string(), kind);
        if seen.series.contains(&key) {
            return (key.0, key.1, false);
        }
        if seen.series.len() < self.max_series {
            seen.services.insert(key.0.clone());
            seen.series.insert(key.clone());
            return (key.0, key.1, false);
        }
        if seen.services.contains(service) {
            (key.0, OVERFLOW.into(), true)
        } else {
            (OVERFLOW.into(), OVERFLOW.into(), true)
        }
    }

    /// Counts the spans of `batch`: each series' counter and histogram are found once per batch (the
    /// first time a span of it comes), the counter incremented once per series.
    pub fn observe(&self, batch: &SpanBatch) {
        type Series<'a> = (&'a str, &'a str, &'static str, &'static str);
        let mut index: HashMap<Series<'_>, usize, RandomState> = HashMap::default();
        let mut groups: Vec<(Handle, u64)> = Vec::new();
        let Ok(mut handles) = self.handles.lock() else {
            return;
        };
        for span in batch.spans() {
            let series = (
                span.service_name(),
                span.name(),
                kind_label(&span),
                status_label(&span),
            );
            let at = *index.entry(series).or_insert_with(|| {
                groups.push((self.handle(&mut handles, series), 0));
                groups.len() - 1
            });
            if let Some((handle, spans)) = groups.get_mut(at) {
                handle.duration.observe(span.duration_us() as f64 / 1e6);
                *spans += 1;
            }
        }
        for (handle, spans) in groups {
            handle.calls.inc_by(spans);
            if handle.overflowed {
                self.overflowed.inc_by(spans);
            }
        }
    }

    /// The counter and histogram a series is counted in: from `handles` when seen before, else from the
    /// families under the labels the series limit gives it (remembered when those are its own).
    fn handle(
        &self,
        handles: &mut Handles,
        (service, operation, kind, status): (&str, &str, &'static str, &'static str),
    ) -> Handle {
        let cached = handles
            .get(service)
            .and_then(|ops| ops.get(operation))
            .and_then(|list| list.iter().find(|h| h.kind == kind && h.status == status));
        if let Some(handle) = cached {
            return handle.clone();
        }
        let (service_name, operation_name, overflowed) = self.labels(service, operation, kind);
        let handle = Handle {
            kind,
            status,
            overflowed,
            calls: self
                .calls
                .get_or_create(&CallLabels {
                    service_name: service_name.clone(),
                    operation_name: operation_name.clone(),
                    span_kind: kind,
                    status,
                })
                .clone(),
            duration: self
                .duration
                .get_or_create(&DurationLabels {
                    service_name,
                    operation_name,
                    span_kind: kind,
                })
                .clone(),
        };
        if !overflowed {
            handles
                .entry(service.to_string())
                .or_default()
                .entry(operation.to_string())
                .or_default()
                .push(handle.clone());
        }
        handle
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
    use crate::model::{string_attribute, SpanRecord};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    fn rec(service: &str, name: &str, error: bool, duration_ms: u64) -> SpanRecord {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            kind: 2,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + duration_ms * 1_000_000,
            status: error.then(|| Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        SpanRecord::new(resource, Default::default(), span).unwrap()
    }

    fn render(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn counts_calls_and_durations_per_status() {
        let mut registry = Registry::default();
        let m = SpanMetrics::new(&mut registry, 100);
        m.observe(&SpanBatch::from_records(&[
            rec("cart", "GET /cart", false, 3),
            rec("cart", "GET /cart", true, 20),
            rec("cart", "GET /cart", false, 3),
        ]));
        let text = render(&registry);
        assert!(
            text.contains("traces_total{service_name=\"cart\",operation_name=\"GET /cart\",span_kind=\"server\",status=\"unset\"} 2"),
            "{text}"
        );
        assert!(text.contains("status=\"error\"} 1"), "{text}");
        assert!(
            text.contains("traces_duration_seconds_bucket{le=\"0.004\",service_name=\"cart\",operation_name=\"GET /cart\",span_kind=\"server\"} 2")
                || text.contains("traces_duration_seconds_bucket{service_name=\"cart\",operation_name=\"GET /cart\",span_kind=\"server\",le=\"0.004\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn series_past_the_limit_overflow() {
        let mut registry = Registry::default();
        let m = SpanMetrics::new(&mut registry, 2);
        let spans: Vec<_> = (0..50)
            .map(|i| rec("cart", &format!("GET /item/{i}"), false, 1))
            .chain([rec("new-service", "x", false, 1)])
            .collect();
        m.observe(&SpanBatch::from_records(&spans));
        let text = render(&registry);
        assert!(text.contains("operation_name=\"GET /item/0\""), "{text}");
        assert!(!text.contains("GET /item/2\""), "limited: {text}");
        assert!(
            text.contains("service_name=\"cart\",operation_name=\"__overflow__\",span_kind=\"server\",status=\"unset\"} 48"),
            "{text}"
        );
        assert!(
            text.contains("service_name=\"__overflow__\",operation_name=\"__overflow__\""),
            "{text}"
        );
        assert!(
            text.contains("traces_span_metrics_overflow_total 49"),
            "{text}"
        );
    }
}
