//! `Ingest`: the handle receivers and tail sampling submit through. Memory is bounded twice: by the
//! number of spans waiting (a semaphore) and by the number of submissions waiting (the channel).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::IngestError;
use crate::model::SpanBatch;
use crate::store::{Prepared, Store};
use crate::tail_sampling::{HeldSpan, PendingKey};

#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Spans waiting for the writer, at most.
    pub max_spans: usize,
    /// Submissions waiting for the writer, at most.
    pub max_batches: usize,
}

/// What one submission asks the writer to make durable, prepared by the submitting task so that the
/// writer only adds it to its batch.
#[derive(Default)]
pub struct Work {
    /// Trace parts for the store.
    pub store: Option<Prepared>,
    /// The spans for the exporters, as an encoded `TracesData`.
    pub export: Option<Bytes>,
    /// Spans the store and the exporters get.
    pub spans: usize,
    /// Tail sampling: spans to hold until their trace is decided.
    pub hold: Vec<HeldSpan>,
    /// Tail sampling: decided spans to forget.
    pub release: Vec<PendingKey>,
}

impl Work {
    /// About how many bytes writing this work adds to the journal.
    pub fn bytes(&self) -> u64 {
        let store = self.store.as_ref().map_or(0, Prepared::bytes);
        let export = self.export.as_ref().map_or(0, |b| b.len() as u64);
        let hold: usize = self
            .hold
            .iter()
            .map(|(key, span)| key.len() + span.len())
            .sum();
        store + export + hold as u64
    }
}

/// One submission: its work, its share of the span budget, and where to say whether it is durable.
pub(super) struct Submission {
    pub work: Work,
    /// Spans it holds of the budget.
    pub spans: usize,
    pub _permit: OwnedSemaphorePermit,
    pub done: oneshot::Sender<Result<(), IngestError>>,
}

#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Submission>,
    budget: Arc<Semaphore>,
    max_spans: usize,
    /// The store spans go to, if any.
    store: Option<Arc<Store>>,
    /// Whether spans go to the exporters' queue.
    export: bool,
}

impl Ingest {
    pub(super) fn new(
        limits: QueueLimits,
        store: Option<Arc<Store>>,
        export: bool,
    ) -> (Self, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(limits.max_batches.max(1));
        let max_spans = limits.max_spans.max(1);
        (
            Self {
                tx,
                budget: Arc::new(Semaphore::new(max_spans)),
                max_spans,
                store,
                export,
            },
            rx,
        )
    }

    /// A read-only view of the queue depth (it does not keep the writer alive as a handle would).
    pub fn depth(&self) -> QueueDepth {
        QueueDepth {
            budget: self.budget.clone(),
            max_spans: self.max_spans,
        }
    }

    /// The work that stores and exports `batch`: trace parts encoded here, on the caller's thread.
    pub fn work(&self, batch: &SpanBatch) -> Work {
        Work {
            store: self.store.as_ref().map(|s| s.prepare(batch)),
            export: self.export.then(|| batch.encode_all()),
            spans: batch.len(),
            ..Default::default()
        }
    }

    /// Makes `batch` durable (store and exporters) and waits until it is. Refuses at once when the queue
    /// is full.
    pub async fn submit(&self, batch: &SpanBatch) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        let permit = self.reserve(batch.len())?;
        let work = self.work(batch);
        self.send(permit, work).await
    }

    /// Submits prepared work holding `spans` of the budget and waits until it is durable.
    pub async fn submit_work(&self, work: Work, spans: usize) -> Result<(), IngestError> {
        let permit = self.reserve(spans)?;
        self.send(permit, work).await
    }

    fn reserve(&self, spans: usize) -> Result<(OwnedSemaphorePermit, usize), IngestError> {
        // A submission larger than the whole budget takes the whole budget (it would never fit otherwise).
        let want = spans.min(self.max_spans);
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(u32::try_from(want).unwrap_or(u32::MAX))
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => IngestError::ShuttingDown,
                tokio::sync::TryAcquireError::NoPermits => IngestError::Overloaded,
            })?;
        Ok((permit, want))
    }

    async fn send(
        &self,
        (permit, spans): (OwnedSemaphorePermit, usize),
        work: Work,
    ) -> Result<(), IngestError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .try_send(Submission {
                work,
                spans,
                _permit: permit,
                done,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IngestError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
            })?;
        wait.await.unwrap_or(Err(IngestError::ShuttingDown))
    }
}

/// How many spans wait for the writer.
#[derive(Clone)]
pub struct QueueDepth {
    budget: Arc<Semaphore>,
    max_spans: usize,
}

impl QueueDepth {
    pub fn queued_spans(&self) -> usize {
        self.max_spans
            .saturating_sub(self.budget.available_permits())
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
    use crate::model::SpanRecord;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn batch(n: u8) -> SpanBatch {
        let records: Vec<SpanRecord> = (1..=n)
            .map(|i| {
                let span = Span {
                    trace_id: vec![1; 16],
                    span_id: vec![i; 8],
                    ..Default::default()
                };
                SpanRecord::new(Default::default(), Default::default(), span).unwrap()
            })
            .collect();
        SpanBatch::from_records(&records)
    }

    #[tokio::test]
    async fn refuses_when_the_span_budget_is_used_up() {
        let (ingest, mut rx) = Ingest::new(
            QueueLimits {
                max_spans: 3,
                max_batches: 10,
            },
            None,
            true,
        );
        let first = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.submit(&batch(3)).await }
        });
        // The writer side: take the submission but do not answer yet.
        let pending = rx.recv().await.unwrap();
        assert_eq!(ingest.depth().queued_spans(), 3);
        assert!(pending.work.export.is_some() && pending.work.store.is_none());
        assert!(matches!(
            ingest.submit(&batch(1)).await,
            Err(IngestError::Overloaded)
        ));
        let Submission {
            done,
            _permit: permit,
            ..
        } = pending;
        drop(permit);
        done.send(Ok(())).ok();
        assert!(first.await.unwrap().is_ok());
        assert_eq!(
            ingest.depth().queued_spans(),
            0,
            "budget returned once answered"
        );
    }

    #[tokio::test]
    async fn refuses_when_the_request_queue_is_full_and_reports_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let (ingest, rx) = Ingest::new(
            QueueLimits {
                max_spans: 100,
                max_batches: 1,
            },
            Some(store),
            false,
        );
        let waiting = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.submit(&batch(1)).await }
        });
        while ingest.depth().queued_spans() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            ingest.submit(&batch(1)).await,
            Err(IngestError::Overloaded)
        ));
        drop(rx);
        assert!(
            matches!(waiting.await.unwrap(), Err(IngestError::ShuttingDown)),
            "never acknowledged when not stored"
        );
        assert!(matches!(
            ingest.submit(&batch(1)).await,
            Err(IngestError::ShuttingDown)
        ));
    }
}
