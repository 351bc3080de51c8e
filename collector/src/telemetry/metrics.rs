//! Prometheus metrics, rendered in the text exposition format on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Which receiver a span came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Receiver {
    OtlpHttp,
    OtlpGrpc,
    Zipkin,
    /// Jaeger agent UDP, thrift compact (6831).
    JaegerCompact,
    /// Jaeger agent UDP, thrift binary (6832).
    JaegerBinary,
    /// Jaeger collector HTTP, thrift binary (14268).
    JaegerHttp,
    /// Jaeger collector gRPC (14250).
    JaegerGrpc,
}

impl Receiver {
    pub fn name(self) -> &'static str {
        match self {
            Receiver::OtlpHttp => "otlp_http",
            Receiver::OtlpGrpc => "otlp_grpc",
            Receiver::Zipkin => "zipkin",
            Receiver::JaegerCompact => "jaeger_compact",
            Receiver::JaegerBinary => "jaeger_binary",
            Receiver::JaegerHttp => "jaeger_http",
            Receiver::JaegerGrpc => "jaeger_grpc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PacketLabels {
    receiver: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

fn query_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    received: Family<ReceiverLabels, Counter>,
    accepted: Family<ReceiverLabels, Counter>,
    rejected: Family<ReceiverLabels, Counter>,
    refused: Family<ReceiverLabels, Counter>,
    dropped_packets: Family<PacketLabels, Counter>,
    query_seconds: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub store_commits: Counter,
    /// How long a group commit took (the batch and its journal fsync).
    pub store_commit_seconds: Histogram,
    /// Spans per group commit.
    pub store_commit_spans: Histogram,
    /// How long the writer held a group open for submissions due before committing it.
    pub store_commit_wait_seconds: Histogram,
    pub stored_bytes: Gauge,
    pub store_file_bytes: Gauge,
    /// The trace index's sealed runs, and its entries in memory not sealed yet.
    pub store_index_runs: Gauge,
    pub store_index_open_entries: Gauge,
    pub queued_spans: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("meshtrace_collector");
        let m = Self {
            registry: Registry::default(),
            received: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            refused: Family::default(),
            dropped_packets: Family::default(),
            query_seconds: Family::new_with_constructor(query_histogram as fn() -> Histogram),
            store_commits: Counter::default(),
            store_commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            store_commit_spans: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            store_commit_wait_seconds: Histogram::new(exponential_buckets(0.000025, 2.0, 8)),
            stored_bytes: Gauge::default(),
            store_file_bytes: Gauge::default(),
            store_index_runs: Gauge::default(),
            store_index_open_entries: Gauge::default(),
            queued_spans: Gauge::default(),
        };
        registry.register(
            "spans_received",
            "Spans received, valid or not",
            m.received.clone(),
        );
        registry.register(
            "spans_accepted",
            "Spans stored durably and acknowledged",
            m.accepted.clone(),
        );
        registry.register(
            "spans_rejected",
            "Spans rejected as invalid (never retried)",
            m.rejected.clone(),
        );
        registry.register(
            "spans_refused",
            "Valid spans refused for overload or store failure (retryable)",
            m.refused.clone(),
        );
        registry.register(
            "udp_packets_dropped",
            "UDP packets dropped whole, by reason (too_big, malformed, unsupported)",
            m.dropped_packets.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Query API latency",
            m.query_seconds.clone(),
        );
        registry.register(
            "store_commits",
            "Store transactions committed by the writer",
            m.store_commits.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of the writer's group commits, journal fsync included",
            m.store_commit_seconds.clone(),
        );
        registry.register(
            "store_commit_spans",
            "Spans per group commit (every waiting submission joins the next commit)",
            m.store_commit_spans.clone(),
        );
        registry.register(
            "store_commit_wait_seconds",
            "How long the writer held a group commit open for the submissions due while it would run",
            m.store_commit_wait_seconds.clone(),
        );
        registry.register(
            "store_stored_bytes",
            "Logical bytes stored (spans and index keys)",
            m.stored_bytes.clone(),
        );
        registry.register(
            "store_file_bytes",
            "Size of the store file on disk",
            m.store_file_bytes.clone(),
        );
        registry.register(
            "store_index_runs",
            "Sealed runs of the trace index (each probed by its Bloom filter on a lookup by trace id)",
            m.store_index_runs.clone(),
        );
        registry.register(
            "store_index_open_entries",
            "Trace index entries in memory, not sealed into a run yet (read again from the journal's pending keys after a restart)",
            m.store_index_open_entries.clone(),
        );
        registry.register(
            "queue_spans",
            "Spans waiting for the store",
            m.queued_spans.clone(),
        );
        Self {
            registry: root,
            ..m
        }
    }

    /// Where metrics named for dashboards (`traces_*`) register, without a prefix.
    pub fn root_registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Where the collector's own metrics register (prefixed `meshtrace_collector_`).
    pub fn collector_registry(&mut self) -> &mut Registry {
        self.registry
            .sub_registry_with_prefix("meshtrace_collector")
    }

    pub fn received(&self, r: Receiver, n: usize) {
        self.received
            .get_or_create(&ReceiverLabels { receiver: r.name() })
            .inc_by(n as u64);
    }
    pub fn accepted(&self, r: Receiver, n: usize) {
        self.accepted
            .get_or_create(&ReceiverLabels { receiver: r.name() })
            .inc_by(n as u64);
    }
    pub fn rejected(&self, r: Receiver, n: usize) {
        self.rejected
            .get_or_create(&ReceiverLabels { receiver: r.name() })
            .inc_by(n as u64);
    }
    pub fn refused(&self, r: Receiver, n: usize) {
        self.refused
            .get_or_create(&ReceiverLabels { receiver: r.name() })
            .inc_by(n as u64);
    }
    /// A UDP packet dropped before any span was read from it.
    pub fn dropped_packet(&self, r: Receiver, reason: &'static str) {
        self.dropped_packets
            .get_or_create(&PacketLabels {
                receiver: r.name(),
                reason,
            })
            .inc();
    }

    pub fn observe_query(&self, endpoint: &'static str, seconds: f64) {
        self.query_seconds
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
