//! `GET /api/search`: TraceQL in `q`, or Tempo's legacy `tags` (logfmt) with `minDuration`/`maxDuration`
//! (trace durations), both bounded by `limit`, `spss`, `start`/`end` and the search time budget. The
//! store's search entries find candidate traces (see `traceql::plan`), each is read and evaluated, and
//! the matches are answered as Tempo's `SearchResponse` JSON, newest first.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value as JsonValue};

use super::params::Params;
use super::text_error;
use crate::model::SpanRecord;
use crate::query::traceql::ast::*;
use crate::query::traceql::{self, plan, Spanset, TraceView};
use crate::query::{blocking, logfmt, QueryContext, SEARCH_BUDGET};
use crate::store::Flow;

/// What Tempo writes when a trace's root span has not arrived.
const NO_ROOT: &str = "<root span not yet received>";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TempoSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    name: String,
    start_time_unix_nano: String,
    duration_nanos: String,
    attributes: Vec<JsonValue>,
}

#[derive(Serialize, Clone)]
struct TempoSpanset {
    spans: Vec<JsonValue>,
    matched: usize,
    attributes: Vec<JsonValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStats {
    span_count: u32,
    error_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    trace_id: String,
    root_service_name: String,
    root_trace_name: String,
    start_time_unix_nano: String,
    duration_ms: u64,
    /// Deprecated in Tempo but still filled (the first spanset), as Tempo does for older Grafanas.
    span_set: TempoSpanset,
    span_sets: Vec<TempoSpanset>,
    service_stats: BTreeMap<String, ServiceStats>,
}

/// Go's `time.Duration` string (`1.5s`, `150ms`, `2m30s`), as Tempo writes durations.
pub fn go_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let n = ns.unsigned_abs();
    let trim = |v: f64| {
        let s = format!("{v:.9}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if n == 0 {
        return "0s".into();
    }
    let body = if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", trim(n as f64 / 1e3))
    } else if n < 1_000_000_000 {
        format!("{}ms", trim(n as f64 / 1e6))
    } else {
        let h = n / 3_600_000_000_000;
        let m = (n / 60_000_000_000) % 60;
        let s = trim((n % 60_000_000_000) as f64 / 1e9);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m{s}s"),
            _ => format!("{h}h{m}m{s}s"),
        }
    };
    format!("{sign}{body}")
}

/// A value as an OTLP `AnyValue` in JSON (64-bit integers as strings).
fn any_value(v: &Value) -> Option<JsonValue> {
    Some(match v {
        Value::Str(s) => json!({ "stringValue": s }),
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Float(f) => json!({ "doubleValue": f }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Duration(d) => json!({ "stringValue": go_duration(*d) }),
        Value::Status(s) => {
            json!({ "stringValue": match s { Status::Ok => "ok", Status::Error => "error", Status::Unset => "unset" } })
        }
        Value::Kind(k) => json!({ "stringValue": match k {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        } }),
        Value::Array(items) => {
            json!({ "arrayValue": { "values": items.iter().filter_map(any_value).collect::<Vec<_>>() } })
        }
        Value::Nil => return None,
    })
}

fn key_value(key: &str, v: &Value) -> Option<JsonValue> {
    any_value(v).map(|value| json!({ "key": key, "value": value }))
}

/// The fields a query looks at (shown on the spans it returns), `select(...)`ed fields last.
fn shown_fields(query: &Query) -> Vec<Field> {
    fn operand(o: &Operand, out: &mut Vec<Field>) {
        if let Operand::Field(f) = o {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    fn field_expr(e: &FieldExpr, out: &mut Vec<Field>) {
        match e {
            FieldExpr::And(a, b) | FieldExpr::Or(a, b) => {
                field_expr(a, out);
                field_expr(b, out);
            }
            FieldExpr::Not(a) => field_expr(a, out),
            FieldExpr::Compare { left, right, .. } => {
                operand(left, out);
                operand(right, out);
            }
            FieldExpr::Truthy(o) => operand(o, out),
        }
    }
    fn spanset(e: &SpansetExpr, out: &mut Vec<Field>) {
        match e {
            SpansetExpr::Filter(Some(f)) => field_expr(f, out),
            SpansetExpr::Filter(None) => {}
            SpansetExpr::Op(_, l, r) => {
                spanset(l, out);
                spanset(r, out);
            }
        }
    }
    let mut out = Vec::new();
    for stage in &query.stages {
        match stage {
            Stage::Spanset(e) => spanset(e, &mut out),
            Stage::Select(fields) => fields
                .iter()
                .for_each(|f| operand(&Operand::Field(f.clone()), &mut out)),
            _ => {}
        }
    }
    // Name and duration are fields of every returned span already.
    out.retain(|f| !matches!(f, Field::Intrinsic(Intrinsic::Name | Intrinsic::Duration)));
    out
}

/// The key a field's value is shown under (attributes without their scope, as Tempo shows them).
fn shown_key(field: &Field) -> String {
    match field {
        Field::Attribute { name, .. } => name.clone(),
        Field::Intrinsic(i) => i.name().to_string(),
    }
}

fn metadata(
    view: &TraceView,
    sets: &[Spanset],
    fields: &[Field],
    spss: usize,
) -> TraceSearchMetadata {
    let service_of = |i: usize| {
        view.spans
            .get(i)
            .map(|r| r.service_name().to_string())
            .unwrap_or_default()
    };
    let spansets: Vec<TempoSpanset> = sets
        .iter()
        .map(|set| TempoSpanset {
            matched: set.spans.len(),
            spans: set
                .spans
                .iter()
                .take(spss)
                .filter_map(|i| {
                    let rec = view.spans.get(*i)?;
                    let mut attributes: Vec<JsonValue> = fields
                        .iter()
                        .filter_map(|f| key_value(&shown_key(f), &view.value(*i, f)))
                        .collect();
                    if !fields.iter().any(|f| shown_key(f) == "service.name") {
                        attributes.extend(key_value("service.name", &Value::Str(service_of(*i))));
                    }
                    serde_json::to_value(TempoSpan {
                        span_id: hex::encode(rec.span_id),
                        name: rec.span.name.clone(),
                        start_time_unix_nano: rec.span.start_time_unix_nano.to_string(),
                        duration_nanos: rec
                            .span
                            .end_time_unix_nano
                            .saturating_sub(rec.span.start_time_unix_nano)
                            .to_string(),
                        attributes,
                    })
                    .ok()
                })
                .collect(),
            attributes: set
                .attributes
                .iter()
                .filter_map(|(k, v)| key_value(k, v))
                .collect(),
        })
        .collect();
    let mut stats: BTreeMap<String, ServiceStats> = BTreeMap::new();
    for rec in &view.spans {
        let s = stats
            .entry(rec.service_name().to_string())
            .or_insert(ServiceStats {
                span_count: 0,
                error_count: 0,
            });
        s.span_count += 1;
        s.error_count += u32::from(rec.is_error());
    }
    let root = view.root.and_then(|r| view.spans.get(r));
    let trace_id = view
        .spans
        .first()
        .map(|r| hex::encode(r.trace_id))
        .unwrap_or_default();
    TraceSearchMetadata {
        // Tempo writes trace ids without leading zeros.
        trace_id: match trace_id.trim_start_matches('0') {
            "" => "0".to_string(),
            t => t.to_string(),
        },
        root_service_name: root
            .map_or_else(|| NO_ROOT.to_string(), |r| r.service_name().to_string()),
        root_trace_name: root.map(|r| r.span.name.clone()).unwrap_or_default(),
        start_time_unix_nano: view.start_ns.to_string(),
        duration_ms: view.end_ns.saturating_sub(view.start_ns) / 1_000_000,
        span_set: spansets.first().cloned().unwrap_or(TempoSpanset {
            spans: Vec::new(),
            matched: 0,
            attributes: Vec::new(),
        }),
        span_sets: spansets,
        service_stats: stats,
    }
}

/// Tempo's legacy tag search as a TraceQL query: every tag on one span (`service.name`, `name`,
/// `status.code` and `error=true` read as what they mean), the durations on the whole trace.
fn legacy_query(
    tags: &[(String, String)],
    min_ns: Option<i64>,
    max_ns: Option<i64>,
) -> Result<Query, String> {
    let compare = |field: Field, op: CmpOp, value: Value| FieldExpr::Compare {
        left: Operand::Field(field),
        op,
        right: Operand::Static(value),
        regex: None,
    };
    let mut conditions: Vec<FieldExpr> = Vec::new();
    for (k, v) in tags {
        conditions.push(match k.as_str() {
            "service.name" => compare(
                Field::Attribute {
                    scope: Scope::Resource,
                    name: k.clone(),
                },
                CmpOp::Eq,
                Value::Str(v.clone()),
            ),
            "name" => compare(Field::Intrinsic(Intrinsic::Name), CmpOp::Eq, Value::Str(v.clone())),
            "status.code" | "error" => {
                let status = match (k.as_str(), v.as_str()) {
                    ("error", "true") | ("status.code", "error") => Status::Error,
                    ("status.code", "ok") => Status::Ok,
                    ("status.code", "unset") => Status::Unset,
                    _ => return Err(format!("invalid tags: {k}={v:?} (status.code is ok, error or unset; error is true)")),
                };
                compare(Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Value::Status(status))
            }
            _ => {
                let field = Field::Attribute {
                    scope: Scope::Any,
                    name: k.clone(),
                };
                // The value as typed: the tag 500 finds the int attribute 500 and the string "500".
                let value = v.parse::<i64>().map(Value::Int).unwrap_or_else(|_| Value::Str(v.clone()));
                compare(field, CmpOp::Eq, value)
            }
        });
    }
    let filter = conditions
        .into_iter()
        .reduce(|a, b| FieldExpr::And(Box::new(a), Box::new(b)));
    let mut stages = vec![Stage::Spanset(SpansetExpr::Filter(filter))];
    for (ns, op) in [(min_ns, CmpOp::Gte), (max_ns, CmpOp::Lte)] {
        if let Some(ns) = ns {
            stages.push(Stage::Spanset(SpansetExpr::Filter(Some(compare(
                Field::Intrinsic(Intrinsic::TraceDuration),
                op,
                Value::Duration(ns),
            )))));
        }
    }
    Ok(Query { stages })
}

pub async fn search(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let params = Params::new(raw.as_deref());
    let bad = |msg: String| text_error(StatusCode::BAD_REQUEST, msg);
    let (limit, spss, window) = match (params.limit(), params.spss(), params.window()) {
        (Ok(l), Ok(s), Ok(w)) => (l, s, w),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    };
    let query = match params.get("q") {
        Some(q) if !q.trim().is_empty() => match traceql::parse(q) {
            Ok(query) => query,
            Err(e) => return bad(format!("invalid TraceQL query: {e}")),
        },
        _ => {
            let tags = match params.get("tags").map(logfmt::parse).transpose() {
                Ok(t) => t.unwrap_or_default(),
                Err(e) => return bad(format!("invalid tags: {e}")),
            };
            let (min, max) = match (
                params.duration_ns("minDuration"),
                params.duration_ns("maxDuration"),
            ) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return bad(e),
            };
            match legacy_query(&tags, min, max) {
                Ok(q) => q,
                Err(e) => return bad(e),
            }
        }
    };
    let mut candidates = plan::candidates(&query);
    let (start_us, end_us) = window.unwrap_or((0, u64::MAX));
    candidates.start_us = start_us;
    candidates.end_us = end_us;
    candidates.limit = limit;
    let fields = shown_fields(&query);
    let deadline = Instant::now() + SEARCH_BUDGET;
    let found = blocking::read(&ctx, "tempo_search", move |s| {
        let mut traces = Vec::new();
        let mut inspected = 0usize;
        s.search(&candidates, Some(deadline), |trace, reader| {
            inspected += 1;
            let records: Vec<SpanRecord> = reader.records(trace)?;
            let view = TraceView::new(&records);
            let sets = view.run(&query);
            if !sets.is_empty() {
                traces.push(metadata(&view, &sets, &fields, spss));
            }
            Ok(Flow::stop_if(traces.len() >= limit))
        })?;
        Ok((traces, inspected))
    })
    .await;
    match found {
        Ok((traces, inspected)) => Json(json!({
            "traces": traces,
            "metrics": { "inspectedTraces": inspected, "inspectedBytes": "0", "completedJobs": 1, "totalJobs": 1 }
        }))
        .into_response(),
        Err(msg) => text_error(StatusCode::INTERNAL_SERVER_ERROR, msg),
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
    fn durations_read_as_go_writes_them() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (150_000_000, "150ms"),
            (1_500_000_000, "1.5s"),
            (150_000_000_000, "2m30s"),
            (3_723_000_000_000, "1h2m3s"),
            (-5_000_000_000, "-5s"),
        ];
        for (ns, want) in cases {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn legacy_tags_become_one_span_conditions() {
        let tags = vec![
            ("service.name".to_string(), "cart".to_string()),
            ("http.status_code".to_string(), "500".to_string()),
            ("error".to_string(), "true".to_string()),
        ];
        let q = legacy_query(&tags, Some(1_000), None).unwrap();
        assert_eq!(q.stages.len(), 2, "the filter, then the trace duration");
        let p = plan::candidates(&q);
        assert_eq!(p.service.as_deref(), Some("cart"));
        assert_eq!(p.tags.len(), 2, "{:?}", p.tags);
        assert!(legacy_query(&[("status.code".into(), "bad".into())], None, None).is_err());
        let fields = shown_fields(&q);
        let keys: Vec<String> = fields.iter().map(shown_key).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "http.status_code",
                "status",
                "traceDuration"
            ]
        );
    }
}
