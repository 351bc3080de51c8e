//! Starting and stopping: open the store, start the writer and the servers, wait for SIGTERM/SIGINT, then
//! drain the receivers (in-flight requests finish and get their answers), flush the writer, stop the query
//! API, close the store.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Config;
use crate::auth::{AuthConfigError, BearerAuth};
use crate::ingest::{spawn_writer, QueueLimits};
use crate::query::{self, QueryContext};
use crate::receivers::{otlp_grpc, otlp_http, zipkin, ReceiverContext};
use crate::store::{RetentionPolicy, Store, StoreError};
use crate::telemetry::Metrics;

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
    let metrics = Arc::new(Metrics::new());
    let ingest_auth = BearerAuth::from_file(config.ingest_token_file.as_deref())?;
    let query_auth = BearerAuth::from_file(config.query_token_file.as_deref())?;
    let data_dir = config.data_dir.clone();
    let cache = usize::try_from(config.store_cache_bytes).unwrap_or(usize::MAX);
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir, cache))
        .await
        .map_err(|e| InitError::Task(e.to_string()))??;
    let store = Arc::new(store);
    tracing::info!(data_dir = %config.data_dir.display(), "store open");

    let limits = QueueLimits {
        max_spans: config.queue_max_spans,
        max_batches: config.queue_max_requests,
    };
    let (ingest, writer) =
        spawn_writer(store.clone(), limits, metrics.clone()).map_err(InitError::Writer)?;
    let ready = Arc::new(AtomicBool::new(false));
    let receivers_stop = CancellationToken::new();
    let query_stop = CancellationToken::new();

    let otlp_http_listener = bind("otlp_http", config.otlp_http_addr).await?;
    let otlp_grpc_listener = bind("otlp_grpc", config.otlp_grpc_addr).await?;
    let zipkin_listener = bind("zipkin", config.zipkin_addr).await?;
    let http_listener = bind("http", config.http_addr).await?;

    let ctx = ReceiverContext {
        ingest: ingest.clone(),
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
    };
    drop(ingest);

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
    let app = query::router(query_ctx);
    others.spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("http: {e}"))
    });
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
