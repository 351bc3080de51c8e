//! The tail sampler: a buffer of traces waiting for their decision, the decision cache, and the loop that
//! decides due traces and passes the sampled ones on to the writer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::config::TailSamplingConfig;
use super::pending::PendingStore;
use super::policy::Policy;
use crate::ingest::{Ingest, IngestError};
use crate::model::{SpanRecord, TraceId};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

/// Decisions on `/metrics` (prefixed `meshtrace_collector_tail_sampling_`).
#[derive(Clone, Default)]
pub struct TailMetrics {
    decisions: Family<DecisionLabels, Counter>,
    by_policy: Family<PolicyLabels, Counter>,
    late: Family<DecisionLabels, Counter>,
    early: Counter,
    held: Gauge,
}

impl TailMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "tail_sampling_decisions",
            "Traces decided, by decision (sampled, dropped)",
            m.decisions.clone(),
        );
        registry.register(
            "tail_sampling_sampled_by_policy",
            "Traces sampled, by the first policy that sampled them",
            m.by_policy.clone(),
        );
        registry.register(
            "tail_sampling_late_spans",
            "Spans that arrived after their trace's decision and followed it",
            m.late.clone(),
        );
        registry.register(
            "tail_sampling_early_decisions",
            "Traces decided before their wait because too many traces were held",
            m.early.clone(),
        );
        registry.register(
            "tail_sampling_traces_held",
            "Traces waiting for a decision",
            m.held.clone(),
        );
        m
    }
}

struct Held {
    records: Vec<SpanRecord>,
}

#[derive(Default)]
struct Buffer {
    traces: HashMap<TraceId, Held>,
    order: VecDeque<(Instant, TraceId)>,
    decided: HashMap<TraceId, bool>,
    decided_order: VecDeque<TraceId>,
}

struct Inner {
    policies: Vec<(String, Policy)>,
    wait: Duration,
    max_traces: usize,
    cache_size: usize,
    pending: Arc<PendingStore>,
    ingest: Ingest,
    buffer: Mutex<Buffer>,
    metrics: TailMetrics,
}

#[derive(Clone)]
pub struct TailSampler {
    inner: Arc<Inner>,
}

impl TailSampler {
    /// Compiles the policies and loads the spans a previous run left undecided.
    pub fn new(
        config: &TailSamplingConfig,
        pending: Arc<PendingStore>,
        ingest: Ingest,
        metrics: TailMetrics,
        now: Instant,
    ) -> Result<Self, String> {
        let policies = config
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = p.name.clone().unwrap_or_else(|| format!("policy-{i}"));
                Policy::compile(&p.policy)
                    .map(|compiled| (name.clone(), compiled))
                    .map_err(|e| format!("tail-sampling policy {name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sampler = Self {
            inner: Arc::new(Inner {
                policies,
                wait: config.decision_wait,
                max_traces: config.max_traces.max(1),
                cache_size: config.decision_cache.max(1),
                pending: pending.clone(),
                ingest,
                buffer: Mutex::new(Buffer::default()),
                metrics,
            }),
        };
        let left = pending.load().map_err(|e| e.to_string())?;
        if !left.is_empty() {
            tracing::info!(
                traces = left.len(),
                "tail sampling: spans left undecided by the last run are held again"
            );
        }
        if let Ok(mut buffer) = sampler.inner.buffer.lock() {
            for (trace, records) in left {
                buffer.order.push_back((now, trace));
                buffer.traces.insert(trace, Held { records });
            }
        }
        Ok(sampler)
    }

    /// Late spans follow their trace's decision; the others are made durable in the pending file and held.
    /// `Ok` means acknowledged.
    pub async fn submit(&self, records: Vec<SpanRecord>) -> Result<(), IngestError> {
        let mut sampled = Vec::new();
        let mut hold = Vec::new();
        {
            let buffer = self
                .inner
                .buffer
                .lock()
                .map_err(|_| IngestError::ShuttingDown)?;
            for r in records {
                match buffer.decided.get(&r.trace_id) {
                    Some(true) => sampled.push(r),
                    Some(false) => self.late("dropped"),
                    None => hold.push(r),
                }
            }
        }
        for _ in &sampled {
            self.late("sampled");
        }
        if !sampled.is_empty() {
            self.inner.ingest.submit(sampled).await?;
        }
        if hold.is_empty() {
            return Ok(());
        }
        let pending = self.inner.pending.clone();
        let to_write = hold.clone();
        tokio::task::spawn_blocking(move || pending.put(&to_write))
            .await
            .map_err(|e| IngestError::Store(e.to_string()))?
            .map_err(|e| IngestError::Store(e.to_string()))?;
        let now = Instant::now();
        let mut buffer = self
            .inner
            .buffer
            .lock()
            .map_err(|_| IngestError::ShuttingDown)?;
        for r in hold {
            let trace = r.trace_id;
            match buffer.traces.get_mut(&trace) {
                Some(held) => held.records.push(r),
                None => {
                    buffer.order.push_back((now, trace));
                    buffer.traces.insert(trace, Held { records: vec![r] });
                }
            }
        }
        self.inner
            .metrics
            .held
            .set(i64::try_from(buffer.traces.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    fn late(&self, decision: &'static str) {
        self.inner
            .metrics
            .late
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    /// Takes the traces due at `now` (their wait is over, or they are the oldest past the bound).
    fn take_due(&self, now: Instant) -> Vec<(TraceId, Vec<SpanRecord>)> {
        let Ok(mut buffer) = self.inner.buffer.lock() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        while let Some((at, trace)) = buffer.order.front().copied() {
            let over = buffer.traces.len() > self.inner.max_traces;
            if now.saturating_duration_since(at) < self.inner.wait && !over {
                break;
            }
            if over && now.saturating_duration_since(at) < self.inner.wait {
                self.inner.metrics.early.inc();
            }
            buffer.order.pop_front();
            if let Some(held) = buffer.traces.remove(&trace) {
                due.push((trace, held.records));
            }
        }
        self.inner
            .metrics
            .held
            .set(i64::try_from(buffer.traces.len()).unwrap_or(i64::MAX));
        due
    }

    /// The decision for one trace: a cached one (spans that came back after a decision), else the policies.
    fn decide(&self, trace: &TraceId, records: &[SpanRecord], now: Instant) -> bool {
        let cached = self
            .inner
            .buffer
            .lock()
            .ok()
            .and_then(|b| b.decided.get(trace).copied());
        let decision = match cached {
            Some(d) => d,
            None => {
                let by = self
                    .inner
                    .policies
                    .iter()
                    .find(|(_, p)| p.samples(records, now))
                    .map(|(name, _)| name.clone());
                if let Some(policy) = &by {
                    self.inner
                        .metrics
                        .by_policy
                        .get_or_create(&PolicyLabels {
                            policy: policy.clone(),
                        })
                        .inc();
                }
                by.is_some()
            }
        };
        self.inner
            .metrics
            .decisions
            .get_or_create(&DecisionLabels {
                decision: if decision { "sampled" } else { "dropped" },
            })
            .inc();
        if let Ok(mut buffer) = self.inner.buffer.lock() {
            if buffer.decided.insert(*trace, decision).is_none() {
                buffer.decided_order.push_back(*trace);
            }
            while buffer.decided_order.len() > self.inner.cache_size {
                if let Some(old) = buffer.decided_order.pop_front() {
                    buffer.decided.remove(&old);
                }
            }
        }
        decision
    }

    /// One round: decide what is due, hand the sampled spans to the writer (retrying until they are durable
    /// or `stop` fires), then forget the decided spans in the pending file.
    pub async fn decide_due(&self, now: Instant, stop: &CancellationToken) {
        let due = self.take_due(now);
        if due.is_empty() {
            return;
        }
        let mut sampled = Vec::new();
        let mut decided = Vec::new();
        for (trace, records) in due {
            if self.decide(&trace, &records, now) {
                sampled.extend(records.iter().cloned());
            }
            decided.extend(records);
        }
        let mut backoff = Duration::from_millis(100);
        while !sampled.is_empty() {
            match self.inner.ingest.submit(sampled.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, spans = sampled.len(), "tail sampling: writer refused sampled spans; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return, // still in the pending file: decided again at the next start
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let pending = self.inner.pending.clone();
        match tokio::task::spawn_blocking(move || pending.remove(&decided)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "tail sampling: pending spans not removed (they will be decided again)")
            }
            Err(e) => tracing::error!(error = %e, "tail sampling: pending removal task failed"),
        }
    }

    /// Runs the decision loop until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let tick = (self.inner.wait / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            self.decide_due(Instant::now(), &stop).await;
        }
    }

    /// Distinct traces held (for tests and logs).
    pub fn held(&self) -> usize {
        self.inner
            .buffer
            .lock()
            .map(|b| b.traces.len())
            .unwrap_or(0)
    }

    #[doc(hidden)]
    pub fn decided_traces(&self) -> HashSet<TraceId> {
        self.inner
            .buffer
            .lock()
            .map(|b| b.decided.keys().copied().collect())
            .unwrap_or_default()
    }
}
