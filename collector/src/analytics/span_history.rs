//! A bounded in-memory history of the span metrics, so that the collector answers "request rate, error
//! rate and latency percentiles of this service over the last hour" itself, without a Prometheus (Jaeger
//! UI's Monitor tab and the viewer's service page read it through `/api/metrics/*`).
//!
//! Per (service, operation, span kind) and per wall-clock minute of arrival: calls, errors and a latency
//! histogram. Only minutes with traffic are kept, and only the last `retention` of them. The number of
//! series is bounded: past `max_series`, a new operation counts under `__overflow__` (a new service under
//! `__overflow__` too), as the Prometheus span metrics do.
//!
//! Queries follow Jaeger's Prometheus-backed metrics reader: a point at time `t` covers `(t - ratePer,
//! t]`; calls and errors are counted over it (a minute that overlaps the window partly counts in
//! proportion, its spans taken as spread evenly over the minute, the current minute over its elapsed
//! part); the call rate is per second, the error rate errors over calls, a latency quantile is
//! interpolated inside the histogram bucket that holds it (as Prometheus' `histogram_quantile`), in
//! milliseconds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use foldhash::fast::RandomState;

use crate::model::SpanBatch;

use super::span_metrics::OVERFLOW;

/// Upper bounds of the latency buckets, in milliseconds (then +Inf): roughly 1.5x apart, 0.5 ms to 30 s,
/// finer than the Prometheus histogram's so that p95/p99 come out usable.
pub const LATENCY_BOUNDS_MS: [f64; 28] = [
    0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0,
    300.0, 500.0, 750.0, 1_000.0, 1_500.0, 2_000.0, 3_000.0, 5_000.0, 7_500.0, 10_000.0, 15_000.0,
    30_000.0,
];
const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;
const MINUTE_MS: u64 = 60_000;
/// Span kinds by OTLP number (0 unspecified .. 5 consumer).
const KINDS: usize = 6;

/// One minute of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Minute {
    /// Unix minute (ms / 60,000).
    minute: u64,
    calls: u32,
    errors: u32,
    buckets: [u32; BUCKETS],
}

impl Minute {
    fn new(minute: u64) -> Self {
        Self {
            minute,
            calls: 0,
            errors: 0,
            buckets: [0; BUCKETS],
        }
    }
}

type Series = VecDeque<Minute>;

/// Per service: per operation, one series per span kind.
type Operations = HashMap<String, [Option<Series>; KINDS], RandomState>;

#[derive(Default)]
struct Inner {
    services: HashMap<String, Operations, RandomState>,
    series: usize,
}

/// The history (see the module documentation).
pub struct SpanHistory {
    inner: Mutex<Inner>,
    retention_minutes: u64,
    max_series: usize,
}

/// Settings of the history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// How far back minutes are kept.
    pub retention: Duration,
    /// Distinct (service, operation, kind) series; past it `__overflow__`.
    pub max_series: usize,
}

/// What a query measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// Calls per second.
    CallRate,
    /// Errors over calls (0 to 1).
    ErrorRate,
    /// The latency below which this fraction (0 to 1) of calls fall, in ms.
    Latency(f64),
}

/// Which series a query reads and how it groups them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub services: Vec<String>,
    /// OTLP span kinds.
    pub kinds: Vec<i32>,
    /// One result per (service, operation) instead of per service.
    pub by_operation: bool,
}

/// The time points of a query (all Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub end_ms: u64,
    pub lookback_ms: u64,
    pub step_ms: u64,
    pub rate_ms: u64,
}

impl Window {
    /// The point times, oldest first: end - lookback, then every step, up to end.
    pub fn points(&self) -> impl Iterator<Item = u64> + '_ {
        let start = self.end_ms.saturating_sub(self.lookback_ms);
        (0..)
            .map(move |i: u64| start.saturating_add(i.saturating_mul(self.step_ms.max(1))))
            .take_while(move |t| *t <= self.end_ms)
    }
}

/// One result series: its labels and a value per point (`None`: not defined, e.g. a latency without
/// calls, which proto3 JSON writes as `"NaN"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub service: String,
    pub operation: Option<String>,
    pub points: Vec<(u64, Option<f64>)>,
}

/// Calls, errors and histogram of a group, per minute, summed over its series.
#[derive(Default)]
struct Group {
    minutes: BTreeMap<u64, (u64, u64, [u64; BUCKETS])>,
}

impl Group {
    fn add(&mut self, series: &Series) {
        for m in series {
            let e = self.minutes.entry(m.minute).or_insert((0, 0, [0; BUCKETS]));
            e.0 += u64::from(m.calls);
            e.1 += u64::from(m.errors);
            for (sum, n) in e.2.iter_mut().zip(m.buckets) {
                *sum += u64::from(n);
            }
        }
    }

    /// Calls, errors and histogram over `(t - rate, t]`, each minute weighted by its overlap with the
    /// window.
    fn over(&self, t: u64, rate: u64, now_ms: u64) -> (f64, f64, [f64; BUCKETS]) {
        let from = t.saturating_sub(rate);
        let mut out = (0.0, 0.0, [0.0; BUCKETS]);
        let first = from / MINUTE_MS;
        for (minute, (calls, errors, buckets)) in self.minutes.range(first..=t / MINUTE_MS) {
            let start = minute * MINUTE_MS;
            // The current minute holds only what arrived so far.
            let end = (start + MINUTE_MS).min(now_ms.max(start + 1));
            let overlap = end.min(t).saturating_sub(start.max(from));
            if overlap == 0 {
                continue;
            }
            let w = overlap as f64 / (end - start) as f64;
            out.0 += *calls as f64 * w;
            out.1 += *errors as f64 * w;
            for (sum, n) in out.2.iter_mut().zip(buckets) {
                *sum += *n as f64 * w;
            }
        }
        out
    }
}

/// `histogram_quantile` over the buckets (ms): linear interpolation inside the bucket that holds the
/// rank; the +Inf bucket answers the highest finite bound.
pub fn quantile(q: f64, buckets: &[f64; BUCKETS]) -> Option<f64> {
    let total: f64 = buckets.iter().sum();
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let mut below = 0.0;
    for (i, count) in buckets.iter().enumerate() {
        if below + count >= rank && *count > 0.0 {
            let Some(upper) = LATENCY_BOUNDS_MS.get(i) else {
                return LATENCY_BOUNDS_MS.last().copied();
            };
            let lower = i
                .checked_sub(1)
                .and_then(|j| LATENCY_BOUNDS_MS.get(j))
                .copied()
                .unwrap_or(0.0);
            return Some(lower + (upper - lower) * ((rank - below) / count));
        }
        below += count;
    }
    LATENCY_BOUNDS_MS.last().copied()
}

fn bucket_of(duration_ms: f64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|b| *b < duration_ms)
}

impl SpanHistory {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            retention_minutes: limits.retention.as_secs().div_ceil(60).max(1),
            max_series: limits.max_series,
        }
    }

    /// Counts the spans of `batch`, received at `now_ms`.
    pub fn observe(&self, batch: &SpanBatch, now_ms: u64) {
        let minute = now_ms / MINUTE_MS;
        let oldest = minute.saturating_sub(self.retention_minutes);
        // The batch's spans tallied per series first (in the order series first appear, so the limit
        // admits the same ones), then each series found once per batch instead of once per span.
        type Key<'a> = (&'a str, &'a str, usize);
        let mut index: HashMap<Key<'_>, usize, RandomState> = HashMap::default();
        let mut tallies: Vec<(Key<'_>, Minute)> = Vec::new();
        for r in batch.spans() {
            let kind = usize::try_from(r.kind()).unwrap_or(0).min(KINDS - 1);
            let key = (r.service_name(), r.name(), kind);
            let at = *index.entry(key).or_insert_with(|| {
                tallies.push((key, Minute::new(minute)));
                tallies.len() - 1
            });
            let Some((_, m)) = tallies.get_mut(at) else {
                continue;
            };
            m.calls = m.calls.saturating_add(1);
            m.errors = m.errors.saturating_add(u32::from(r.is_error()));
            let ms = r.end_ns().saturating_sub(r.start_ns()) as f64 / 1e6;
            if let Some(b) = m.buckets.get_mut(bucket_of(ms)) {
                *b = b.saturating_add(1);
            }
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for ((service, operation, kind), tally) in tallies {
            let Some(series) = inner.series_for(service, operation, kind, self.max_series) else {
                continue;
            };
            while series.front().is_some_and(|m| m.minute < oldest) {
                series.pop_front();
            }
            if series.back().is_none_or(|m| m.minute != minute) {
                series.push_back(Minute::new(minute));
            }
            let Some(m) = series.back_mut() else { continue };
            m.calls = m.calls.saturating_add(tally.calls);
            m.errors = m.errors.saturating_add(tally.errors);
            for (b, t) in m.buckets.iter_mut().zip(tally.buckets) {
                *b = b.saturating_add(t);
            }
        }
    }

    /// The answer of one query (see the module documentation), each group with at least one minute
    /// of history; sorted by service, then operation.
    pub fn query(
        &self,
        selector: &Selector,
        measure: Measure,
        window: Window,
        now_ms: u64,
    ) -> Vec<Answer> {
        let mut groups: BTreeMap<(String, Option<String>), Group> = BTreeMap::new();
        if let Ok(inner) = self.inner.lock() {
            let oldest = (now_ms / MINUTE_MS).saturating_sub(self.retention_minutes);
            for service in &selector.services {
                let Some(ops) = inner.services.get(service) else {
                    continue;
                };
                for (op, kinds) in ops {
                    for kind in &selector.kinds {
                        let Some(Some(series)) =
                            usize::try_from(*kind).ok().and_then(|k| kinds.get(k))
                        else {
                            continue;
                        };
                        if series.back().is_none_or(|m| m.minute < oldest) {
                            continue;
                        }
                        let key = (service.clone(), selector.by_operation.then(|| op.clone()));
                        groups.entry(key).or_default().add(series);
                    }
                }
            }
        }
        let rate_s = window.rate_ms.max(1) as f64 / 1e3;
        groups
            .into_iter()
            .map(|((service, operation), group)| Answer {
                service,
                operation,
                points: window
                    .points()
                    .map(|t| {
                        let (calls, errors, buckets) = group.over(t, window.rate_ms, now_ms);
                        let value = match measure {
                            Measure::CallRate => Some(calls / rate_s),
                            Measure::ErrorRate => (calls > 0.0).then(|| errors / calls),
                            Measure::Latency(q) => quantile(q, &buckets),
                        };
                        (t, value)
                    })
                    .collect(),
            })
            .collect()
    }
}

impl Inner {
    /// The series of (service, operation, kind), created if the limit allows, else its overflow series.
    fn series_for(
        &mut self,
        service: &str,
        operation: &str,
        kind: usize,
        max: usize,
    ) -> Option<&mut Series> {
        let exists = self
            .services
            .get(service)
            .and_then(|ops| ops.get(operation))
            .and_then(|k| k.get(kind))
            .is_some_and(Option::is_some);
        if exists {
            // The common case, without the two key allocations `entry` takes.
            return self
                .services
                .get_mut(service)?
                .get_mut(operation)?
                .get_mut(kind)?
                .as_mut();
        }
        let (service, operation) = if self.series < max {
            (service, operation)
        } else if self.services.contains_key(service) {
            (service, OVERFLOW)
        } else {
            (OVERFLOW, OVERFLOW)
        };
        let slot = self
            .services
            .entry(service.to_string())
            .or_default()
            .entry(operation.to_string())
            .or_default()
            .get_mut(kind)?;
        if slot.is_none() {
            self.series += 1;
        }
        Some(slot.get_or_insert_with(VecDeque::new))
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

    const T: u64 = 1_700_000_040_000; // a minute boundary (ms)

    fn observe(h: &SpanHistory, records: &[SpanRecord], now_ms: u64) {
        h.observe(&SpanBatch::from_records(records), now_ms);
    }

    fn rec(service: &str, name: &str, kind: i32, ms: u64, error: bool) -> SpanRecord {
        SpanRecord::new(
            Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            },
            Default::default(),
            Span {
                trace_id: vec![1; 16],
                span_id: vec![1; 8],
                name: name.into(),
                kind,
                start_time_unix_nano: 0,
                end_time_unix_nano: ms * 1_000_000,
                status: error.then(|| Status {
                    code: 2,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn history() -> SpanHistory {
        SpanHistory::new(HistoryLimits {
            retention: Duration::from_secs(2 * 3_600),
            max_series: 100,
        })
    }

    fn one(services: &[&str], by_operation: bool) -> Selector {
        Selector {
            services: services.iter().map(|s| s.to_string()).collect(),
            kinds: vec![2],
            by_operation,
        }
    }

    #[test]
    fn rates_come_from_the_minutes_in_the_window() {
        let h = history();
        // Minute 0: 60 calls, 6 errors; minute 1: 120 calls, none failed.
        let batch: Vec<_> = (0..60)
            .map(|i| rec("cart", "GET /cart", 2, 10, i % 10 == 0))
            .collect();
        observe(&h, &batch, T + 5_000);
        let batch: Vec<_> = (0..120)
            .map(|_| rec("cart", "GET /cart", 2, 10, false))
            .collect();
        observe(&h, &batch, T + 65_000);
        let w = Window {
            end_ms: T + 120_000,
            lookback_ms: 60_000,
            step_ms: 60_000,
            rate_ms: 60_000,
        };
        let now = T + 120_000;
        let calls = h.query(&one(&["cart"], false), Measure::CallRate, w, now);
        assert_eq!(
            calls[0].points,
            vec![(T + 60_000, Some(1.0)), (T + 120_000, Some(2.0))],
            "60 then 120 calls per minute"
        );
        let errors = h.query(&one(&["cart"], false), Measure::ErrorRate, w, now);
        assert_eq!(
            errors[0].points,
            vec![(T + 60_000, Some(0.1)), (T + 120_000, Some(0.0))]
        );
        // A window straddling both minutes takes half of each.
        let half = Window {
            end_ms: T + 90_000,
            lookback_ms: 0,
            ..w
        };
        let calls = h.query(&one(&["cart"], false), Measure::CallRate, half, now);
        assert_eq!(calls[0].points, vec![(T + 90_000, Some(1.5))]);
        // Before any traffic the rate is 0, the error rate undefined.
        let early = Window {
            end_ms: T,
            lookback_ms: 0,
            ..w
        };
        assert_eq!(
            h.query(&one(&["cart"], false), Measure::CallRate, early, now)[0].points,
            vec![(T, Some(0.0))]
        );
        assert_eq!(
            h.query(&one(&["cart"], false), Measure::ErrorRate, early, now)[0].points,
            vec![(T, None)]
        );
    }

    #[test]
    fn latency_quantiles_interpolate_inside_buckets() {
        let h = history();
        // 90 fast calls (4 ms: bucket 3-5 ms) and 10 slow ones (400 ms: bucket 300-500 ms).
        let batch: Vec<_> = (0..100)
            .map(|i| rec("cart", "GET /cart", 2, if i < 90 { 4 } else { 400 }, false))
            .collect();
        observe(&h, &batch, T + 1_000);
        let w = Window {
            end_ms: T + 60_000,
            lookback_ms: 0,
            step_ms: 60_000,
            rate_ms: 60_000,
        };
        let at = |q: f64| {
            h.query(&one(&["cart"], false), Measure::Latency(q), w, T + 60_000)[0].points[0].1
        };
        assert_eq!(
            at(0.5),
            Some(3.0 + 2.0 * (50.0 / 90.0)),
            "p50 inside 3-5 ms"
        );
        assert_eq!(
            at(0.95),
            Some(300.0 + 200.0 * 0.5),
            "p95 halfway through 300-500 ms"
        );
        assert_eq!(at(1.0), Some(500.0));
        let mut slowest = [0.0; BUCKETS];
        slowest[BUCKETS - 1] = 3.0;
        assert_eq!(
            quantile(0.5, &slowest),
            Some(30_000.0),
            "+Inf answers the highest bound"
        );
        assert_eq!(quantile(0.5, &[0.0; BUCKETS]), None, "no calls, no latency");
    }

    #[test]
    fn groups_by_service_or_operation_and_by_kind() {
        let h = history();
        observe(
            &h,
            &[
                rec("cart", "GET /cart", 2, 1, false),
                rec("cart", "POST /cart", 2, 1, false),
                rec("cart", "call db", 3, 1, false),
                rec("front", "GET /", 2, 1, false),
            ],
            T + 1_000,
        );
        let w = Window {
            end_ms: T + 60_000,
            lookback_ms: 0,
            step_ms: 60_000,
            rate_ms: 60_000,
        };
        let per_op = h.query(&one(&["cart"], true), Measure::CallRate, w, T + 60_000);
        let ops: Vec<_> = per_op
            .iter()
            .map(|a| a.operation.as_deref().unwrap())
            .collect();
        assert_eq!(ops, ["GET /cart", "POST /cart"], "server kind only");
        let both = h.query(
            &one(&["cart", "front"], false),
            Measure::CallRate,
            w,
            T + 60_000,
        );
        let rates: Vec<_> = both
            .iter()
            .map(|a| (a.service.as_str(), a.points[0].1))
            .collect();
        assert_eq!(
            rates,
            [("cart", Some(2.0 / 60.0)), ("front", Some(1.0 / 60.0))]
        );
        let clients = Selector {
            kinds: vec![3],
            ..one(&["cart"], false)
        };
        assert_eq!(
            h.query(&clients, Measure::CallRate, w, T + 60_000)[0].points[0].1,
            Some(1.0 / 60.0)
        );
        assert!(h
            .query(&one(&["nobody"], false), Measure::CallRate, w, T)
            .is_empty());
    }

    #[test]
    fn history_is_bounded_in_time_and_series() {
        let h = SpanHistory::new(HistoryLimits {
            retention: Duration::from_secs(600),
            max_series: 2,
        });
        observe(&h, &[rec("cart", "a", 2, 1, false)], T);
        observe(
            &h,
            &[
                rec("cart", "b", 2, 1, false),
                rec("cart", "c", 2, 1, false),
                rec("new", "x", 2, 1, false),
            ],
            T,
        );
        let w = Window {
            end_ms: T + 60_000,
            lookback_ms: 0,
            step_ms: 60_000,
            rate_ms: 60_000,
        };
        let ops: Vec<_> = h
            .query(&one(&["cart"], true), Measure::CallRate, w, T + 60_000)
            .into_iter()
            .map(|a| a.operation.unwrap())
            .collect();
        assert_eq!(
            ops,
            ["__overflow__", "a", "b"],
            "the third operation overflows"
        );
        assert_eq!(
            h.query(
                &one(&["__overflow__"], true),
                Measure::CallRate,
                w,
                T + 60_000
            )
            .len(),
            1,
            "a new service too"
        );
        assert!(h
            .query(&one(&["new"], false), Measure::CallRate, w, T + 60_000)
            .is_empty());
        // Twenty minutes later the old minutes are gone.
        observe(&h, &[rec("cart", "a", 2, 1, false)], T + 20 * 60_000);
        let later = Window {
            end_ms: T + 60_000,
            ..w
        };
        assert_eq!(
            h.query(
                &one(&["cart"], true),
                Measure::CallRate,
                later,
                T + 20 * 60_000
            )
            .iter()
            .find(|a| a.operation.as_deref() == Some("a"))
            .map(|a| a.points[0].1),
            Some(Some(0.0)),
            "minute T was dropped from series a"
        );
    }
}
