//! The writer thread: takes every waiting submission (up to a batch size), writes them in one durable
//! batch, then answers each. Group commit keeps fsyncs per span low under load.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::queue::{Ingest, QueueLimits, Submission};
use super::IngestError;
use crate::exporters::ExportQueue;
use crate::store::{Prepared, Store};
use crate::telemetry::Metrics;

/// Spans per batch, at most (a single larger submission still goes in one batch).
const MAX_SPANS_PER_COMMIT: usize = 20_000;

/// Where the writer makes spans durable: the store (unless the collector is a pure gateway) and the
/// exporters' persistent queue (when exporters are configured). Both commit with fsync before any
/// submission is answered.
#[derive(Clone)]
pub struct Sinks {
    pub store: Option<Arc<Store>>,
    pub export: Option<Arc<ExportQueue>>,
    /// Per exporter: spans queued before submissions are refused (429) instead of queued.
    pub export_limits: Vec<(String, u64)>,
}

impl Sinks {
    fn export_full(&self) -> bool {
        self.export.as_ref().is_some_and(|q| {
            self.export_limits
                .iter()
                .any(|(name, max)| q.queued(name) >= *max)
        })
    }

    fn write(
        &self,
        records: &[crate::model::SpanRecord],
        prepared: &[Prepared],
    ) -> Result<(), IngestError> {
        if let Some(store) = &self.store {
            store
                .write_prepared(prepared)
                .map_err(|e| IngestError::Store(e.to_string()))?;
        }
        if let Some(queue) = &self.export {
            queue
                .append(records)
                .map_err(|e| IngestError::Store(format!("export queue: {e}")))?;
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
    let (ingest, rx) = Ingest::new(limits, sinks.store.is_some(), sinks.export.is_some());
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(sinks, rx, metrics))?;
    Ok((ingest, handle))
}

fn run(sinks: Sinks, mut rx: mpsc::Receiver<Submission>, metrics: Arc<Metrics>) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        let mut spans = group.iter().map(|s| s.spans).sum::<usize>();
        while spans < MAX_SPANS_PER_COMMIT {
            match rx.try_recv() {
                Ok(next) => {
                    spans += next.spans;
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut prepared = Vec::with_capacity(group.len());
        for s in group.iter_mut() {
            match s.prepared.take() {
                Some(p) => prepared.push(p),
                None if sinks.store.is_some() => prepared.push(Store::prepare(&s.records)),
                None => {}
            }
        }
        // Only the export queue needs the records themselves.
        let records: Vec<_> = if sinks.export.is_some() {
            group
                .iter_mut()
                .flat_map(|s| std::mem::take(&mut s.records))
                .collect()
        } else {
            Vec::new()
        };
        let result = if sinks.export_full() {
            Err(IngestError::Overloaded)
        } else {
            sinks.write(&records, &prepared)
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, spans, "store write failed; spans refused");
        } else {
            metrics.store_commits.inc();
        }
        for submission in group {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(IngestError::Overloaded) => Err(IngestError::Overloaded),
                Err(e) => Err(IngestError::Store(e.to_string())),
            };
            // The submitter may have gone away (client disconnected); the spans are stored regardless.
            let _ = submission.done.send(answer);
        }
    }
    tracing::info!("store writer drained");
}
