//! Starting and stopping: open the store, start the writer and the servers, wait for SIGTERM/SIGINT, then
//! drain the receivers (in-flight requests finish and get their answers), flush the writer, stop the query
//! API, close the store.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Config;
use crate::analytics::{HistoryLimits, ServiceGraph, ServiceGraphLimits, SpanHistory, SpanMetrics};
use crate::auth::{AuthConfigError, BearerAuth};
use crate::exporters::{run_exporter, Client, ExportQueue, ExporterMetrics};
use crate::ingest::{spawn_writer, QueueLimits, Sinks};
use crate::query::{self, QueryContext};
use crate::receivers::{otlp_grpc, otlp_http, zipkin, ReceiverContext};
use crate::sampling::{Adaptive, AdaptiveConfig, Sampling, StrategiesFile, StrategyError};
use crate::store::{RetentionPolicy, Store, StoreError, StoreOptions};
use crate::tail_sampling::{PendingStore, TailMetrics, TailSampler};
use crate::telemetry::Metrics;
use crate::topology::{Analytics, Pipeline};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the store writer: {0}")]
    Writer(std::io::Error),
    #[error("a server stopped: {0}")]
    Server(String),
    #[error("startup task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Sampling(#[from] StrategyError),
    #[error("configuration: {0}")]
    Config(String),
}

async fn bind(name: &'static str, addr: SocketAddr) -> Result<TcpListener, InitError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| InitError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| InitError::Bind { addr, source })?;
    tracing::info!(listener = name, addr = %local, "listening");
    Ok(listener)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(config: Config) -> Result<(), InitError> {
    let mut metrics = Metrics::new();
    let span_metrics = SpanMetrics::new(metrics.root_registry(), config.span_metrics_max_series);
    let service_graph = Arc::new(ServiceGraph::new(
        metrics.root_registry(),
        ServiceGraphLimits {
            wait: Duration::from_micros(config.service_graph_wait),
            max_entries: config.service_graph_max_entries,
            max_edges: config.service_graph_max_edges,
            keep: Duration::from_secs(7 * 24 * 3600),
        },
        now_us() / 1000,
    ));
    let tail_metrics = TailMetrics::register(metrics.collector_registry());
    let exporters = config.sections.exporters.clone();
    let exporter_metrics =
        (!exporters.is_empty()).then(|| ExporterMetrics::register(metrics.collector_registry()));
    let metrics = Arc::new(metrics);
    for (i, e) in exporters.iter().enumerate() {
        e.validate().map_err(InitError::Config)?;
        if exporters.iter().skip(i + 1).any(|o| o.name == e.name) {
            return Err(InitError::Config(format!(
                "two exporters named {:?}",
                e.name
            )));
        }
    }
    let strategies = match &config.sampling_strategies_file {
        Some(path) => StrategiesFile::load(path)?,
        None => StrategiesFile::default(),
    };
    let adaptive = match config.adaptive_sampling_target_tps {
        Some(target) if target > 0.0 && target.is_finite() => Some(Arc::new(Adaptive::new(
            AdaptiveConfig {
                target_tps: target,
                interval: Duration::from_micros(config.adaptive_sampling_interval.max(1_000)),
                min_probability: config.adaptive_sampling_min_probability.clamp(1e-9, 1.0),
                max_operations: 10_000,
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
    let sampling = Arc::new(Sampling {
        file: strategies,
        adaptive: adaptive.clone(),
    });
    let span_history = Arc::new(SpanHistory::new(HistoryLimits {
        retention_ms: config.span_metrics_history / 1_000,
        max_series: config.span_metrics_history_max_series,
    }));
    let analytics = Arc::new(Analytics {
        span_metrics,
        span_history: span_history.clone(),
        service_graph: service_graph.clone(),
        adaptive,
    });
    let ingest_auth = BearerAuth::from_file(config.ingest_token_file.as_deref())?;
    let query_auth = BearerAuth::from_file(config.query_token_file.as_deref())?;
    let data_dir = config.data_dir.clone();
    let cache = usize::try_from(config.store_cache_bytes).unwrap_or(usize::MAX);
    let store_options = StoreOptions::new(cache);
    let store = tokio::task::spawn_blocking(move || Store::open_with(&data_dir, &store_options))
        .await
        .map_err(|e| InitError::Task(e.to_string()))??;
    let store = Arc::new(store);
    tracing::info!(data_dir = %config.data_dir.display(), "store open");

    let limits = QueueLimits {
        max_spans: config.queue_max_spans,
        max_batches: config.queue_max_requests,
    };
    let export_queue = if exporters.is_empty() {
        None
    } else {
        let names: Vec<String> = exporters.iter().map(|e| e.name.clone()).collect();
        let dir = config.data_dir.clone();
        let queue = tokio::task::spawn_blocking(move || ExportQueue::open(&dir, &names))
            .await
            .map_err(|e| InitError::Task(e.to_string()))??;
        Some(Arc::new(queue))
    };
    if !config.store {
        tracing::info!("store off: spans are only forwarded (gateway mode)");
    }
    let sinks = Sinks {
        store: config.store.then(|| store.clone()),
        export: export_queue.clone(),
        export_limits: exporters
            .iter()
            .map(|e| (e.name.clone(), e.queue_max_spans))
            .collect(),
    };
    let (ingest, writer) =
        spawn_writer(sinks, limits, metrics.clone()).map_err(InitError::Writer)?;
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
    let ready = Arc::new(AtomicBool::new(false));
    let receivers_stop = CancellationToken::new();
    let query_stop = CancellationToken::new();

    let otlp_http_listener = bind("otlp_http", config.otlp_http_addr).await?;
    let otlp_grpc_listener = bind("otlp_grpc", config.otlp_grpc_addr).await?;
    let zipkin_listener = bind("zipkin", config.zipkin_addr).await?;
    let http_listener = bind("http", config.http_addr).await?;
    let tempo_listener = bind("tempo", config.tempo_addr).await?;

    let ctx = ReceiverContext {
        pipeline: Pipeline {
            ingest: ingest.clone(),
            analytics,
            tail: tail.clone(),
        },
        metrics: metrics.clone(),
        auth: ingest_auth,
        max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
    };
    let query_ctx = QueryContext {
        store: store.clone(),
        metrics: metrics.clone(),
        auth: query_auth,
        ready: ready.clone(),
        queue: Some(ingest.depth()),
        service_graph: Some(service_graph),
        sampling,
        store_enabled: config.store,
        span_history,
    };
    drop(ingest);
    let tail_stop = CancellationToken::new();
    let mut tail_task: JoinSet<()> = JoinSet::new();
    if let Some(sampler) = tail {
        tail_task.spawn(sampler.run(tail_stop.clone()));
    }

    let mut receivers: JoinSet<Result<(), String>> = JoinSet::new();
    let stop = receivers_stop.clone();
    let app = otlp_http::router(ctx.clone());
    receivers.spawn(async move {
        axum::serve(otlp_http_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("otlp_http: {e}"))
    });
    let stop = receivers_stop.clone();
    let app = zipkin::router(ctx.clone());
    receivers.spawn(async move {
        axum::serve(zipkin_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("zipkin: {e}"))
    });
    let stop = receivers_stop.clone();
    let grpc = otlp_grpc::service(ctx);
    receivers.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(grpc)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(otlp_grpc_listener),
                stop.cancelled_owned(),
            )
            .await
            .map_err(|e| format!("otlp_grpc: {e}"))
    });

    let mut others: JoinSet<Result<(), String>> = JoinSet::new();
    let stop = query_stop.clone();
    let app = query::tempo_router(query_ctx.clone());
    others.spawn(async move {
        axum::serve(tempo_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("tempo: {e}"))
    });
    let stop = query_stop.clone();
    let app = query::router(query_ctx);
    others.spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("http: {e}"))
    });
    if let (Some(queue), Some(exporter_metrics)) = (&export_queue, &exporter_metrics) {
        for e in &exporters {
            let client = Client::new(e).map_err(InitError::Config)?;
            tracing::info!(exporter = %e.name, endpoint = %e.endpoint, protocol = ?e.protocol, "exporter on");
            let run = run_exporter(
                e.clone(),
                client,
                queue.clone(),
                exporter_metrics.clone(),
                query_stop.clone(),
            );
            others.spawn(async move {
                run.await;
                Ok(())
            });
        }
    }
    drop(export_queue);
    let policy = RetentionPolicy {
        max_age_us: config.retention_max_age,
        error_max_age_us: config.retention_error_max_age,
        max_bytes: config.retention_max_bytes,
    };
    let interval = Duration::from_micros(config.retention_interval.max(1_000_000));
    let stop = receivers_stop.clone();
    let retention_store = store.clone();
    others.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(interval) => {}
            }
            let s = retention_store.clone();
            match tokio::task::spawn_blocking(move || s.apply_retention(&policy, now_us())).await {
                Ok(Ok(report)) if report.expired_by_age + report.expired_by_size > 0 => {
                    tracing::info!(
                        by_age = report.expired_by_age,
                        by_size = report.expired_by_size,
                        "retention expired traces"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                Err(e) => tracing::error!(error = %e, "retention task failed"),
            }
        }
    });

    ready.store(true, Ordering::SeqCst);
    tracing::info!("ready");

    let mut failure = None;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested; draining receivers"),
        Some(done) = receivers.join_next() => {
            let msg = match done { Ok(Ok(())) => "a receiver stopped".to_string(), Ok(Err(e)) => e, Err(e) => e.to_string() };
            tracing::error!(error = %msg, "receiver failed; shutting down");
            failure = Some(msg);
        }
    }
    ready.store(false, Ordering::SeqCst);
    receivers_stop.cancel();
    let deadline = Duration::from_micros(config.shutdown_timeout);
    let drained = tokio::time::timeout(deadline, async {
        while let Some(done) = receivers.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::error!(error = %e, "receiver ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("receivers did not drain in time; aborting open connections");
        receivers.shutdown().await;
    }
    // Spans held for a tail-sampling decision stay in the pending file; the next start decides them.
    tail_stop.cancel();
    while tail_task.join_next().await.is_some() {}
    // Every ingest handle is gone with the receivers: the writer commits what is queued and stops.
    let flushed =
        tokio::time::timeout(deadline, tokio::task::spawn_blocking(move || writer.join())).await;
    match flushed {
        Ok(Ok(Ok(()))) => tracing::info!("store flushed"),
        _ => tracing::error!("store writer did not finish cleanly"),
    }
    query_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while others.join_next().await.is_some() {}
    })
    .await;
    others.shutdown().await;
    drop(store);
    tracing::info!("stopped");
    match failure {
        Some(msg) => Err(InitError::Server(msg)),
        None => Ok(()),
    }
}
