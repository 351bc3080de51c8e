//! Zipkin's query API v2 on the Zipkin port, next to its span receiver: services, span names, remote
//! services, trace search, one or many traces by id, dependencies and tag autocompletion, in Zipkin's
//! JSON v2 model (`model`). Errors are plain text, as Zipkin's server answers them.

mod model;

use std::time::Instant;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::params::{last, pairs};
use super::{aliases, blocking, handlers, now_us, QueryContext, RECENT_TRACES, SEARCH_BUDGET};
use crate::model::{parse_trace_id, SpanRecord};
use crate::store::{Flow, ScanFilter, TraceQuery};

/// Zipkin's default number of traces a search returns.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 10_000;
/// Zipkin's default `QUERY_LOOKBACK`: one day (ms).
const DEFAULT_LOOKBACK_MS: u64 = 86_400_000;
/// The tag keys `/api/v2/autocompleteKeys` offers (Zipkin's `AUTOCOMPLETE_KEYS`), legacy and stable
/// names alike; only those seen in recent traces are listed.
pub const AUTOCOMPLETE_KEYS: [&str; 12] = [
    "http.method",
    "http.request.method",
    "http.status_code",
    "http.response.status_code",
    "http.route",
    "error",
    "peer.service",
    "server.address",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "meshtrace.context.source",
];

pub fn router(ctx: QueryContext) -> Router {
    Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{trace_id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(autocomplete_keys))
        .route("/api/v2/autocompleteValues", get(autocomplete_values))
        .route_layer(middleware::from_fn_with_state(ctx.clone(), require_token))
        .layer(super::compression())
        .with_state(ctx)
}

fn text_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

fn bad(message: impl Into<String>) -> Response {
    text_error(StatusCode::BAD_REQUEST, message)
}

fn internal(message: String) -> Response {
    text_error(StatusCode::INTERNAL_SERVER_ERROR, message)
}

async fn require_token(State(ctx): State<QueryContext>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !ctx.auth.allows(authorization) {
        return text_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    next.run(request).await
}

async fn services(State(ctx): State<QueryContext>) -> Response {
    match blocking::read(&ctx, "zipkin_services", |s| s.services()).await {
        Ok(services) => Json(services).into_response(),
        Err(msg) => internal(msg),
    }
}

fn service_param(raw: Option<&str>) -> Result<String, String> {
    last(&pairs(raw), "serviceName")
        .map(str::to_string)
        .ok_or_else(|| "serviceName is required".to_string())
}

async fn span_names(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let service = match service_param(raw.as_deref()) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    match blocking::read(&ctx, "zipkin_spans", move |s| s.operations(&service, None)).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(name, _)| name).collect();
            names.sort();
            names.dedup();
            Json(names).into_response()
        }
        Err(msg) => internal(msg),
    }
}

/// The peers a service's spans call (`peer.service`, else `server.address`), from its recent traces.
async fn remote_services(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let service = match service_param(raw.as_deref()) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let filter = ScanFilter {
        service: Some(service.clone()),
        end_us: u64::MAX,
        ..Default::default()
    };
    let deadline = Instant::now() + SEARCH_BUDGET;
    let found = blocking::read(&ctx, "zipkin_remote_services", move |s| {
        let mut peers = std::collections::BTreeSet::new();
        let mut seen = 0usize;
        s.scan(&filter, Some(deadline), |c, reader| {
            for r in reader
                .records(&c.trace)?
                .iter()
                .filter(|r| r.service_name() == service)
            {
                let peer = ["peer.service", "server.address"]
                    .iter()
                    .find_map(|k| r.span.attributes.iter().find(|kv| kv.key == *k))
                    .and_then(crate::model::attribute_string);
                peers.extend(peer);
            }
            seen += 1;
            Ok(Flow::stop_if(seen >= RECENT_TRACES))
        })?;
        Ok(peers)
    })
    .await;
    match found {
        Ok(peers) => Json(peers).into_response(),
        Err(msg) => internal(msg),
    }
}

/// A term of `annotationQuery`: `key=value` (a tag) or a bare word (an annotation, or a tag key).
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Tag(String, String),
    Word(String),
}

fn annotation_query(q: &str) -> Vec<Term> {
    q.split(" and ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => Term::Tag(k.trim().to_string(), v.trim().to_string()),
            None => Term::Word(t.to_string()),
        })
        .collect()
}

fn has_word(rec: &SpanRecord, word: &str) -> bool {
    rec.span.events.iter().any(|e| e.name == word)
        || aliases::keys_for(word).iter().any(|k| {
            rec.span
                .attributes
                .iter()
                .chain(&rec.resource.attributes)
                .any(|kv| &kv.key == k)
        })
}

fn ms_param(p: &[(String, String)], key: &str) -> Result<Option<u64>, String> {
    last(p, key)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{key} must be a non-negative integer, not {v:?}"))
        })
        .transpose()
}

async fn traces(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let p = pairs(raw.as_deref());
    let (end_ms, lookback_ms, min, max, limit) = match (
        ms_param(&p, "endTs"),
        ms_param(&p, "lookback"),
        ms_param(&p, "minDuration"),
        ms_param(&p, "maxDuration"),
        ms_param(&p, "limit"),
    ) {
        (Ok(e), Ok(l), Ok(min), Ok(max), Ok(limit)) => (e, l, min, max, limit),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return bad(e)
        }
    };
    let end_ms = end_ms.unwrap_or(now_us() / 1_000);
    let lookback_ms = lookback_ms.unwrap_or(DEFAULT_LOOKBACK_MS);
    let terms = last(&p, "annotationQuery")
        .map(annotation_query)
        .unwrap_or_default();
    let span_name = last(&p, "spanName")
        .filter(|n| *n != "all")
        .map(str::to_string);
    let q = TraceQuery {
        service: last(&p, "serviceName").map(str::to_string),
        operation: span_name,
        tags: terms
            .iter()
            .filter_map(|t| match t {
                Term::Tag(k, v) => Some(aliases::tag(k, v)),
                Term::Word(_) => None,
            })
            .collect(),
        start_us: end_ms.saturating_sub(lookback_ms).saturating_mul(1_000),
        end_us: end_ms.saturating_mul(1_000).saturating_add(999),
        min_duration_us: min,
        max_duration_us: max,
        limit: limit.map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(l).unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT)
        }),
    };
    let words: Vec<String> = terms
        .into_iter()
        .filter_map(|t| match t {
            Term::Word(w) => Some(w),
            Term::Tag(..) => None,
        })
        .collect();
    let deadline = Instant::now() + SEARCH_BUDGET;
    let found = blocking::read(&ctx, "zipkin_traces", move |s| {
        let mut out = Vec::new();
        s.search(&q, Some(deadline), |trace, reader| {
            let records = reader.records(trace)?;
            // Every condition, bare words included, on one span.
            if words.is_empty()
                || records
                    .iter()
                    .any(|r| q.matches(r) && words.iter().all(|w| has_word(r, w)))
            {
                out.push(model::trace(records));
            }
            Ok(Flow::stop_if(out.len() >= q.limit))
        })?;
        Ok(out)
    })
    .await;
    match found {
        Ok(traces) => Json(traces).into_response(),
        Err(msg) => internal(msg),
    }
}

async fn trace(State(ctx): State<QueryContext>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = parse_trace_id(id.trim()) else {
        return bad(format!(
            "invalid trace id {id:?}: expected 16 or 32 hex digits"
        ));
    };
    match blocking::read(&ctx, "zipkin_trace", move |s| s.trace(&trace_id)).await {
        Ok(records) if records.is_empty() => {
            text_error(StatusCode::NOT_FOUND, format!("trace {id} not found"))
        }
        Ok(records) => Json(model::trace(records)).into_response(),
        Err(msg) => internal(msg),
    }
}

async fn trace_many(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let p = pairs(raw.as_deref());
    let list = last(&p, "traceIds").unwrap_or_default();
    let mut ids = Vec::new();
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match parse_trace_id(id) {
            Some(t) if !ids.contains(&t) => ids.push(t),
            Some(_) => return bad(format!("traceIds lists {id} twice")),
            None => return bad(format!("invalid trace id {id:?} in traceIds")),
        }
    }
    if ids.len() < 2 {
        return bad("traceIds needs at least two trace ids (use /api/v2/trace/{traceId} for one)");
    }
    match blocking::read(&ctx, "zipkin_trace_many", move |s| {
        let mut out = Vec::new();
        for id in &ids {
            let records = s.trace(id)?;
            if !records.is_empty() {
                out.push(model::trace(records));
            }
        }
        Ok(out)
    })
    .await
    {
        Ok(traces) => Json(traces).into_response(),
        Err(msg) => internal(msg),
    }
}

async fn dependencies(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let p = pairs(raw.as_deref());
    let (end_ms, lookback_ms) = match (ms_param(&p, "endTs"), ms_param(&p, "lookback")) {
        (Ok(Some(e)), Ok(l)) => (e, l.unwrap_or(DEFAULT_LOOKBACK_MS)),
        (Ok(None), _) => return bad("endTs is required"),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let end_us = end_ms.saturating_mul(1_000);
    match handlers::dependency_links(&ctx, end_us.saturating_sub(lookback_ms.saturating_mul(1_000)), end_us).await {
        Ok(links) => Json(
            links
                .into_iter()
                .map(|((parent, child), counts)| serde_json::json!({"parent": parent, "child": child, "callCount": counts.calls, "errorCount": counts.errors}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(msg) => internal(msg),
    }
}

/// Recent values of the autocomplete keys (or of one): key -> values.
async fn recent_tags(
    ctx: &QueryContext,
    key: Option<String>,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, String> {
    let filter = ScanFilter {
        end_us: u64::MAX,
        ..Default::default()
    };
    let deadline = Instant::now() + SEARCH_BUDGET;
    blocking::read(ctx, "zipkin_autocomplete", move |s| {
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        let mut seen = 0usize;
        s.scan(&filter, Some(deadline), |c, reader| {
            for r in reader.records(&c.trace)? {
                r.for_each_tag(|k, v| {
                    let wanted = key
                        .as_deref()
                        .map_or(AUTOCOMPLETE_KEYS.contains(&k), |want| want == k);
                    if wanted {
                        out.entry(k.to_string()).or_default().insert(v.to_string());
                    }
                });
            }
            seen += 1;
            Ok(Flow::stop_if(seen >= RECENT_TRACES))
        })?;
        Ok(out)
    })
    .await
}

async fn autocomplete_keys(State(ctx): State<QueryContext>) -> Response {
    match recent_tags(&ctx, None).await {
        Ok(tags) => Json(tags.into_keys().collect::<Vec<_>>()).into_response(),
        Err(msg) => internal(msg),
    }
}

async fn autocomplete_values(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let Some(key) = last(&pairs(raw.as_deref()), "key").map(str::to_string) else {
        return bad("key is required");
    };
    if !AUTOCOMPLETE_KEYS.contains(&key.as_str()) {
        // As Zipkin: a key that is not configured for autocompletion has no values.
        return Json(Vec::<String>::new()).into_response();
    }
    match recent_tags(&ctx, Some(key.clone())).await {
        Ok(mut tags) => Json(tags.remove(&key).unwrap_or_default()).into_response(),
        Err(msg) => internal(msg),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn annotation_queries_split_into_tags_and_words() {
        assert_eq!(
            annotation_query("http.uri=/foo and retried and error"),
            vec![
                Term::Tag("http.uri".into(), "/foo".into()),
                Term::Word("retried".into()),
                Term::Word("error".into())
            ]
        );
        assert_eq!(
            annotation_query(" http.status_code = 500 "),
            vec![Term::Tag("http.status_code".into(), "500".into())]
        );
        assert!(annotation_query("").is_empty());
    }
}
