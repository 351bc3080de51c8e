//! The `/api/*` handlers. Store reads run on the blocking pool; each handler records its latency.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::envelope::{error, list};
use super::jaeger::to_jaeger_trace;
use super::params::{self, TraceSearch};
use super::{now_us, QueryContext};
use crate::model::parse_trace_id;
use crate::store::{Store, StoreError};

/// Runs a store read on the blocking pool and turns failures into a 500 envelope. Without a store
/// (`--store=false`) every read finds nothing.
async fn read<T: Default + Send + 'static>(
    ctx: &QueryContext,
    endpoint: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    super::blocking::read(ctx, endpoint, f)
        .await
        .map_err(|msg| error(StatusCode::INTERNAL_SERVER_ERROR, msg))
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
    /// Not in Jaeger's model (clients ignore it): calls where either span is an error, for the viewer's
    /// error rates.
    error_count: u64,
}

/// Dependencies in a window (µs).
pub async fn dependencies(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (start, end) = match params::dependency_window(raw.as_deref(), now_us()) {
        Ok(w) => w,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match dependency_links(&ctx, start, end).await {
        Ok(edges) => list(
            edges
                .into_iter()
                .map(|((parent, child), counts)| DependencyLink {
                    parent,
                    child,
                    call_count: counts.calls,
                    error_count: counts.errors,
                })
                .collect(),
        ),
        Err(msg) => error(StatusCode::INTERNAL_SERVER_ERROR, msg),
    }
}

/// Calls between two services, and how many of them failed (the parent or the child span is an error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    pub calls: u64,
    pub errors: u64,
}

/// Call and error counts per (parent, child) service in a window (µs): edges counted live by the service
/// graph for calls made from the first whole minute after the collector started (complete even when tail
/// sampling drops traces), plus, for the part of the window before that, edges derived from the stored
/// traces. Both sides go by when a call happened, so a span dated before the start but received after it
/// counts once (from the store), not twice.
pub async fn dependency_links(
    ctx: &QueryContext,
    start: u64,
    end: u64,
) -> Result<BTreeMap<(String, String), LinkCounts>, String> {
    let mut edges: BTreeMap<(String, String), LinkCounts> = BTreeMap::new();
    let mut store_end = end;
    if let Some(graph) = &ctx.service_graph {
        // Without a store the live table is all there is, partial first minute included.
        let live_from_ms = match ctx.store {
            Some(_) => graph.started_ms.div_ceil(60_000) * 60_000,
            None => 0,
        };
        let live_start_ms = (start / 1000).max(live_from_ms);
        if live_start_ms <= end / 1000 {
            for e in graph.edges(live_start_ms, end / 1000) {
                let counts = edges.entry((e.parent, e.child)).or_default();
                counts.calls += e.calls;
                counts.errors += e.errors;
            }
        }
        store_end = store_end.min((live_from_ms * 1000).saturating_sub(1));
    }
    if ctx.store.is_some() && start <= store_end {
        let deps = super::blocking::read(ctx, "dependencies", move |s| {
            s.dependencies(start, store_end)
        })
        .await?;
        for d in deps {
            let counts = edges.entry((d.parent, d.child)).or_default();
            counts.calls += d.call_count;
            counts.errors += d.error_count;
        }
    }
    Ok(edges)
}
