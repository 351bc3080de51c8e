//! Jaeger's API v3 over HTTP/JSON (`jaeger.api_v3.QueryService` through grpc-gateway): services,
//! operations, traces as OTLP JSON wrapped in `{"result": ...}`, `FindTraces`, `FindTraceSummaries`
//! (what Jaeger UI's search page reads) with meshtrace's diagnostics, and dependencies. Errors come in
//! grpc-gateway's shape.

mod params;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::diagnostics::Problem;
use super::gateway::{bad_parameter, error};
use super::summary::{summarize, TraceSummary};
use super::{blocking, handlers, otlp, QueryContext, SEARCH_BUDGET};
use crate::model::parse_trace_id;
use crate::store::Flow;

pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces).post(find_traces_post))
        .route("/api/v3/traces/{trace_id}", get(get_trace))
        .route(
            "/api/v3/trace-summaries",
            get(trace_summaries).post(trace_summaries_post),
        )
        .route("/api/v3/dependencies", get(dependencies))
}

fn internal(msg: String) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

async fn services(State(ctx): State<QueryContext>) -> Response {
    match blocking::read(&ctx, "v3_services", |s| s.services()).await {
        Ok(services) => Json(json!({ "services": services })).into_response(),
        Err(msg) => internal(msg),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    name: String,
    span_kind: String,
}

async fn operations(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (service, kind) = match params::operations(&params::query_pairs(raw.as_deref())) {
        Ok(p) => p,
        Err((name, why)) => return bad_parameter(&name, why),
    };
    match blocking::read(&ctx, "v3_operations", move |s| {
        s.operations(&service, kind.as_deref())
    })
    .await
    {
        Ok(ops) => {
            let operations: Vec<Operation> = ops
                .into_iter()
                .map(|(name, kind)| Operation {
                    name,
                    // As Jaeger's gateway does: an unspecified kind is reported as internal.
                    span_kind: if kind.is_empty() {
                        "internal".into()
                    } else {
                        kind
                    },
                })
                .collect();
            Json(json!({ "operations": operations })).into_response()
        }
        Err(msg) => internal(msg),
    }
}

/// grpc-gateway's wrapper of a streamed answer: `{"result": <OTLP JSON>}`.
fn wrapped(records: Vec<crate::model::SpanRecord>) -> Response {
    Json(json!({ "result": otlp::to_json(&otlp::traces_data(records)) })).into_response()
}

async fn get_trace(
    State(ctx): State<QueryContext>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(trace_id) = parse_trace_id(id.trim()) else {
        return bad_parameter(
            "trace_id",
            format!("{id:?} is not a trace id (1 to 32 hex digits, not all zero)"),
        );
    };
    if let Err((name, why)) = params::get_trace(&params::query_pairs(raw.as_deref())) {
        return bad_parameter(&name, why);
    }
    match blocking::read(&ctx, "v3_trace", move |s| s.trace(&trace_id)).await {
        Ok(records) if records.is_empty() => error(StatusCode::NOT_FOUND, "trace not found"),
        Ok(records) => wrapped(records),
        Err(msg) => internal(msg),
    }
}

async fn find_traces(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    find_traces_with(ctx, params::query_pairs(raw.as_deref())).await
}

async fn find_traces_post(State(ctx): State<QueryContext>, body: Bytes) -> Response {
    match params::body_pairs(&body) {
        Ok(pairs) => find_traces_with(ctx, pairs).await,
        Err((name, why)) => bad_parameter(&name, why),
    }
}

async fn find_traces_with(ctx: QueryContext, pairs: Vec<(String, String)>) -> Response {
    let q = match params::find_query(&pairs) {
        Ok(q) => q,
        Err((name, why)) => return bad_parameter(&name, why),
    };
    let deadline = Instant::now() + SEARCH_BUDGET;
    let found = blocking::read(&ctx, "v3_traces", move |s| {
        let mut records = Vec::new();
        let mut traces = 0usize;
        s.search(&q.query, Some(deadline), |trace, reader| {
            let spans = reader.records(trace)?;
            if !q.diagnostics.is_empty() {
                let skeletons: Vec<_> = spans
                    .iter()
                    .map(crate::store::SpanSkeleton::from_record)
                    .collect();
                let counts = super::diagnostics::count(&skeletons);
                if !q.diagnostics.iter().all(|p| counts.has(*p)) {
                    return Ok(Flow::Continue);
                }
            }
            records.extend(spans);
            traces += 1;
            Ok(Flow::stop_if(traces >= q.query.limit))
        })?;
        Ok(records)
    })
    .await;
    match found {
        // As Jaeger answers a search that finds nothing.
        Ok(records) if records.is_empty() => error(StatusCode::NOT_FOUND, "No traces found"),
        Ok(records) => wrapped(records),
        Err(msg) => internal(msg),
    }
}

async fn trace_summaries(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    summaries_with(ctx, params::query_pairs(raw.as_deref())).await
}

async fn trace_summaries_post(State(ctx): State<QueryContext>, body: Bytes) -> Response {
    match params::body_pairs(&body) {
        Ok(pairs) => summaries_with(ctx, pairs).await,
        Err((name, why)) => bad_parameter(&name, why),
    }
}

/// Summaries of the traces matching the query, newest first: each trace's spans are read in their lean
/// form (`SpanSkeleton`), never decoded in full.
async fn summaries_with(ctx: QueryContext, pairs: Vec<(String, String)>) -> Response {
    let q = match params::find_query(&pairs) {
        Ok(q) => q,
        Err((name, why)) => return bad_parameter(&name, why),
    };
    let deadline = Instant::now() + SEARCH_BUDGET;
    let found = blocking::read(&ctx, "v3_trace_summaries", move |s| {
        let mut out: Vec<TraceSummary> = Vec::new();
        s.search(&q.query, Some(deadline), |trace, reader| {
            let spans = reader.skeletons(trace)?;
            if let Some((summary, counts)) = summarize(trace, &spans) {
                if q.diagnostics.iter().all(|p: &Problem| counts.has(*p)) {
                    out.push(summary);
                }
            }
            Ok(Flow::stop_if(out.len() >= q.query.limit))
        })?;
        Ok(out)
    })
    .await;
    match found {
        Ok(summaries) => Json(json!({ "summaries": summaries })).into_response(),
        Err(msg) => internal(msg),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    parent: String,
    child: String,
    /// uint64 in proto3 JSON: a decimal string.
    call_count: String,
}

async fn dependencies(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (start, end) = match params::dependencies(&params::query_pairs(raw.as_deref())) {
        Ok(w) => w,
        Err((name, why)) => return bad_parameter(&name, why),
    };
    match handlers::dependency_links(&ctx, start, end).await {
        Ok(links) => {
            let dependencies: Vec<Dependency> = links
                .into_iter()
                .map(|((parent, child), counts)| Dependency {
                    parent,
                    child,
                    call_count: counts.calls.to_string(),
                })
                .collect();
            Json(json!({ "dependencies": dependencies })).into_response()
        }
        Err(msg) => internal(msg),
    }
}
