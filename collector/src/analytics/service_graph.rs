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
//! The index is a set-associative table whose slots free themselves when their entry leaves the queue
//! (`Index`): an insert or a lookup reads one cache line, a removal none. A map of the keys to their
//! nodes cost a tenth of the collector's CPU at the benchmark's rate (its 88-byte slots, spread over a
//! table of about 10 MiB, each missed in the cache on insert, lookup and removal); a map of
//! fingerprints, probed on every removal as well, about a twentieth.
//!
//! Each matched pair counts one request on `traces_service_graph_request_total{client, server}` (and
//! `..._failed_total` when either span is an error), observes the parent's duration on
//! `traces_service_graph_request_client_seconds` and the child's on `..._server_seconds`, and adds one
//! call (and one error when either span is an error) to a per-minute edge table (by the minute the child
//! span started) that `/api/dependencies` reads.

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

/// One slot of the `Index`: a fingerprint and the number of the entry it was last given to, plus one (a
/// zeroed slot is free).
#[derive(Clone, Copy, Default)]
struct Slot {
    fingerprint: u64,
    number: u64,
}

/// Slots per bucket: four 16-byte slots fill one 64-byte cache line.
const WAYS: usize = 4;

/// A bucket of the `Index`, aligned so that it is one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([Slot; WAYS]);

/// Where waiting entries are in the queue, by their key's fingerprint: a set-associative table, `WAYS`
/// slots to a bucket, at least twice as many slots as entries may wait. A slot whose number is before
/// the queue's front is free, so an entry leaves the queue without touching the table: a lookup or an
/// insert reads one cache line, and removal reads none (a hash map cost a probe that missed the cache
/// for each of the three).
struct Index {
    buckets: Vec<Bucket>,
}

impl Index {
    fn new(max_entries: usize) -> Self {
        let buckets = (max_entries.saturating_mul(2) / WAYS)
            .max(1)
            .next_power_of_two();
        Index {
            buckets: vec![Bucket::default(); buckets],
        }
    }

    /// The bucket of `fingerprint` (its low bits: the fingerprints are seeded hashes).
    fn at(&self, fingerprint: u64) -> usize {
        fingerprint as usize & (self.buckets.len() - 1)
    }

    /// The number of the live entry last given `fingerprint`, if any (`first` numbers the queue's front).
    fn find(&self, fingerprint: u64, first: u64) -> Option<u64> {
        self.buckets
            .get(self.at(fingerprint))?
            .0
            .iter()
            .find(|s| s.fingerprint == fingerprint && s.number > first)
            .map(|s| s.number - 1)
    }

    /// Gives `fingerprint` to entry `number`: in its own slot if it has one, else in the slot of the
    /// oldest entry. That is a free slot when there is one (a free slot's number is before the queue's
    /// front, a live one's after it); else a live entry loses its slot and waits unreachable until it
    /// leaves the queue (rare with twice the slots needed, and counted as unpaired like any other).
    fn insert(&mut self, fingerprint: u64, number: u64) {
        let which = self.at(fingerprint);
        let Some(Bucket(bucket)) = self.buckets.get_mut(which) else {
            return;
        };
        let at = bucket
            .iter()
            .position(|s| s.fingerprint == fingerprint)
            .or_else(|| {
                let oldest = bucket.iter().enumerate().min_by_key(|(_, s)| s.number);
                oldest.map(|(i, _)| i)
            });
        if let Some(slot) = at.and_then(|i| bucket.get_mut(i)) {
            *slot = Slot {
                fingerprint,
                number: number + 1,
            };
        }
    }
}

struct State {
    /// Waiting spans in the order they came; `first` numbers the front one, the next ones follow.
    queue: VecDeque<Waiting>,
    first: u64,
    /// A waiting span's place (its number) by its key's fingerprint (`fingerprint`).
    index: Index,
    /// The fingerprints' seed.
    seed: RandomState,
    /// minute -> (parent, child) -> calls and errors.
    minutes: BTreeMap<u64, HashMap<(String, String), Counts>>,
    edges: std::collections::HashSet<(String, String)>,
}

impl State {
    fn new(max_entries: usize) -> Self {
        State {
            queue: VecDeque::new(),
            first: 0,
            index: Index::new(max_entries),
            seed: RandomState::default(),
            minutes: BTreeMap::new(),
            edges: Default::default(),
        }
    }

    fn fingerprint(&self, key: &(TraceId, SpanId)) -> u64 {
        self.seed.hash_one(key)
    }

    /// The waiting entry of `key`, added (waiting since `now`) when there is none.
    fn entry(&mut self, key: (TraceId, SpanId), now: Instant) -> Option<&mut Node> {
        let fingerprint = self.fingerprint(&key);
        let found = self
            .index
            .find(fingerprint, self.first)
            .and_then(|number| usize::try_from(number.checked_sub(self.first)?).ok())
            .filter(|&at| self.queue.get(at).is_some_and(|w| w.key == key));
        if let Some(at) = found {
            return self.queue.get_mut(at).map(|w| &mut w.node);
        }
        // A fingerprint shared with another waiting key (about one in 2^64 per pair) points at the newer
        // one from now on; the older one waits unreachable until it leaves.
        let number = self.first + self.queue.len() as u64;
        self.index.insert(fingerprint, number);
        self.queue.push_back(Waiting {
            key,
            since: now,
            node: Node::default(),
        });
        self.queue.back_mut().map(|w| &mut w.node)
    }

    /// Takes the front entry out of the queue (its slot in the index is free from then on).
    fn pop(&mut self) -> Option<Waiting> {
        let waiting = self.queue.pop_front()?;
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
            state: Mutex::new(State::new(limits.max_entries)),
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
    fn the_index_frees_slots_behind_the_front_and_evicts_the_oldest_when_full() {
        let mut index = Index::new(8); // 4 buckets of 4 slots
        let buckets = index.buckets.len() as u64;
        assert_eq!(buckets, 4);
        // Six fingerprints of one bucket, entries 0 to 5, the front at 0: the fifth and sixth take the
        // slots of entries 0 and 1, the oldest.
        let fp = |i: u64| 1 + i * buckets;
        for i in 0..6 {
            index.insert(fp(i), i);
        }
        assert_eq!(index.find(fp(0), 0), None);
        assert_eq!(index.find(fp(1), 0), None);
        for i in 2..6 {
            assert_eq!(index.find(fp(i), 0), Some(i));
        }
        // Entries 2 and 3 have left the queue: their slots are free, and taken before any live one.
        assert_eq!(index.find(fp(2), 4), None);
        index.insert(fp(6), 6);
        index.insert(fp(7), 7);
        for i in 4..8 {
            assert_eq!(index.find(fp(i), 4), Some(i));
        }
        // A fingerprint given again moves to the newer entry, in its own slot.
        index.insert(fp(5), 8);
        assert_eq!(index.find(fp(5), 4), Some(8));
        assert_eq!(index.find(fp(4), 4), Some(4));
        // Other buckets are untouched.
        assert_eq!(index.find(2, 0), None);
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
