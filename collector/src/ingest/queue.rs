//! `Ingest`: the handle receivers and tail sampling submit through, and the queue the writer takes its
//! groups from. Memory is bounded twice: by the number of spans waiting (a semaphore) and by the number
//! of submissions waiting (the queue).
//!
//! The queue also keeps the pace of arrivals, so the writer can size its groups from the load
//! (`Gatherer::next_group`): when submissions come often enough that more are due before the group's
//! fsync would end, it holds the group open a while, and one fsync covers them too. An fsync costs about
//! the same CPU whatever it writes.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

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

/// What the writer is doing, so that a sender wakes it only when it waits for that sender.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Committing or answering: it looks at the queue when it is done.
    Busy,
    /// Waiting for any submission.
    Idle,
    /// Holding a group open for submissions due soon: woken only when this many spans are queued (the
    /// group is full).
    Gathering { full_at: usize },
}

/// How often submissions arrive: the moving average of the time between two, measured by the writer each
/// time it takes a group (each new measure weighs an eighth).
#[derive(Default)]
struct Pace {
    arrivals: u64,
    measured: Option<(Instant, u64)>,
    between_ns: Option<u64>,
}

impl Pace {
    /// Takes a measure now: the arrivals since the last one, over the time since.
    fn measure(&mut self, now: Instant) {
        if let Some((then, arrivals)) = self.measured {
            let n = self.arrivals - arrivals;
            if n > 0 {
                let ns = u64::try_from(now.duration_since(then).as_nanos() / u128::from(n))
                    .unwrap_or(u64::MAX);
                self.between_ns = Some(match self.between_ns {
                    Some(avg) => super::moving_average(avg, ns),
                    None => ns,
                });
            }
        }
        self.measured = Some((now, self.arrivals));
    }

    /// Whether another submission is due within `wait`.
    fn another_due_within(&self, wait: Duration) -> bool {
        self.between_ns
            .is_some_and(|ns| Duration::from_nanos(ns) < wait)
    }
}

struct State {
    queue: VecDeque<Submission>,
    queued_spans: usize,
    max_batches: usize,
    pace: Pace,
    /// Live `Ingest` handles; none left and nothing queued ends the writer.
    handles: usize,
    /// The writer went away: every submission is refused.
    closed: bool,
    writer: Writer,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds consistent counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side's share of the queue: counts the live handles.
struct Handle(Arc<Shared>);

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.0.lock().handles += 1;
        Self(self.0.clone())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.handles -= 1;
        if st.handles == 0 {
            self.0.wake.notify_one();
        }
    }
}

#[derive(Clone)]
pub struct Ingest {
    queue: Handle,
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
    ) -> (Self, Gatherer) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_spans: 0,
                max_batches: limits.max_batches.max(1),
                pace: Pace::default(),
                handles: 1,
                closed: false,
                writer: Writer::Busy,
            }),
            wake: Condvar::new(),
        });
        let max_spans = limits.max_spans.max(1);
        (
            Self {
                queue: Handle(shared.clone()),
                budget: Arc::new(Semaphore::new(max_spans)),
                max_spans,
                store,
                export,
            },
            Gatherer { shared },
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
        {
            let shared = &self.queue.0;
            let mut st = shared.lock();
            if st.closed {
                return Err(IngestError::ShuttingDown);
            }
            if st.queue.len() >= st.max_batches {
                return Err(IngestError::Overloaded);
            }
            st.queue.push_back(Submission {
                work,
                spans,
                _permit: permit,
                done,
            });
            st.queued_spans += spans;
            st.pace.arrivals += 1;
            let wake = match st.writer {
                Writer::Busy => false,
                Writer::Idle => true,
                Writer::Gathering { full_at } => st.queued_spans >= full_at,
            };
            if wake {
                shared.wake.notify_one();
            }
        }
        wait.await.unwrap_or(Err(IngestError::ShuttingDown))
    }
}

/// The writer's end of the queue. Dropping it refuses every later submission and answers the queued ones
/// `ShuttingDown`.
pub(super) struct Gatherer {
    shared: Arc<Shared>,
}

impl Gatherer {
    /// The next group to commit: waits until a submission is queued (`None` once every `Ingest` handle is
    /// gone and nothing is queued). Then, when submissions come so often that another is due within
    /// `wait`, holds the group open until `wait` has passed or `max_spans` are queued; takes the queued
    /// submissions up to `max_spans` (at least one). Also returns how long it held the group open.
    pub fn next_group(
        &self,
        wait: Duration,
        max_spans: usize,
    ) -> Option<(Vec<Submission>, Duration)> {
        let mut st = self.shared.lock();
        while st.queue.is_empty() {
            if st.handles == 0 {
                return None;
            }
            st.writer = Writer::Idle;
            st = self.shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let opened = Instant::now();
        st.pace.measure(opened);
        if st.pace.another_due_within(wait) {
            let deadline = opened + wait;
            while st.handles > 0 && st.queued_spans < max_spans {
                let Some(left) = deadline
                    .checked_duration_since(Instant::now())
                    .filter(|d| !d.is_zero())
                else {
                    break;
                };
                st.writer = Writer::Gathering { full_at: max_spans };
                st = self
                    .shared
                    .wake
                    .wait_timeout(st, left)
                    .map_or_else(|e| e.into_inner().0, |(st, _)| st);
            }
        }
        st.writer = Writer::Busy;
        let mut group = Vec::new();
        let mut spans = 0;
        while let Some(next) = st.queue.front() {
            if !group.is_empty() && spans + next.spans > max_spans {
                break;
            }
            spans += next.spans;
            group.extend(st.queue.pop_front());
        }
        st.queued_spans -= spans;
        Some((group, opened.elapsed()))
    }
}

impl Drop for Gatherer {
    fn drop(&mut self) {
        let left = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.queued_spans = 0;
            std::mem::take(&mut st.queue)
        };
        // Their senders are answered `ShuttingDown` (never acknowledged when not stored).
        drop(left);
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

    /// Takes the next group on a blocking thread, as the writer does.
    async fn next_group(
        queue: &Arc<Gatherer>,
        wait: Duration,
    ) -> Option<(Vec<Submission>, Duration)> {
        group_of_at_most(queue, wait, usize::MAX).await
    }

    async fn group_of_at_most(
        queue: &Arc<Gatherer>,
        wait: Duration,
        max_spans: usize,
    ) -> Option<(Vec<Submission>, Duration)> {
        let queue = queue.clone();
        tokio::task::spawn_blocking(move || queue.next_group(wait, max_spans))
            .await
            .unwrap()
    }

    fn answer(group: Vec<Submission>) {
        for s in group {
            s.done.send(Ok(())).ok();
        }
    }

    fn limits() -> QueueLimits {
        QueueLimits {
            max_spans: 100,
            max_batches: 10,
        }
    }

    #[tokio::test]
    async fn refuses_when_the_span_budget_is_used_up() {
        let (ingest, queue) = Ingest::new(
            QueueLimits {
                max_spans: 3,
                max_batches: 10,
            },
            None,
            true,
        );
        let queue = Arc::new(queue);
        let first = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.submit(&batch(3)).await }
        });
        // The writer side: take the submission but do not answer yet.
        let (mut group, _) = next_group(&queue, Duration::ZERO).await.unwrap();
        let pending = group.pop().unwrap();
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
        let (ingest, queue) = Ingest::new(
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
        drop(queue);
        assert!(
            matches!(waiting.await.unwrap(), Err(IngestError::ShuttingDown)),
            "never acknowledged when not stored"
        );
        assert!(matches!(
            ingest.submit(&batch(1)).await,
            Err(IngestError::ShuttingDown)
        ));
    }

    fn submit(ingest: &Ingest, spans: u8) -> tokio::task::JoinHandle<Result<(), IngestError>> {
        let ingest = ingest.clone();
        tokio::spawn(async move { ingest.submit(&batch(spans)).await })
    }

    async fn queued(ingest: &Ingest, spans: usize) {
        while ingest.depth().queued_spans() < spans {
            tokio::task::yield_now().await;
        }
    }

    /// A queue whose pace says submissions come often: one group taken, then another submission.
    async fn busy_queue(max_spans: usize) -> (Ingest, Arc<Gatherer>) {
        let (ingest, queue) = Ingest::new(
            QueueLimits {
                max_spans,
                max_batches: 10,
            },
            None,
            true,
        );
        let queue = Arc::new(queue);
        let first = submit(&ingest, 1);
        let (group, waited) = next_group(&queue, Duration::from_secs(3600)).await.unwrap();
        assert!(
            waited < Duration::from_secs(3600),
            "no pace yet: not held open"
        );
        answer(group);
        assert!(first.await.unwrap().is_ok());
        (ingest, queue)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_submission_alone_is_taken_at_once() {
        let (ingest, queue) = Ingest::new(limits(), None, true);
        let queue = Arc::new(queue);
        let first = submit(&ingest, 1);
        // Held open for an hour, the test would time out.
        let (group, _) = tokio::time::timeout(
            Duration::from_secs(10),
            next_group(&queue, Duration::from_secs(3600)),
        )
        .await
        .expect("not held open")
        .unwrap();
        assert_eq!(group.len(), 1);
        answer(group);
        assert!(first.await.unwrap().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_submissions_come_often_a_group_is_held_open_until_it_is_full() {
        let (ingest, queue) = busy_queue(5).await;
        let second = submit(&ingest, 2);
        queued(&ingest, 2).await;
        let gathered = tokio::spawn({
            let queue = queue.clone();
            async move { group_of_at_most(&queue, Duration::from_secs(3600), 5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !gathered.is_finished(),
            "held open: another submission is due"
        );
        // Three more spans fill the group (five): their sender wakes the writer.
        let third = submit(&ingest, 3);
        let (group, _) = tokio::time::timeout(Duration::from_secs(10), gathered)
            .await
            .expect("a full group is taken at once")
            .unwrap()
            .unwrap();
        assert_eq!(
            group.iter().map(|s| s.spans).collect::<Vec<_>>(),
            vec![2, 3]
        );
        answer(group);
        assert!(second.await.unwrap().is_ok() && third.await.unwrap().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_held_open_is_taken_when_its_time_is_up() {
        let (ingest, queue) = busy_queue(100).await;
        let second = submit(&ingest, 1);
        queued(&ingest, 1).await;
        let (group, waited) = next_group(&queue, Duration::from_millis(50)).await.unwrap();
        assert_eq!(group.len(), 1);
        assert!(waited >= Duration::from_millis(50), "held open: {waited:?}");
        answer(group);
        assert!(second.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn the_writer_ends_when_every_handle_is_gone_and_nothing_is_queued() {
        let (ingest, queue) = Ingest::new(limits(), None, true);
        let queue = Arc::new(queue);
        let other = ingest.clone();
        drop(ingest);
        let ended = tokio::spawn({
            let queue = queue.clone();
            async move { next_group(&queue, Duration::ZERO).await.is_none() }
        });
        tokio::task::yield_now().await;
        assert!(!ended.is_finished(), "a handle is still alive");
        drop(other);
        assert!(tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the last handle's drop wakes the writer")
            .unwrap());
    }
}
