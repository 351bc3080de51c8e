//! `Pipeline`: the handle receivers submit through.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::analytics::{ServiceGraph, SpanHistory, SpanMetrics};
use crate::ingest::{Ingest, IngestError};
use crate::model::SpanBatch;
use crate::sampling::Adaptive;
use crate::tail_sampling::TailSampler;

/// Batches waiting for the analytics thread, at most; past that a submission observes its own spans.
const ANALYTICS_QUEUE: usize = 256;

/// While batches keep coming, the analytics thread looks at its queue this often instead of being woken
/// by each one.
const ANALYTICS_POLL: Duration = Duration::from_millis(5);

/// Everything computed from all spans, before tail sampling.
pub struct Analytics {
    pub span_metrics: SpanMetrics,
    pub span_history: Arc<SpanHistory>,
    pub service_graph: Arc<ServiceGraph>,
    pub adaptive: Option<Arc<Adaptive>>,
}

impl Analytics {
    pub fn observe(&self, batch: &SpanBatch) {
        let now = Instant::now();
        self.span_metrics.observe(batch);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.span_history.observe(batch, now_ms);
        self.service_graph.observe(batch, now);
        if let Some(adaptive) = &self.adaptive {
            adaptive.observe(batch, now);
        }
    }
}

/// Feeds the analytics from a thread of their own, so that a receiver's acknowledgement never waits for
/// them. When that thread falls behind, submissions observe their spans themselves: the analytics see
/// every span (they count true rates), and the load slows the senders instead of growing a queue.
#[derive(Clone)]
pub struct AnalyticsFeed {
    analytics: Arc<Analytics>,
    tx: SyncSender<Arc<SpanBatch>>,
}

impl AnalyticsFeed {
    /// Starts the analytics thread; it ends when the last feed is dropped.
    pub fn start(analytics: Arc<Analytics>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Arc<SpanBatch>>(ANALYTICS_QUEUE);
        let worker = analytics.clone();
        std::thread::Builder::new()
            .name("analytics".into())
            .spawn(move || run(&worker, rx))?;
        Ok(Self { analytics, tx })
    }

    pub fn observe(&self, batch: Arc<SpanBatch>) {
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                self.analytics.observe(&batch)
            }
        }
    }
}

/// Waits for a batch (its sender wakes the thread), then, as long as batches keep coming, sleeps
/// `ANALYTICS_POLL` and takes all that came meanwhile: a sender wakes the thread only when it found the
/// queue empty, not once per batch (a wake-up is a system call for the sender and two context switches,
/// dear on a busy machine). The counts lag by at most `ANALYTICS_POLL`.
fn run(analytics: &Analytics, rx: Receiver<Arc<SpanBatch>>) {
    // No acknowledgement waits for the analytics (a full queue moves their work onto the submitters).
    crate::background::lower_this_thread();
    while let Ok(batch) = rx.recv() {
        analytics.observe(&batch);
        loop {
            std::thread::sleep(ANALYTICS_POLL);
            let came = rx.try_iter().map(|batch| analytics.observe(&batch)).count();
            if came == 0 {
                break;
            }
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    pub ingest: Ingest,
    pub analytics: AnalyticsFeed,
    pub tail: Option<TailSampler>,
}

impl Pipeline {
    /// Observes `batch`, then makes it durable (directly, or held durably for a tail-sampling decision).
    /// `Ok` means the spans are acknowledged: nothing acknowledged is lost.
    pub async fn submit(&self, batch: SpanBatch) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = Arc::new(batch);
        self.analytics.observe(batch.clone());
        match &self.tail {
            Some(tail) => tail.submit(&batch).await,
            None => self.ingest.submit(&batch).await,
        }
    }
}
