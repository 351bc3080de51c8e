//! Starting and stopping. Start: check the configuration, build the metrics and analytics, open the store
//! and the export queue, start the writer, bind every listener (a taken port fails before anything is
//! served), serve, then report ready. Stop (SIGTERM/SIGINT or a receiver failing): drain the receivers
//! (in-flight requests finish and get their answers), stop tail sampling, let the writer commit what is
//! queued, then stop the query API, the exporters and the background tasks, and close the store.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::query::Query;
use super::receivers::Receivers;
use super::serve::{Listeners, ReceiverThreads};
use super::{exporters, pipeline, store, Config};
use crate::auth::{AuthConfigError, BearerAuth};
use crate::exporters::{ExporterMetrics, QueueError};
use crate::query::{self, QueryContext};
use crate::receivers::ReceiverContext;
use crate::sampling::StrategyError;
use crate::store::StoreError;
use crate::tail_sampling::{PendingError, TailMetrics};
use crate::telemetry::Metrics;
use crate::tls::{ServerFiles, ServerTls, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Pending(#[from] PendingError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("a server stopped: {0}")]
    Server(String),
    #[error("startup task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Sampling(#[from] StrategyError),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How long the query API and the background tasks get to stop once the store is flushed.
const LAST_STOP: Duration = Duration::from_secs(5);

type Tasks = JoinSet<Result<(), String>>;

pub async fn run(config: Config) -> Result<(), InitError> {
    let exporter_configs = &config.sections.exporters;
    exporters::validate(exporter_configs)?;
    let ingest_auth = BearerAuth::from_file(config.ingest_token_file.as_deref())?;
    let query_auth = BearerAuth::from_file(config.query_token_file.as_deref())?;

    let mut registry = Metrics::new();
    let derived = pipeline::analytics(&config, &mut registry)?;
    let tail_metrics = TailMetrics::register(registry.collector_registry());
    let exporter_metrics = (!exporter_configs.is_empty())
        .then(|| ExporterMetrics::register(registry.collector_registry()));
    let metrics = Arc::new(registry);

    let db = store::open_database(&config).await?;
    let store = store::open(&config, db.as_ref()).await?;
    let export_queue = exporters::open_queue(&config, db.as_ref()).await?;
    let built = pipeline::build(
        &config,
        db.clone(),
        store.clone(),
        export_queue.clone(),
        derived.analytics,
        tail_metrics,
        metrics.clone(),
    )
    .await?;
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(ServerTls::load(ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca_file.clone(),
        })?),
        _ => None,
    };
    if let Some(tls) = &tls {
        tracing::info!(
            client_certificates = tls.requires_client_certificates(),
            "TLS on every TCP listener"
        );
    }
    let listeners = Listeners::new(tls.clone());
    let receivers = Receivers::bind(&config, &listeners).await?;
    let query = Query::bind(&config, &listeners).await?;

    // Receivers stop first; the query API, exporters and background tasks only after the store flushed.
    let receivers_stop = CancellationToken::new();
    let tail_stop = CancellationToken::new();
    let others_stop = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));

    let query_ctx = QueryContext {
        store: store.clone(),
        metrics: metrics.clone(),
        auth: query_auth,
        ready: ready.clone(),
        queue: Some(built.depth),
        service_graph: Some(derived.service_graph),
        sampling: derived.sampling.clone(),
        span_history: derived.span_history,
    };
    let mut receiver_tasks = Tasks::new();
    let receiver_threads = ReceiverThreads::for_cores()?;
    receivers.serve(
        &mut receiver_tasks,
        &receiver_threads,
        ReceiverContext {
            pipeline: built.pipeline,
            metrics: metrics.clone(),
            auth: ingest_auth,
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
        },
        query::zipkin_router(query_ctx.clone()),
        &receivers_stop,
    );
    let mut tail_task = JoinSet::new();
    if let Some(sampler) = built.tail {
        tail_task.spawn(sampler.run(tail_stop.clone()));
    }
    let mut others = Tasks::new();
    query.serve(&mut others, query_ctx, derived.sampling, &others_stop);
    if let Some(tls) = tls {
        let watch = tls.watch(config.tls_reload_interval, others_stop.clone());
        others.spawn(async move {
            watch.await;
            Ok(())
        });
    }
    if let (Some(queue), Some(exporter_metrics)) = (&export_queue, &exporter_metrics) {
        exporters::spawn(
            &mut others,
            exporter_configs,
            queue,
            exporter_metrics,
            &others_stop,
        )?;
    }
    drop(export_queue);
    if let Some(store) = &store {
        store::spawn_retention(&mut others, store.clone(), &config, receivers_stop.clone());
    }

    ready.store(true, Ordering::SeqCst);
    tracing::info!("ready");

    let mut failure = None;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested; draining receivers"),
        Some(done) = receiver_tasks.join_next() => {
            let msg = match done {
                Ok(Ok(())) => "a receiver stopped".to_string(),
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            tracing::error!(error = %msg, "receiver failed; shutting down");
            failure = Some(msg);
        }
    }
    ready.store(false, Ordering::SeqCst);
    receivers_stop.cancel();
    let deadline = config.shutdown_timeout;
    drain_receivers(receiver_tasks, deadline).await;
    let _ = tokio::task::spawn_blocking(move || receiver_threads.end()).await;
    // Spans held for a tail-sampling decision stay in the pending file; the next start decides them.
    tail_stop.cancel();
    while tail_task.join_next().await.is_some() {}
    // Every ingest handle is gone with the receivers: the writer commits what is queued and stops.
    let writer = built.writer;
    let flushed =
        tokio::time::timeout(deadline, tokio::task::spawn_blocking(move || writer.join())).await;
    match flushed {
        Ok(Ok(Ok(()))) => tracing::info!("store flushed"),
        _ => tracing::error!("store writer did not finish cleanly"),
    }
    others_stop.cancel();
    let _ = tokio::time::timeout(LAST_STOP, async {
        while others.join_next().await.is_some() {}
    })
    .await;
    others.shutdown().await;
    drop(store);
    drop(db);
    tracing::info!("stopped");
    match failure {
        Some(msg) => Err(InitError::Server(msg)),
        None => Ok(()),
    }
}

/// Waits for the receivers' in-flight requests, at most `deadline`; then cuts what is left.
async fn drain_receivers(mut tasks: Tasks, deadline: Duration) {
    let drained = tokio::time::timeout(deadline, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::error!(error = %e, "receiver ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("receivers did not drain in time; aborting open connections");
        tasks.shutdown().await;
    }
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
