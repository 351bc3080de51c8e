//! `Pipeline`: the handle receivers submit through.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::analytics::{ServiceGraph, SpanHistory, SpanMetrics};
use crate::ingest::{Ingest, IngestError};
use crate::model::SpanRecord;
use crate::sampling::Adaptive;
use crate::tail_sampling::TailSampler;

/// Everything computed from all spans, before tail sampling.
pub struct Analytics {
    pub span_metrics: SpanMetrics,
    pub span_history: Arc<SpanHistory>,
    pub service_graph: Arc<ServiceGraph>,
    pub adaptive: Option<Arc<Adaptive>>,
}

impl Analytics {
    pub fn observe(&self, records: &[SpanRecord]) {
        let now = Instant::now();
        self.span_metrics.observe(records);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.span_history.observe(records, now_ms);
        self.service_graph.observe(records, now);
        if let Some(adaptive) = &self.adaptive {
            adaptive.observe(records, now);
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    pub ingest: Ingest,
    pub analytics: Arc<Analytics>,
    pub tail: Option<TailSampler>,
}

impl Pipeline {
    /// Observes `records`, then makes them durable (directly, or held durably for a tail-sampling decision).
    /// `Ok` means the spans are acknowledged: nothing acknowledged is lost.
    pub async fn submit(&self, records: Vec<SpanRecord>) -> Result<(), IngestError> {
        if records.is_empty() {
            return Ok(());
        }
        self.analytics.observe(&records);
        match &self.tail {
            Some(tail) => tail.submit(records).await,
            None => self.ingest.submit(records).await,
        }
    }
}
