//! The `/api/*` handlers. Store reads run on the blocking pool; each handler records its latency.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::envelope::{error, list};
use super::jaeger::to_jaeger_trace;
use super::params::{self, TraceSearch};
use super::QueryContext;
use crate::model::parse_trace_id;
use crate::store::{Store, StoreError};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Runs a store read on the blocking pool and turns failures into a 500 envelope. Without a store
/// (`--store=false`) every read finds nothing.
async fn read<T: Default + Send + 'static>(
    ctx: &QueryContext,
    endpoint: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let Some(store) = ctx.store.clone() else {
        return Ok(T::default());
    };
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || f(&store)).await;
    ctx.metrics
        .observe_query(endpoint, started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(endpoint, error = %e, "store read failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query task failed: {e}"),
        )),
    }
}

pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such API endpoint".into())
}

pub async fn services(State(ctx): State<QueryContext>) -> Response {
    match read(&ctx, "services", |s| s.services()).await {
        Ok(services) => list(services),
        Err(r) => r,
    }
}

pub async fn service_operations(
    State(ctx): State<QueryContext>,
    Path(service): Path<String>,
) -> Response {
    match read(&ctx, "service_operations", move |s| {
        s.operations(&service, None)
    })
    .await
    {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(name, _)| name).collect();
            names.sort();
            names.dedup();
            list(names)
        }
        Err(r) => r,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    name: String,
    span_kind: String,
}

pub async fn operations(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (service, kind) = match params::operations(raw.as_deref()) {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match read(&ctx, "operations", move |s| {
        s.operations(&service, kind.as_deref())
    })
    .await
    {
        Ok(ops) => list(
            ops.into_iter()
                .map(|(name, span_kind)| Operation { name, span_kind })
                .collect(),
        ),
        Err(r) => r,
    }
}

pub async fn find_traces(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let search = match params::trace_search(raw.as_deref(), now_us()) {
        Ok(s) => s,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let traces = read(&ctx, "traces", move |s| {
        let ids = match search {
            TraceSearch::Ids(ids) => ids,
            TraceSearch::Query(q) => s.find_traces(&q)?,
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let records = s.trace(&id)?;
            if !records.is_empty() {
                out.push(to_jaeger_trace(&id, records));
            }
        }
        Ok(out)
    })
    .await;
    match traces {
        Ok(traces) => list(traces),
        Err(r) => r,
    }
}

pub async fn get_trace(State(ctx): State<QueryContext>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = parse_trace_id(id.trim()) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid trace id {id:?}: expected 1 to 32 hex digits, not all zero"),
        );
    };
    match read(&ctx, "trace", move |s| s.trace(&trace_id)).await {
        Ok(records) if records.is_empty() => error(StatusCode::NOT_FOUND, "trace not found".into()),
        Ok(records) => list(vec![to_jaeger_trace(&trace_id, records)]),
        Err(r) => r,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DependencyLink {
    parent: String,
    child: String,
    call_count: u64,
}

/// Dependencies in a window: edges counted live by the service graph since the collector started (complete
/// even when tail sampling drops traces), plus, for the part of the window before that, edges derived from
/// the stored traces.
pub async fn dependencies(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (start, end) = match params::dependency_window(raw.as_deref(), now_us()) {
        Ok(w) => w,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let mut edges: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let mut store_end = end;
    if let Some(graph) = &ctx.service_graph {
        for e in graph.edges(start / 1000, end / 1000) {
            *edges.entry((e.parent, e.child)).or_default() += e.calls;
        }
        store_end = store_end.min((graph.started_ms * 1000).saturating_sub(1));
    }
    if ctx.store.is_some() && start <= store_end {
        match read(&ctx, "dependencies", move |s| {
            s.dependencies(start, store_end)
        })
        .await
        {
            Ok(deps) => {
                for d in deps {
                    *edges.entry((d.parent, d.child)).or_default() += d.call_count;
                }
            }
            Err(r) => return r,
        }
    }
    list(
        edges
            .into_iter()
            .map(|((parent, child), call_count)| DependencyLink {
                parent,
                child,
                call_count,
            })
            .collect(),
    )
}
