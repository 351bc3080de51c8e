//! Tag names and values for Grafana's query editor: `/api/search/tags` and `/api/v2/search/tags` (names
//! by scope), `/api/search/tag/{name}/values` and `/api/v2/search/tag/{field}/values` (typed values,
//! scoped by a TraceQL filter in `q`). Like Tempo without `start`/`end` reads its recent data, they read
//! the most recent traces (at most `RECENT_TRACES`, within `SAMPLE_BUDGET`), or those of the window.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::params::Params;
use super::text_error;
use crate::query::traceql::ast::{Field, FieldExpr, Intrinsic, Scope, SpansetExpr, Stage, Value};
use crate::query::traceql::{self, TraceView};
use crate::query::{blocking, QueryContext, RECENT_TRACES};
use crate::store::{Flow, ScanFilter};

const SAMPLE_BUDGET: Duration = Duration::from_secs(2);
/// Values returned for one tag, at most (unless `limit` says fewer).
const MAX_VALUES: usize = 1_000;

const INTRINSICS: [&str; 16] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
    "span:duration",
    "span:kind",
    "span:name",
    "span:status",
    "span:statusMessage",
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
];

/// The condition of `q` on one span, when `q` is a single spanset filter; anything else (including a
/// query that does not parse, as Grafana sends half-typed ones) scopes nothing, as in Tempo.
fn scope_filter(q: Option<&str>) -> Option<FieldExpr> {
    let query = traceql::parse(q?).ok()?;
    match query.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Filter(f))] => f.clone(),
        _ => None,
    }
}

/// Runs `each` on every span (of the sample) that passes `filter`.
async fn sample<T: Default + Send + 'static>(
    ctx: &QueryContext,
    params: &Params,
    filter: Option<FieldExpr>,
    mut acc: T,
    each: impl Fn(&TraceView, usize, &mut T) + Send + 'static,
) -> Result<T, Response> {
    let (start_us, end_us) = params
        .window()
        .map_err(|e| text_error(StatusCode::BAD_REQUEST, e))?
        .unwrap_or((0, u64::MAX));
    let scan = ScanFilter {
        start_us,
        end_us,
        ..Default::default()
    };
    let deadline = Instant::now() + SAMPLE_BUDGET;
    blocking::read(ctx, "tempo_tags", move |s| {
        let mut seen = 0usize;
        s.scan(&scan, Some(deadline), |c, reader| {
            let records = reader.records(&c.trace)?;
            let view = TraceView::new(&records);
            for i in 0..view.spans.len() {
                if filter.as_ref().is_none_or(|f| view.test(f, i)) {
                    each(&view, i, &mut acc);
                }
            }
            seen += 1;
            Ok(Flow::stop_if(seen >= RECENT_TRACES))
        })?;
        Ok(acc)
    })
    .await
    .map_err(|msg| text_error(StatusCode::INTERNAL_SERVER_ERROR, msg))
}

#[derive(Default)]
struct Names {
    span: BTreeSet<String>,
    resource: BTreeSet<String>,
}

async fn names(ctx: &QueryContext, params: &Params) -> Result<Names, Response> {
    let filter = scope_filter(params.get("q"));
    sample(ctx, params, filter, Names::default(), |view, i, names| {
        if let Some(rec) = view.spans.get(i) {
            names
                .span
                .extend(rec.span.attributes.iter().map(|kv| kv.key.clone()));
            names
                .resource
                .extend(rec.resource.attributes.iter().map(|kv| kv.key.clone()));
        }
    })
    .await
}

fn scope_param(params: &Params) -> Result<String, String> {
    const SCOPES: [&str; 7] = [
        "all",
        "resource",
        "span",
        "intrinsic",
        "event",
        "link",
        "instrumentation",
    ];
    let scope = params.get("scope").unwrap_or("all").to_string();
    if SCOPES.contains(&scope.as_str()) {
        Ok(scope)
    } else {
        Err(format!(
            "invalid scope {scope:?}: expected one of {}",
            SCOPES.join(", ")
        ))
    }
}

/// The `scope` parameter and the attribute names the tag endpoints answer from.
async fn scoped_names(ctx: &QueryContext, raw: Option<&str>) -> Result<(String, Names), Response> {
    let params = Params::new(raw);
    let scope = scope_param(&params).map_err(|e| text_error(StatusCode::BAD_REQUEST, e))?;
    Ok((scope, names(ctx, &params).await?))
}

/// `/api/search/tags`: every span and resource attribute name.
pub async fn names_v1(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (scope, names) = match scoped_names(&ctx, raw.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let mut all = BTreeSet::new();
    if matches!(scope.as_str(), "all" | "span") {
        all.extend(names.span);
    }
    if matches!(scope.as_str(), "all" | "resource") {
        all.extend(names.resource);
    }
    if scope == "intrinsic" {
        all.extend(INTRINSICS.iter().map(|s| s.to_string()));
    }
    Json(json!({ "tagNames": all, "metrics": {} })).into_response()
}

/// `/api/v2/search/tags`: names by scope (resource, span, intrinsic).
pub async fn names_v2(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let (scope, names) = match scoped_names(&ctx, raw.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let mut scopes = Vec::new();
    let wanted = |s: &str| scope == "all" || scope == s;
    if wanted("resource") {
        scopes.push(json!({ "name": "resource", "tags": names.resource }));
    }
    if wanted("span") {
        scopes.push(json!({ "name": "span", "tags": names.span }));
    }
    if wanted("intrinsic") {
        scopes.push(json!({ "name": "intrinsic", "tags": INTRINSICS }));
    }
    Json(json!({ "scopes": scopes, "metrics": {} })).into_response()
}

fn value_limit(params: &Params) -> Result<usize, String> {
    match params.get("limit").map(|v| v.trim().parse::<usize>()) {
        None | Some(Ok(0)) => Ok(MAX_VALUES),
        Some(Ok(n)) => Ok(n.min(MAX_VALUES)),
        Some(Err(_)) => Err("invalid limit: not a non-negative integer".into()),
    }
}

/// A value's TraceQL type name and text, as Tempo lists them.
fn typed(v: &Value) -> Option<(&'static str, String)> {
    Some(match v {
        Value::Str(s) => ("string", s.clone()),
        Value::Int(i) => ("int", i.to_string()),
        Value::Float(f) => ("float", f.to_string()),
        Value::Bool(b) => ("bool", b.to_string()),
        _ => return None,
    })
}

/// The values of `field` on the sampled spans that pass `filter`, as (text, type).
async fn values(
    ctx: &QueryContext,
    params: &Params,
    field: Field,
    filter: Option<FieldExpr>,
    limit: usize,
) -> Result<BTreeSet<(String, &'static str)>, Response> {
    sample(
        ctx,
        params,
        filter,
        BTreeSet::new(),
        move |view, i, out: &mut BTreeSet<(String, &'static str)>| {
            if out.len() >= limit {
                return;
            }
            let values = match view.value(i, &field) {
                Value::Array(items) => items,
                v => vec![v],
            };
            for v in values {
                if let Some((kind, text)) = typed(&v) {
                    out.insert((text, kind));
                }
            }
        },
    )
    .await
}

/// `/api/search/tag/{name}/values`: the values of a span or resource attribute, as text.
pub async fn values_v1(
    State(ctx): State<QueryContext>,
    Path(tag): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::new(raw.as_deref());
    let limit = match value_limit(&params) {
        Ok(l) => l,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, e),
    };
    let field = Field::Attribute {
        scope: Scope::Any,
        name: tag,
    };
    match values(&ctx, &params, field, None, limit).await {
        Ok(v) => {
            let texts: BTreeSet<String> = v.into_iter().map(|(text, _)| text).collect();
            Json(json!({ "tagValues": texts, "metrics": {} })).into_response()
        }
        Err(r) => r,
    }
}

/// `/api/v2/search/tag/{field}/values`: typed values of a TraceQL field (`resource.service.name`,
/// `.http.method`, `name`, `status`, ...), restricted to spans matching `q`.
pub async fn values_v2(
    State(ctx): State<QueryContext>,
    Path(tag): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::new(raw.as_deref());
    let limit = match value_limit(&params) {
        Ok(l) => l,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, e),
    };
    let field = match traceql::parse_field(&tag) {
        Ok(f) => f,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, format!("invalid tag {tag:?}: {e}")),
    };
    let keywords: &[&str] = match field {
        Field::Intrinsic(Intrinsic::Status) => &["ok", "error", "unset"],
        Field::Intrinsic(Intrinsic::Kind) => &[
            "client",
            "server",
            "producer",
            "consumer",
            "internal",
            "unspecified",
        ],
        Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => &[],
        _ => {
            let filter = scope_filter(params.get("q"));
            return match values(&ctx, &params, field, filter, limit).await {
                Ok(v) => {
                    let list: Vec<_> = v
                        .into_iter()
                        .map(|(value, kind)| json!({ "type": kind, "value": value }))
                        .collect();
                    Json(json!({ "tagValues": list, "metrics": {} })).into_response()
                }
                Err(r) => r,
            };
        }
    };
    let list: Vec<_> = keywords
        .iter()
        .map(|k| json!({ "type": "keyword", "value": k }))
        .collect();
    Json(json!({ "tagValues": list, "metrics": {} })).into_response()
}
