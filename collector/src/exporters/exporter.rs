//! The drain loop of one exporter: take a batch from the persistent queue, send it, delete it once the
//! upstream accepted it; retry with backoff (at least the upstream's `Retry-After`) while it fails.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::config::ExporterConfig;
use super::queue::{span_count, ExportQueue};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExporterLabels {
    exporter: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    exporter: String,
    kind: &'static str,
}

/// `meshtrace_collector_exporter_*` metrics.
#[derive(Clone, Default)]
pub struct ExporterMetrics {
    sent: Family<ExporterLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    rejected: Family<ExporterLabels, Counter>,
    queued: Family<ExporterLabels, Gauge>,
}

impl ExporterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "exporter_sent_spans",
            "Spans the upstream accepted",
            m.sent.clone(),
        );
        registry.register(
            "exporter_failed_requests",
            "Export requests that failed, by kind (retryable, permanent)",
            m.failures.clone(),
        );
        registry.register(
            "exporter_rejected_spans",
            "Spans the upstream rejected permanently (bad data; not retried)",
            m.rejected.clone(),
        );
        registry.register(
            "exporter_queue_spans",
            "Spans waiting in the persistent queue",
            m.queued.clone(),
        );
        m
    }
}

fn merge(batch: Vec<(u64, ExportTraceServiceRequest)>) -> (Vec<u64>, ExportTraceServiceRequest) {
    let mut seqs = Vec::with_capacity(batch.len());
    let mut request = ExportTraceServiceRequest::default();
    for (seq, r) in batch {
        seqs.push(seq);
        request.resource_spans.extend(r.resource_spans);
    }
    (seqs, request)
}

/// A little jitter from the clock, so many collectors do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// How long to wait before retrying: the backoff with jitter, capped by `max_backoff`, but never less than
/// the upstream's `Retry-After`.
pub fn retry_wait(
    backoff: Duration,
    retry_after: Option<Duration>,
    max_backoff: Duration,
) -> Duration {
    let wait = jitter(backoff).min(max_backoff);
    match retry_after {
        Some(after) => wait.max(after),
        None => wait,
    }
}

/// Runs until `stop`. Whatever is not yet delivered stays in the queue for the next start.
pub async fn run_exporter(
    config: ExporterConfig,
    mut client: Client,
    queue: Arc<ExportQueue>,
    metrics: ExporterMetrics,
    stop: CancellationToken,
) {
    let name = config.name.clone();
    let labels = ExporterLabels {
        exporter: name.clone(),
    };
    let max_backoff = config.max_backoff.max(Duration::from_millis(1));
    let batch_timeout = config.batch_timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        metrics
            .queued
            .get_or_create(&labels)
            .set(i64::try_from(queue.queued(&name)).unwrap_or(i64::MAX));
        // Wait for work (an append wakes us; the timer covers a missed wake-up).
        let queued = queue.queued(&name);
        if queued == 0 {
            let appended = queue.appended.clone();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = appended.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        if (queued as usize) < config.batch_max_spans && !batch_timeout.is_zero() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(batch_timeout) => {}
            }
        }
        let q = queue.clone();
        let n = name.clone();
        let max = config.batch_max_spans;
        let batch = match tokio::task::spawn_blocking(move || q.peek(&n, max)).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::error!(exporter = %name, error = %e, "export queue read failed");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                continue;
            }
            Err(_) => return,
        };
        if batch.is_empty() {
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_millis(100)) => {} }
            continue;
        }
        let (seqs, request) = merge(batch);
        let spans = span_count(&request) as u64;
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = client.send(request) => r,
        };
        let delivered = match result {
            Ok(()) => {
                metrics.sent.get_or_create(&labels).inc_by(spans);
                backoff = Duration::from_millis(100);
                true
            }
            Err(e) if e.is_retryable() => {
                metrics
                    .failures
                    .get_or_create(&FailureLabels {
                        exporter: name.clone(),
                        kind: "retryable",
                    })
                    .inc();
                let wait = retry_wait(backoff, e.retry_after(), max_backoff);
                tracing::warn!(exporter = %name, error = %e, retry_in_ms = wait.as_millis() as u64, spans, "export failed; will retry");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
                false
            }
            Err(e) => {
                metrics
                    .failures
                    .get_or_create(&FailureLabels {
                        exporter: name.clone(),
                        kind: "permanent",
                    })
                    .inc();
                metrics.rejected.get_or_create(&labels).inc_by(spans);
                tracing::error!(exporter = %name, error = %e, spans, "upstream rejected the batch; not retried");
                true
            }
        };
        if delivered {
            let q = queue.clone();
            let n = name.clone();
            match tokio::task::spawn_blocking(move || q.remove(&n, &seqs, spans)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(exporter = %name, error = %e, "export queue delete failed (the batch may be sent again)")
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_a_floor_and_backoff_is_capped() {
        let ms = Duration::from_millis;
        assert!(
            retry_wait(ms(100), Some(Duration::from_secs(7)), ms(500)) >= Duration::from_secs(7)
        );
        let w = retry_wait(ms(400), None, ms(500));
        assert!(w >= ms(400) && w <= ms(500), "{w:?}");
        assert!(retry_wait(Duration::from_secs(60), None, ms(500)) <= ms(500));
    }
}
