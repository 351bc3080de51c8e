//! What every span goes through before a receiver acknowledges it: the analytics (span metrics and their
//! history, service graph, adaptive sampling), tail sampling when configured, and the writer (store and export queue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_us, Config, InitError};
use crate::analytics::{HistoryLimits, ServiceGraph, ServiceGraphLimits, SpanHistory, SpanMetrics};
use crate::exporters::ExportQueue;
use crate::ingest::{spawn_writer, QueueDepth, QueueLimits, Sinks};
use crate::sampling::{Adaptive, AdaptiveConfig, Sampling, StrategiesFile};
use crate::store::Store;
use crate::tail_sampling::{PendingStore, TailMetrics, TailSampler};
use crate::telemetry::Metrics;
use crate::topology::{Analytics, Pipeline};

/// How long the service graph keeps per-minute edge counts.
const SERVICE_GRAPH_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Operations adaptive sampling tracks, at most.
const ADAPTIVE_MAX_OPERATIONS: usize = 10_000;

/// The analytics, and the sampling strategies they feed (served by the query and sampling ports).
pub struct Derived {
    pub analytics: Arc<Analytics>,
    pub sampling: Arc<Sampling>,
    pub service_graph: Arc<ServiceGraph>,
    /// The recent span metrics, for the query API's `/api/metrics/*`.
    pub span_history: Arc<SpanHistory>,
}

/// Registers the span metrics and the service graph in `metrics`; loads the strategies file.
pub fn analytics(config: &Config, metrics: &mut Metrics) -> Result<Derived, InitError> {
    let span_metrics = SpanMetrics::new(metrics.root_registry(), config.span_metrics_max_series);
    let service_graph = Arc::new(ServiceGraph::new(
        metrics.root_registry(),
        ServiceGraphLimits {
            wait: config.service_graph_wait,
            max_entries: config.service_graph_max_entries,
            max_edges: config.service_graph_max_edges,
            keep: SERVICE_GRAPH_KEEP,
        },
        now_us() / 1000,
    ));
    let file = match &config.sampling_strategies_file {
        Some(path) => StrategiesFile::load(path)?,
        None => StrategiesFile::default(),
    };
    let adaptive = match config.adaptive_sampling_target_tps {
        Some(target) if target > 0.0 && target.is_finite() => Some(Arc::new(Adaptive::new(
            AdaptiveConfig {
                target_tps: target,
                interval: config
                    .adaptive_sampling_interval
                    .max(Duration::from_millis(1)),
                min_probability: config.adaptive_sampling_min_probability.clamp(1e-9, 1.0),
                max_operations: ADAPTIVE_MAX_OPERATIONS,
            },
            Instant::now(),
        ))),
        Some(target) => {
            return Err(InitError::Config(format!(
                "adaptive-sampling-target-tps must be positive, not {target}"
            )))
        }
        None => None,
    };
    let span_history = Arc::new(SpanHistory::new(HistoryLimits {
        retention: config.span_metrics_history,
        max_series: config.span_metrics_history_max_series,
    }));
    Ok(Derived {
        sampling: Arc::new(Sampling {
            file,
            adaptive: adaptive.clone(),
        }),
        analytics: Arc::new(Analytics {
            span_metrics,
            span_history: span_history.clone(),
            service_graph: service_graph.clone(),
            adaptive,
        }),
        service_graph,
        span_history,
    })
}

/// The pipeline receivers submit to, and what must be stopped in order at shutdown.
pub struct Built {
    pub pipeline: Pipeline,
    /// The writer thread: it ends once every `Ingest` handle is dropped and the queue is committed.
    pub writer: std::thread::JoinHandle<()>,
    /// Tail sampling's decision loop, to run until shutdown.
    pub tail: Option<TailSampler>,
    pub depth: QueueDepth,
}

/// Starts the writer over the store and the export queue, and the tail sampler when configured.
pub async fn build(
    config: &Config,
    store: Option<Arc<Store>>,
    export: Option<Arc<ExportQueue>>,
    analytics: Arc<Analytics>,
    tail_metrics: TailMetrics,
    metrics: Arc<Metrics>,
) -> Result<Built, InitError> {
    let sinks = Sinks {
        store,
        export,
        export_limits: config
            .sections
            .exporters
            .iter()
            .map(|e| (e.name.clone(), e.queue_max_spans))
            .collect(),
    };
    let limits = QueueLimits {
        max_spans: config.queue_max_spans,
        max_batches: config.queue_max_requests,
    };
    let (ingest, writer) = spawn_writer(sinks, limits, metrics).map_err(InitError::Writer)?;
    let tail = match &config.sections.tail_sampling {
        Some(tail_config) => {
            let dir = config.data_dir.clone();
            let pending = tokio::task::spawn_blocking(move || PendingStore::open(&dir))
                .await
                .map_err(|e| InitError::Task(e.to_string()))??;
            let sampler = TailSampler::new(
                tail_config,
                Arc::new(pending),
                ingest.clone(),
                tail_metrics,
                Instant::now(),
            )
            .map_err(InitError::Config)?;
            tracing::info!(policies = tail_config.policies.len(), "tail sampling on");
            Some(sampler)
        }
        None => None,
    };
    Ok(Built {
        depth: ingest.depth(),
        pipeline: Pipeline {
            ingest,
            analytics,
            tail: tail.clone(),
        },
        writer,
        tail,
    })
}
