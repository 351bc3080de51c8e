//! The writer thread: takes every waiting submission (up to a batch size), adds all of it (trace parts,
//! the exporters' entry, tail sampling's held and released spans) to one fjall batch, commits it with
//! one journal fsync, then answers each submission. Group commit keeps fsyncs per span low under load.
//!
//! The group is sized from the load: when submissions arrive so often that another is due before the
//! group's commit would end, the writer holds the group open about as long as its recent commits took
//! (`GatherWait`), and one fsync covers what came meanwhile. An fsync costs about the same CPU whatever
//! it writes (about 100 µs on the benchmark's virtual disk). A submission that comes alone is committed at
//! once.
//!
//! A storage failure that cannot pass (a failed fsync poisons the keyspace) is logged once with its
//! cause; from then on every submission is answered at once with `IngestError::Failed` (HTTP 500, gRPC
//! INTERNAL) instead of a "retry later" that would never come true.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use super::queue::{Gatherer, Ingest, QueueLimits, Submission};
use super::IngestError;
use crate::exporters::ExportQueue;
use crate::store::{Database, Prepared, Store, StoreError};
use crate::tail_sampling::PendingSet;
use crate::telemetry::Metrics;

/// Spans per batch, at most (a single larger submission still goes in one batch).
const MAX_SPANS_PER_COMMIT: usize = 20_000;

/// The longest a group is held open for submissions due, whatever the commits take.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

/// How long the writer holds a group open when more submissions are due: the moving average of its
/// recent commits' durations (a group that waits no longer than a commit takes at most doubles what its
/// requests wait for the journal), at most `MAX_GATHER_WAIT`.
#[derive(Debug, Default)]
struct GatherWait {
    /// The moving average of commit durations, in nanoseconds (each new one weighs an eighth).
    average_ns: u64,
}

impl GatherWait {
    fn observe(&mut self, commit: Duration) {
        let ns = u64::try_from(commit.as_nanos()).unwrap_or(u64::MAX);
        self.average_ns = super::moving_average(self.average_ns, ns);
    }

    fn wait(&self) -> Duration {
        Duration::from_nanos(self.average_ns).min(MAX_GATHER_WAIT)
    }
}

/// Where the writer makes spans durable, all in the one keyspace `db`: the store (unless the collector
/// is a pure gateway), the exporters' queue (when exporters are configured) and tail sampling's pending
/// set (when tail sampling is on).
#[derive(Clone)]
pub struct Sinks {
    pub db: Option<Arc<Database>>,
    pub store: Option<Arc<Store>>,
    pub export: Option<Arc<ExportQueue>>,
    /// Per exporter: spans queued before submissions are refused (429) instead of queued.
    pub export_limits: Vec<(String, u64)>,
    pub pending: Option<Arc<PendingSet>>,
    /// A failure the next commit reports instead of writing (tests of the failure paths).
    #[cfg(test)]
    pub(crate) fault: Arc<std::sync::Mutex<Option<StoreError>>>,
}

impl Sinks {
    pub fn new(
        db: Option<Arc<Database>>,
        store: Option<Arc<Store>>,
        export: Option<Arc<ExportQueue>>,
        export_limits: Vec<(String, u64)>,
        pending: Option<Arc<PendingSet>>,
    ) -> Self {
        Self {
            db,
            store,
            export,
            export_limits,
            pending,
            #[cfg(test)]
            fault: Arc::default(),
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::DiskFull { .. }) {
            IngestError::DiskFull(e.to_string())
        } else if e.is_retryable() {
            IngestError::Unavailable(e.to_string())
        } else {
            IngestError::Failed(e.to_string())
        }
    }
}

impl Sinks {
    /// Writes the group in one durable batch.
    fn commit(&self, group: &mut [Submission]) -> Result<(), IngestError> {
        #[cfg(test)]
        if let Some(e) = self.fault.lock().ok().and_then(|mut f| f.take()) {
            return Err(e.into());
        }
        let Some(db) = &self.db else {
            return Ok(());
        };
        if self
            .export
            .as_ref()
            .is_some_and(|q| q.full(&self.export_limits))
        {
            return Err(IngestError::Overloaded);
        }
        // Refused before anything is written: a journal write that fails for want of space would poison
        // the keyspace for good, a refusal passes once space is freed.
        db.check_space(group.iter().map(|s| s.work.bytes()).sum())?;
        let mut batch = db.batch(true);
        let prepared: Vec<Prepared> = group
            .iter_mut()
            .filter_map(|s| s.work.store.take())
            .collect();
        let written = match &self.store {
            Some(store) if !prepared.is_empty() => Some(store.add(&mut batch, prepared)?),
            _ => None,
        };
        let mut exports: Vec<Bytes> = Vec::new();
        let mut export_spans = 0;
        for s in group.iter_mut() {
            if let Some(payload) = s.work.export.take() {
                exports.push(payload);
                export_spans += s.work.spans;
            }
        }
        let appended = match &self.export {
            Some(queue) if export_spans > 0 => {
                Some(queue.append(&mut batch, &exports, export_spans))
            }
            _ => None,
        };
        if let Some(pending) = &self.pending {
            for s in group.iter() {
                pending.add(&mut batch, &s.work.hold, &s.work.release);
            }
        }
        if !batch.is_empty() {
            batch.commit().map_err(StoreError::from)?;
        }
        if let Some(written) = written {
            written.committed();
        }
        if let Some(appended) = appended {
            appended.committed();
        }
        Ok(())
    }
}

/// Starts the writer. It runs until every `Ingest` handle is dropped and the queue is empty, so dropping
/// the receivers' handles and joining the thread is a complete flush.
pub fn spawn_writer(
    sinks: Sinks,
    limits: QueueLimits,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Ingest, JoinHandle<()>)> {
    let (ingest, queue) = Ingest::new(limits, sinks.store.clone(), sinks.export.is_some());
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(sinks, queue, metrics))?;
    Ok((ingest, handle))
}

fn run(sinks: Sinks, queue: Gatherer, metrics: Arc<Metrics>) {
    // Set once storage failed for good; every later submission gets this answer.
    let mut failed: Option<IngestError> = None;
    // Whether the last commit was refused for a full disk (logged when it starts and when it ends).
    let mut disk_full = false;
    let mut gather = GatherWait::default();
    while let Some((mut group, waited)) = queue.next_group(gather.wait(), MAX_SPANS_PER_COMMIT) {
        let spans = group.iter().map(|s| s.spans).sum::<usize>();
        let started = std::time::Instant::now();
        let result = match &failed {
            Some(e) => Err(e.clone()),
            None => sinks.commit(&mut group),
        };
        if disk_full != matches!(result, Err(IngestError::DiskFull(_))) {
            disk_full = !disk_full;
            match &result {
                Err(e) => {
                    tracing::error!(error = %e, "disk full: spans are refused (HTTP 503, gRPC RESOURCE_EXHAUSTED) until space is freed")
                }
                _ => tracing::info!("disk space is back: spans are stored again"),
            }
        }
        match &result {
            Ok(()) => {
                let took = started.elapsed();
                gather.observe(took);
                metrics.store_commits.inc();
                metrics.store_commit_seconds.observe(took.as_secs_f64());
                metrics.store_commit_spans.observe(spans as f64);
                metrics
                    .store_commit_wait_seconds
                    .observe(waited.as_secs_f64());
            }
            Err(e @ IngestError::Failed(_)) if failed.is_none() => {
                tracing::error!(error = %e, spans, "storage failed for good: every span is refused (HTTP 500, gRPC INTERNAL) until the collector is restarted");
                failed = Some(e.clone());
            }
            Err(IngestError::Failed(_) | IngestError::DiskFull(_)) => {}
            Err(e) => tracing::warn!(error = %e, spans, "spans not stored; senders retry"),
        }
        for submission in group {
            // The submitter may have gone away (client disconnected); the spans are stored regardless.
            let _ = submission.done.send(result.clone());
        }
    }
    tracing::info!("store writer drained");
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
    use crate::ingest::Work;
    use crate::store::StoreOptions;

    fn writer(dir: &std::path::Path) -> (Sinks, Ingest, JoinHandle<()>) {
        let db = Arc::new(Database::open(dir, &StoreOptions::new(1 << 20)).unwrap());
        let sinks = Sinks::new(Some(db), None, None, Vec::new(), None);
        let limits = QueueLimits {
            max_spans: 100,
            max_batches: 10,
        };
        let (ingest, writer) =
            spawn_writer(sinks.clone(), limits, Arc::new(Metrics::new())).unwrap();
        (sinks, ingest, writer)
    }

    fn fail_next(sinks: &Sinks, e: StoreError) {
        *sinks.fault.lock().unwrap() = Some(e);
    }

    #[test]
    fn a_group_waits_about_as_long_as_recent_commits_took_and_never_more_than_the_cap() {
        let mut gather = GatherWait::default();
        assert_eq!(gather.wait(), Duration::ZERO, "nothing measured: no wait");
        for _ in 0..100 {
            gather.observe(Duration::from_micros(400));
        }
        let wait = gather.wait();
        assert!(
            wait > Duration::from_micros(390) && wait <= Duration::from_micros(400),
            "{wait:?}"
        );
        gather.observe(Duration::from_millis(40));
        assert_eq!(gather.wait(), MAX_GATHER_WAIT, "one slow fsync: capped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_passing_failure_asks_for_a_retry_and_the_next_commit_works() {
        let dir = tempfile::tempdir().unwrap();
        let (sinks, ingest, writer) = writer(dir.path());
        fail_next(
            &sinks,
            StoreError::Keyspace(fjall::Error::Io(std::io::Error::other("disk full"))),
        );
        let e = ingest.submit_work(Work::default(), 1).await.unwrap_err();
        assert!(matches!(e, IngestError::Unavailable(_)), "{e:?}");
        assert_eq!(e.http_status(), 503);
        assert!(ingest.submit_work(Work::default(), 1).await.is_ok());
        drop(ingest);
        writer.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_permanent_failure_is_answered_500_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let (sinks, ingest, writer) = writer(dir.path());
        assert!(ingest.submit_work(Work::default(), 1).await.is_ok());
        fail_next(&sinks, StoreError::Keyspace(fjall::Error::Poisoned));
        for attempt in 0..3 {
            let e = ingest.submit_work(Work::default(), 1).await.unwrap_err();
            assert!(
                matches!(e, IngestError::Failed(_)),
                "attempt {attempt}: {e:?}"
            );
            assert_eq!((e.http_status(), e.retry_after()), (500, None));
            assert_eq!(e.grpc_status().code(), tonic::Code::Internal);
        }
        drop(ingest);
        writer.join().unwrap();
    }
}
