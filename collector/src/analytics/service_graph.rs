//! The service graph: edges between services, from CLIENT->SERVER span pairs and from parent/child spans
//! of different services.
//!
//! The two spans of a pair usually come from different sidecars in different batches, so each span waits
//! in memory, keyed by `(trace id, span id)` as a possible parent and by `(trace id, parent id)` as a child,
//! until its partner arrives. The wait is bounded in time (`wait`) and in entries (`max_entries`, oldest
//! evicted first); a span whose partner does not arrive in time is counted as expired, not as an edge.
//!
//! Every span waits, so the waiting room is the analytics thread's largest cost: it is a queue in arrival
//! order (entries leave only from its front, when their wait is over or room is needed) and an index from
//! a 64-bit fingerprint of the key to the entry's place in the queue, verified against the entry's key.
//! A map of the keys to their nodes cost a tenth of the collector's CPU at the benchmark's rate: its
//! 88-byte slots, spread over a table of about 10 MiB, were each missed in the cache on insert, lookup
//! and removal.
//!
//! Each matched pair counts one request on `traces_service_graph_request_total{client, server}` (and
//! `..._failed_total` when either span is an error), observes the parent's duration on
//! `traces_service_graph_request_client_seconds` and the child's on `..._server_seconds`, and adds one
//! call (and one error when either span is an error) to a per-minute edge table (by the minute the child
//! span started) that `/api/dependencies` reads.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::span_metrics::DURATION_BUCKETS;
use crate::model::{SpanBatch, SpanId, SpanRef, TraceId};

#[derive(Debug, Clone, Copy)]
pub struct ServiceGraphLimits {
    /// How long a span waits for its partner.
    pub wait: Duration,
    /// Spans waiting, at most (oldest evicted first).
    pub max_entries: usize,
    /// Distinct edges tracked, at most (further edges are counted under `__overflow__`).
    pub max_edges: usize,
    /// How long per-minute edge counts are kept for `/api/dependencies`.
    pub keep: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EdgeLabels {
    client: String,
    server: String,
}

/// One side of a possible pair.
#[derive(Debug, Clone)]
struct Side {
    service: Arc<str>,
    kind: i32,
    error: bool,
    duration_s: f64,
    /// When the span started (ms since the epoch): a pair counts in the minute its child started.
    start_ms: u64,
}

impl Side {
    fn of(span: &SpanRef<'_>, service: Arc<str>) -> Self {
        Side {
            service,
            kind: span.kind(),
            error: span.is_error(),
            duration_s: span.duration_us() as f64 / 1e6,
            start_ms: span.start_us() / 1000,
        }
    }
}

#[derive(Default)]
struct Node {
    parent: Option<Side>,
    children: Vec<Side>,
}

/// An edge with its call and error counts over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub calls: u64,
    /// Calls where the parent or the child span is an error.
    pub errors: u64,
}

/// Calls and errors of one edge in one minute.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    calls: u64,
    errors: u64,
}

/// A span waiting for its partner (see the module's notes).
struct Waiting {
    key: (TraceId, SpanId),
    since: Instant,
    node: Node,
}

#[derive(Default)]
struct State {
    /// Waiting spans in the order they came; `first` numbers the front one, the next ones follow.
    queue: VecDeque<Waiting>,
    first: u64,
    /// A waiting span's place (its number) by its key's fingerprint (`fingerprint`).
    index: HashMap<u64, u64, RandomState>,
    /// The fingerprints' seed.
    seed: RandomState,
    /// minute -> (parent, child) -> calls and errors.
    minutes: BTreeMap<u64, HashMap<(String, String), Counts>>,
    edges: std::collections::HashSet<(String, String)>,
}

/// The place in `queue` (whose front is numbered `first`) of the entry numbered `seq`, if it holds `key`.
fn place(queue: &VecDeque<Waiting>, first: u64, seq: u64, key: &(TraceId, SpanId)) -> Option<usize> {
    let at = usize::try_from(seq.checked_sub(first)?).ok()?;
    (queue.get(at)?.key == *key).then_some(at)
}

impl State {
    fn fingerprint(&self, key: &(TraceId, SpanId)) -> u64 {
        self.seed.hash_one(key)
    }

    /// The waiting entry of `key`, added (waiting since `now`) when there is none. One probe of the
    /// index whichever way it goes: the index is large (every span waits) and a probe misses the cache.
    fn entry(&mut self, key: (TraceId, SpanId), now: Instant) -> Option<&mut Node> {
        let fingerprint = self.fingerprint(&key);
        let next = self.first + self.queue.len() as u64;
        let found = match self.index.entry(fingerprint) {
            Entry::Occupied(mut slot) => {
                let seq = *slot.get();
                let found = place(&self.queue, self.first, seq, &key);
                if found.is_none() {
                    // A fingerprint shared with another waiting key (about one in 2^64 per pair) points at
                    // the newer one from now on; the older one waits unreachable until it leaves.
                    slot.insert(next);
                }
                found
            }
            Entry::Vacant(slot) => {
                slot.insert(next);
                None
            }
        };
        if let Some(at) = found {
            return self.queue.get_mut(at).map(|w| &mut w.node);
        }
        self.queue.push_back(Waiting {
            key,
            since: now,
            node: Node::default(),
        });
        self.queue.back_mut().map(|w| &mut w.node)
    }

    /// Takes the front entry out of the queue and the index.
    fn pop(&mut self) -> Option<Waiting> {
        let waiting = self.queue.pop_front()?;
        let fingerprint = self.fingerprint(&waiting.key);
        if let Entry::Occupied(slot) = self.index.entry(fingerprint) {
            if *slot.get() == self.first {
                slot.remove();
            }
        }
        self.first += 1;
        Some(waiting)
    }
}

pub struct ServiceGraph {
    limits: ServiceGraphLimits,
    state: Mutex<State>,
    requests: Family<EdgeLabels, Counter>,
    failed: Family<EdgeLabels, Counter>,
    client_seconds: Family<EdgeLabels, Histogram, fn() -> Histogram>,
    server_seconds: Family<EdgeLabels, Histogram, fn() -> Histogram>,
    expired: Counter,
    /// Edges are counted from this time (ms since the epoch) on; older windows come from the store.
    pub started_ms: u64,
}

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

const OVERFLOW: &str = "__overflow__";

fn is_client(kind: i32) -> bool {
    kind == 3 || kind == 4
}

impl ServiceGraph {
    pub fn new(registry: &mut Registry, limits: ServiceGraphLimits, started_ms: u64) -> Self {
        let g = Self {
            limits,
            state: Mutex::new(State::default()),
            requests: Family::default(),
            failed: Family::default(),
            client_seconds: Family::new_with_constructor(histogram as fn() -> Histogram),
            server_seconds: Family::new_with_constructor(histogram as fn() -> Histogram),
            expired: Counter::default(),
            started_ms,
        };
        registry.register(
            "traces_service_graph_request",
            "Requests between two services (client -> server)",
            g.requests.clone(),
        );
        registry.register(
            "traces_service_graph_request_failed",
            "Failed requests between two services",
            g.failed.clone(),
        );
        registry.register(
            "traces_service_graph_request_client_seconds",
            "Request duration seen by the calling side",
            g.client_seconds.clone(),
        );
        registry.register(
            "traces_service_graph_request_server_seconds",
            "Request duration seen by the called side",
            g.server_seconds.clone(),
        );
        registry.register(
            "traces_service_graph_unpaired_spans",
            "Spans whose partner did not arrive within the wait",
            g.expired.clone(),
        );
        g
    }

    /// Feeds spans (in any order, in any batch) and counts every pair completed.
    pub fn observe(&self, batch: &SpanBatch, now: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.expire(&mut state, now);
        // Service names shared by the batch's spans (a batch has a few).
        let mut services: Vec<Arc<str>> = Vec::new();
        for r in batch.spans() {
            let name = r.service_name();
            let service = match services.iter().find(|s| &***s == name) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<str> = Arc::from(name);
                    services.push(s.clone());
                    s
                }
            };
            let side = Side::of(&r, service);
            // As a possible parent of spans already waiting.
            let Some(node) = state.entry((r.trace_id(), r.span_id()), now) else {
                continue;
            };
            let waiting = std::mem::take(&mut node.children);
            if node.parent.is_none() {
                node.parent = Some(side.clone());
            }
            for child in &waiting {
                self.pair(&mut state, &side, child, now_ms);
            }
            // As a child of a parent already seen, or waiting for it.
            let Some(parent_id) = r.parent_span_id() else {
                continue;
            };
            let Some(node) = state.entry((r.trace_id(), parent_id), now) else {
                continue;
            };
            match node.parent.clone() {
                Some(parent) => self.pair(&mut state, &parent, &side, now_ms),
                None => node.children.push(side),
            }
        }
        self.evict(&mut state);
    }

    fn pair(&self, state: &mut State, parent: &Side, child: &Side, now_ms: u64) {
        if parent.service == child.service {
            return;
        }
        // A server span under a client span is the classic pair; any other cross-service parent/child is
        // an edge too (an uninstrumented client, a message consumer).
        let mut edge = (parent.service.to_string(), child.service.to_string());
        if !state.edges.contains(&edge) {
            if state.edges.len() >= self.limits.max_edges {
                edge = (OVERFLOW.into(), OVERFLOW.into());
            } else {
                state.edges.insert(edge.clone());
            }
        }
        let labels = EdgeLabels {
            client: edge.0.clone(),
            server: edge.1.clone(),
        };
        self.requests.get_or_create(&labels).inc();
        let failed = parent.error || child.error;
        if failed {
            self.failed.get_or_create(&labels).inc();
        }
        if is_client(parent.kind) {
            self.client_seconds
                .get_or_create(&labels)
                .observe(parent.duration_s);
        }
        self.server_seconds
            .get_or_create(&labels)
            .observe(child.duration_s);
        // The minute the call happened (the child's start; never later than now), so that the live table
        // and the store answer the same question for a window; calls older than what is kept count only
        // in the metrics above.
        let minute = child.start_ms.min(now_ms) / 60_000;
        let keep_minutes = self.limits.keep.as_secs() / 60 + 1;
        if minute + keep_minutes < now_ms / 60_000 {
            return;
        }
        let counts = state
            .minutes
            .entry(minute)
            .or_default()
            .entry(edge)
            .or_default();
        counts.calls += 1;
        counts.errors += u64::from(failed);
        while state.minutes.len() as u64 > keep_minutes {
            state.minutes.pop_first();
        }
    }

    fn expire(&self, state: &mut State, now: Instant) {
        while state
            .queue
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.since) >= self.limits.wait)
        {
            self.drop_front(state);
        }
    }

    fn evict(&self, state: &mut State) {
        while state.queue.len() > self.limits.max_entries {
            self.drop_front(state);
        }
    }

    fn drop_front(&self, state: &mut State) {
        if let Some(waiting) = state.pop() {
            // A parent that has been matched or that stood alone is no loss; waiting children are.
            self.expired.inc_by(waiting.node.children.len() as u64);
        }
    }

    /// Spans waiting for a partner.
    pub fn waiting(&self) -> usize {
        self.state.lock().map(|s| s.queue.len()).unwrap_or(0)
    }

    /// Edge call and error counts for calls (child spans) that started in the minutes `[start_ms, end_ms]` touch.
    pub fn edges(&self, start_ms: u64, end_ms: u64) -> Vec<Edge> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut total: BTreeMap<(String, String), Counts> = BTreeMap::new();
        for (_, edges) in state.minutes.range(start_ms / 60_000..=end_ms / 60_000) {
            for (edge, counts) in edges {
                let sum = total.entry(edge.clone()).or_default();
                sum.calls += counts.calls;
                sum.errors += counts.errors;
            }
        }
        total
            .into_iter()
            .map(|((parent, child), c)| Edge {
                parent,
                child,
                calls: c.calls,
                errors: c.errors,
            })
            .collect()
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
    use std::time::{SystemTime, UNIX_EPOCH};

    fn rec(service: &str, id: u8, parent: Option<u8>, kind: i32, error: bool) -> SpanRecord {
        rec_at(service, id, parent, kind, error, SystemTime::now())
    }

    fn rec_at(
        service: &str,
        id: u8,
        parent: Option<u8>,
        kind: i32,
        error: bool,
        at: SystemTime,
    ) -> SpanRecord {
        let now_ns = at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let resource = Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![9; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            kind,
            start_time_unix_nano: now_ns,
            end_time_unix_nano: now_ns + 10_000_000,
            status: error.then(|| Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        SpanRecord::new(resource, Default::default(), span).unwrap()
    }

    fn edge(parent: &str, child: &str, calls: u64, errors: u64) -> Edge {
        Edge {
            parent: parent.into(),
            child: child.into(),
            calls,
            errors,
        }
    }

    fn limits() -> ServiceGraphLimits {
        ServiceGraphLimits {
            wait: Duration::from_secs(10),
            max_entries: 1000,
            max_edges: 100,
            keep: Duration::from_secs(3600),
        }
    }

    fn render(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn pairs_client_and_server_across_batches_in_any_order() {
        let mut registry = Registry::default();
        let g = ServiceGraph::new(&mut registry, limits(), 0);
        let now = Instant::now();
        // Server first (its sidecar flushed first), then the client, in separate batches.
        g.observe(
            &SpanBatch::from_records(&[rec("cart", 2, Some(1), 2, true)]),
            now,
        );
        g.observe(
            &SpanBatch::from_records(&[rec("front", 1, Some(7), 3, false)]),
            now,
        );
        // Same-service parent/child: no edge.
        g.observe(
            &SpanBatch::from_records(&[rec("front", 7, None, 2, false)]),
            now,
        );
        assert_eq!(
            g.edges(0, u64::MAX / 2),
            vec![edge("front", "cart", 1, 1)],
            "the server half was an error, so the call counts as failed"
        );
        let text = render(&registry);
        assert!(
            text.contains("traces_service_graph_request_total{client=\"front\",server=\"cart\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "traces_service_graph_request_failed_total{client=\"front\",server=\"cart\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("traces_service_graph_request_client_seconds_count{client=\"front\",server=\"cart\"} 1"), "{text}");
    }

    #[test]
    fn parent_child_without_client_span_is_an_edge_and_unmatched_spans_expire() {
        let mut registry = Registry::default();
        let g = ServiceGraph::new(&mut registry, limits(), 0);
        let now = Instant::now();
        g.observe(
            &SpanBatch::from_records(&[rec("gateway", 1, None, 2, false)]),
            now,
        );
        g.observe(
            &SpanBatch::from_records(&[rec("users", 2, Some(1), 2, false)]),
            now,
        );
        assert_eq!(g.edges(0, u64::MAX / 2).len(), 1);
        g.observe(
            &SpanBatch::from_records(&[rec("orphan", 5, Some(4), 2, false)]),
            now,
        );
        assert!(g.waiting() > 0);
        g.observe(&SpanBatch::from_records(&[]), now + Duration::from_secs(11));
        assert_eq!(g.waiting(), 0, "bounded wait");
        assert!(
            render(&registry).contains("traces_service_graph_unpaired_spans_total 1"),
            "the orphan's wait expired"
        );
    }

    #[test]
    fn a_span_behind_others_in_the_queue_is_found_after_they_leave() {
        let mut registry = Registry::default();
        let g = ServiceGraph::new(&mut registry, limits(), 0);
        let t0 = Instant::now();
        let others: Vec<SpanRecord> = (1..=20).map(|i| rec("a", i, None, 2, false)).collect();
        g.observe(&SpanBatch::from_records(&others), t0);
        g.observe(
            &SpanBatch::from_records(&[rec("front", 200, None, 3, false)]),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(g.waiting(), 21);
        g.observe(&SpanBatch::from_records(&[]), t0 + Duration::from_secs(11));
        assert_eq!(g.waiting(), 1, "the first twenty waited their 10 s");
        g.observe(
            &SpanBatch::from_records(&[rec("cart", 201, Some(200), 2, false)]),
            t0 + Duration::from_secs(12),
        );
        assert_eq!(g.edges(0, u64::MAX / 2), vec![edge("front", "cart", 1, 0)]);
        // A parent id seen again after its entry left waits anew, and pairs.
        g.observe(&SpanBatch::from_records(&[]), t0 + Duration::from_secs(30));
        assert_eq!(g.waiting(), 0);
        g.observe(
            &SpanBatch::from_records(&[rec("users", 202, Some(200), 2, false)]),
            t0 + Duration::from_secs(31),
        );
        g.observe(
            &SpanBatch::from_records(&[rec("front", 200, None, 3, false)]),
            t0 + Duration::from_secs(32),
        );
        assert_eq!(g.edges(0, u64::MAX / 2).len(), 2, "front -> users too");
        assert!(
            render(&registry).contains("traces_service_graph_unpaired_spans_total 0"),
            "nothing that waited was unpaired"
        );
    }

    #[test]
    fn entries_are_bounded() {
        let mut registry = Registry::default();
        let g = ServiceGraph::new(
            &mut registry,
            ServiceGraphLimits {
                max_entries: 10,
                ..limits()
            },
            0,
        );
        let now = Instant::now();
        for i in 1..100u8 {
            g.observe(
                &SpanBatch::from_records(&[rec("a", i, Some(i + 101), 2, false)]),
                now,
            );
        }
        assert!(g.waiting() <= 10);
    }

    #[test]
    fn calls_count_in_the_minute_they_happened_and_older_than_kept_only_in_metrics() {
        let mut registry = Registry::default();
        let g = ServiceGraph::new(&mut registry, limits(), 0);
        let now = Instant::now();
        let an_hour_ago = SystemTime::now() - Duration::from_secs(30 * 60);
        g.observe(
            &SpanBatch::from_records(&[
                rec_at("front", 1, None, 3, false, an_hour_ago),
                rec_at("cart", 2, Some(1), 2, false, an_hour_ago),
            ]),
            now,
        );
        let minute_ms = an_hour_ago.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(
            g.edges(minute_ms, minute_ms).len(),
            1,
            "counted at the call's own minute"
        );
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            g.edges(now_ms - 60_000, now_ms).is_empty(),
            "not at the minute it arrived"
        );
        // Past the kept hour (limits().keep): in the metrics, not in the table.
        let old = SystemTime::now() - Duration::from_secs(3 * 3600);
        g.observe(
            &SpanBatch::from_records(&[
                rec_at("front", 5, None, 3, false, old),
                rec_at("users", 6, Some(5), 2, false, old),
            ]),
            now,
        );
        assert!(g.edges(0, u64::MAX / 2).iter().all(|e| e.child != "users"));
        assert!(render(&registry)
            .contains("traces_service_graph_request_total{client=\"front\",server=\"users\"} 1"));
    }
}
