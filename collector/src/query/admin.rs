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
    if let Some((stored, file, (runs, open))) = sizes {
        ctx.metrics
            .store_index_runs
            .set(i64::try_from(runs).unwrap_or(i64::MAX));
        ctx.metrics
            .store_index_open_entries
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        ctx.metrics
            .stored_bytes
            .set(i64::try_from(stored).unwrap_or(i64::MAX));
        ctx.metrics
            .store_file_bytes
            .set(i64::try_from(file).unwrap_or(i64::MAX));
    }
    if let Some(queue) = &ctx.queue {
        ctx.metrics
            .queued_spans
            .set(i64::try_from(queue.queued_spans()).unwrap_or(i64::MAX));
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
