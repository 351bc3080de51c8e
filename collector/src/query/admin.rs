//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::QueryContext;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(ctx): State<QueryContext>) -> Response {
    if ctx.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

pub async fn metrics(State(ctx): State<QueryContext>) -> Response {
    let sizes = match ctx.store.clone() {
        Some(store) => tokio::task::spawn_blocking(move || {
            (
                store.stored_bytes().unwrap_or(0),
                store.file_bytes(),
                store.index_counts(),
            )
        })
        .await
        .ok(),
        None => None,
    };
    let set = |gauge: &prometheus_client::metrics::gauge::Gauge, value: u64| {
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    };
    if let Some((stored, file, (runs, open))) = sizes {
        set(&ctx.metrics.stored_bytes, stored);
        set(&ctx.metrics.store_file_bytes, file);
        set(&ctx.metrics.store_index_runs, runs as u64);
        set(&ctx.metrics.store_index_open_entries, open as u64);
    }
    if let Some(queue) = &ctx.queue {
        set(&ctx.metrics.queued_spans, queue.queued_spans() as u64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
        .into_response()
}
