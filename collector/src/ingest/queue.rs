//! `Ingest`: the handle receivers submit spans through. Memory is bounded twice: by the number of spans
//! waiting (a semaphore) and by the number of submissions waiting (the channel).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::IngestError;
use crate::model::SpanRecord;
use crate::store::{Prepared, Store};

#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Spans waiting for the store, at most.
    pub max_spans: usize,
    /// Submissions waiting for the store, at most.
    pub max_batches: usize,
}

/// One submission: its spans, its share of the span budget, and where to say whether it is durable.
pub(super) struct Submission {
    pub records: Vec<SpanRecord>,
    /// The records encoded for the store (when there is one), by the submitting task.
    pub prepared: Option<Prepared>,
    /// How many spans were submitted (`records` is left empty when only the store needs them).
    pub spans: usize,
    pub _permit: OwnedSemaphorePermit,
    pub done: oneshot::Sender<Result<(), IngestError>>,
}

#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Submission>,
    budget: Arc<Semaphore>,
    max_spans: usize,
    /// Whether submissions are encoded for the store before they are queued.
    prepare: bool,
    /// Whether the writer needs the records themselves (the export queue does).
    keep_records: bool,
}

impl Ingest {
    pub(super) fn new(
        limits: QueueLimits,
        prepare: bool,
        keep_records: bool,
    ) -> (Self, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(limits.max_batches.max(1));
        let max_spans = limits.max_spans.max(1);
        (
            Self {
                tx,
                budget: Arc::new(Semaphore::new(max_spans)),
                max_spans,
                prepare,
                keep_records,
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

    /// Queues `records` and waits until they are durable. Refuses at once when the queue is full.
    pub async fn submit(&self, records: Vec<SpanRecord>) -> Result<(), IngestError> {
        if records.is_empty() {
            return Ok(());
        }
        // A submission larger than the whole budget takes the whole budget (it would never fit otherwise).
        let want = u32::try_from(records.len().min(self.max_spans)).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(want)
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => IngestError::ShuttingDown,
                tokio::sync::TryAcquireError::NoPermits => IngestError::Overloaded,
            })?;
        // Encoding for the store happens here, on the receivers' threads, so that the one writer thread
        // only inserts and commits.
        let prepared = self.prepare.then(|| Store::prepare(&records));
        let spans = records.len();
        // Dropped here rather than on the writer thread when only the store needed them.
        let records = if self.keep_records || !self.prepare {
            records
        } else {
            Vec::new()
        };
        let (done, wait) = oneshot::channel();
        self.tx
            .try_send(Submission {
                records,
                prepared,
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

/// How many spans wait for the store.
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
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn records(n: usize) -> Vec<SpanRecord> {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![1; 8],
            ..Default::default()
        };
        (0..n)
            .map(|_| SpanRecord::new(Default::default(), Default::default(), span.clone()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn refuses_when_the_span_budget_is_used_up() {
        let (ingest, mut rx) = Ingest::new(
            QueueLimits {
                max_spans: 3,
                max_batches: 10,
            },
            false,
            true,
        );
        let first = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.submit(records(3)).await }
        });
        // The writer side: take the submission but do not answer yet.
        let pending = rx.recv().await.unwrap();
        assert_eq!(ingest.depth().queued_spans(), 3);
        assert!(matches!(
            ingest.submit(records(1)).await,
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
        let (ingest, rx) = Ingest::new(
            QueueLimits {
                max_spans: 100,
                max_batches: 1,
            },
            true,
            false,
        );
        let waiting = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.submit(records(1)).await }
        });
        while ingest.depth().queued_spans() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            ingest.submit(records(1)).await,
            Err(IngestError::Overloaded)
        ));
        drop(rx);
        assert!(
            matches!(waiting.await.unwrap(), Err(IngestError::ShuttingDown)),
            "never acknowledged when not stored"
        );
        assert!(matches!(
            ingest.submit(records(1)).await,
            Err(IngestError::ShuttingDown)
        ));
    }
}
