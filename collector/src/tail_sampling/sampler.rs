//! The tail sampler: a buffer of traces waiting for their decision, the decision cache, and the loop that
//! decides due traces and passes the sampled ones on to the writer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::config::TailSamplingConfig;
use super::pending::{self, HeldSpan, PendingSet};
use super::policy::Policy;
use crate::ingest::{Ingest, IngestError, Work};
use crate::model::{SpanBatch, TraceId};

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
    spans: Vec<HeldSpan>,
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
        pending_set: &PendingSet,
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
                ingest,
                buffer: Mutex::new(Buffer::default()),
                metrics,
            }),
        };
        let left = pending_set.load().map_err(|e| e.to_string())?;
        if !left.is_empty() {
            tracing::info!(
                traces = left.len(),
                "tail sampling: spans left undecided by the last run are held again"
            );
        }
        if let Ok(mut buffer) = sampler.inner.buffer.lock() {
            for (trace, spans) in left {
                buffer.order.push_back((now, trace));
                buffer.traces.insert(trace, Held { spans });
            }
        }
        Ok(sampler)
    }

    /// Late spans follow their trace's decision; the others are held durably in the pending set. Both go
    /// to the writer as one submission, part of its next group commit. `Ok` means acknowledged.
    pub async fn submit(&self, batch: &SpanBatch) -> Result<(), IngestError> {
        let mut sampled = Vec::new();
        let mut hold = Vec::new();
        {
            let buffer = self
                .inner
                .buffer
                .lock()
                .map_err(|_| IngestError::ShuttingDown)?;
            for (i, span) in batch.spans().enumerate() {
                match buffer.decided.get(&span.trace_id()) {
                    Some(true) => sampled.push(i as u32),
                    Some(false) => self.late("dropped"),
                    None => hold.push((pending::key(&span), batch.encode(&[i as u32]).into())),
                }
            }
        }
        for _ in &sampled {
            self.late("sampled");
        }
        if sampled.is_empty() && hold.is_empty() {
            return Ok(());
        }
        let mut work = if sampled.is_empty() {
            Work::default()
        } else {
            self.inner.ingest.work(&batch.select(&sampled))
        };
        work.hold = hold.clone();
        self.inner
            .ingest
            .submit_work(work, sampled.len() + hold.len())
            .await?;
        let now = Instant::now();
        let mut buffer = self
            .inner
            .buffer
            .lock()
            .map_err(|_| IngestError::ShuttingDown)?;
        for held in hold {
            let Some(trace) = held.0.get(..16).and_then(|t| TraceId::try_from(t).ok()) else {
                continue;
            };
            match buffer.traces.get_mut(&trace) {
                Some(h) => h.spans.push(held),
                None => {
                    buffer.order.push_back((now, trace));
                    buffer.traces.insert(trace, Held { spans: vec![held] });
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
    fn take_due(&self, now: Instant) -> Vec<(TraceId, Vec<HeldSpan>)> {
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
                due.push((trace, held.spans));
            }
        }
        self.inner
            .metrics
            .held
            .set(i64::try_from(buffer.traces.len()).unwrap_or(i64::MAX));
        due
    }

    /// The decision for one trace: a cached one (spans that came back after a decision), else the policies.
    fn decide(&self, trace: &TraceId, spans: &SpanBatch, now: Instant) -> bool {
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
                    .find(|(_, p)| p.samples(spans, now))
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

    /// One round: decide what is due, then hand the sampled spans to the writer together with the
    /// release of every decided span from the pending set (one batch: a sampled span leaves the pending
    /// set exactly when it is stored), retrying while the writer refuses or until `stop` fires.
    pub async fn decide_due(&self, now: Instant, stop: &CancellationToken) {
        let due = self.take_due(now);
        if due.is_empty() {
            return;
        }
        let mut sampled: Vec<u8> = Vec::new();
        let mut release = Vec::new();
        for (trace, spans) in due {
            let bytes = concat(spans.iter().map(|(_, b)| b));
            let trace_spans = SpanBatch::parse(bytes.clone().into()).unwrap_or_default();
            if self.decide(&trace, &trace_spans, now) {
                sampled.extend_from_slice(&bytes);
            }
            release.extend(spans.into_iter().map(|(key, _)| key));
        }
        let sampled = SpanBatch::parse(sampled.into()).unwrap_or_default();
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut work = self.inner.ingest.work(&sampled);
            work.release = release.clone();
            match self.inner.ingest.submit_work(work, sampled.len()).await {
                Ok(()) => break,
                Err(e) if !e.is_retryable() => {
                    // Still in the pending set: decided again at the next start.
                    tracing::error!(error = %e, spans = sampled.len(), "tail sampling: decided spans not stored");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, spans = sampled.len(), "tail sampling: writer refused sampled spans; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return, // still in the pending set: decided again at the next start
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
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

/// Encoded `TracesData`s concatenated: one `TracesData` holding all their spans.
fn concat<'a>(pieces: impl Iterator<Item = &'a Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(piece);
    }
    out
}
