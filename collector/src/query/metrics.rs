//! Jaeger UI's Monitor tab ("SPM"): `GET /api/metrics/{latencies|calls|errors}` and `/api/metrics/minstep`,
//! with the parameters jaeger-ui sends (`service` (repeated), `spanKind` (repeated, default server),
//! `groupByOperation`, `quantile`, `endTs`, `lookback`, `step`, `ratePer`; times in ms), answered from the
//! collector's own span metrics history in the shape of Jaeger's metrics protobuf (`MetricFamily`) as
//! proto3 JSON. A value that is not defined (a latency or an error rate without calls) is `"NaN"`, as
//! proto3 JSON writes it.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::envelope::error;
use super::params::{last, pairs};
use super::timestamp::format_rfc3339_ms;
use super::{now_us, QueryContext};
use crate::analytics::span_history::{Measure, Selector, Window};

/// The history's resolution: one minute.
pub const MIN_STEP_MS: u64 = 60_000;
/// Points one answer may hold (Prometheus' own cap on a range query).
const MAX_POINTS: u64 = 11_000;

pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/metrics/minstep", get(min_step))
        .route("/api/metrics/{metric}", get(metric))
}

#[derive(Serialize)]
struct Label {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricPoint {
    gauge_value: GaugeValue,
    timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GaugeValue {
    double_value: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    labels: Vec<Label>,
    metric_points: Vec<MetricPoint>,
}

#[derive(Serialize)]
struct MetricFamily {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    help: String,
    metrics: Vec<Metric>,
}

/// A parsed request: what to select, over which points.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    selector: Selector,
    window: Window,
}

fn span_kind(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("span_kind_").unwrap_or(&name);
    Some(match name {
        "unspecified" => 0,
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => return None,
    })
}

fn parse(raw: Option<&str>, now_ms: u64) -> Result<Request, String> {
    let pairs = pairs(raw);
    let services: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "service" && !v.is_empty())
        .flat_map(|(_, v)| v.split(',').map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    if services.is_empty() {
        return Err(
            "unable to parse param 'service': please provide at least one service name".into(),
        );
    }
    let mut kinds = Vec::new();
    for (_, v) in pairs
        .iter()
        .filter(|(k, v)| k == "spanKind" && !v.is_empty())
    {
        kinds.push(span_kind(v).ok_or_else(|| {
            format!("unable to parse param 'spanKind': unsupported span kind {v:?}")
        })?);
    }
    if kinds.is_empty() {
        kinds.push(2);
    }
    let by_operation = match last(&pairs, "groupByOperation").map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(format!(
                "unable to parse param 'groupByOperation': {other:?} is not a boolean"
            ))
        }
    };
    let ms = |key: &str, default: u64| -> Result<u64, String> {
        last(&pairs, key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    format!(
                        "unable to parse param '{key}': {v:?} is not a non-negative integer (ms)"
                    )
                })
            })
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let window = Window {
        end_ms: ms("endTs", now_ms)?,
        lookback_ms: ms("lookback", 3_600_000)?,
        step_ms: ms("step", 5_000)?,
        rate_ms: ms("ratePer", 600_000)?,
    };
    if window.step_ms == 0 || window.rate_ms == 0 {
        return Err("'step' and 'ratePer' must be positive".into());
    }
    if window.lookback_ms / window.step_ms >= MAX_POINTS {
        return Err(format!(
            "'lookback' / 'step' asks for more than {MAX_POINTS} points; use a larger step"
        ));
    }
    Ok(Request {
        selector: Selector {
            services,
            kinds,
            by_operation,
        },
        window,
    })
}

fn family(name: &str, help: String, by_operation: bool, metrics: Vec<Metric>) -> MetricFamily {
    let (name, help) = if by_operation {
        (
            name.replacen("service", "service_operation", 1),
            format!("{help} & operation"),
        )
    } else {
        (name.to_string(), help)
    };
    MetricFamily {
        name,
        kind: "GAUGE",
        help,
        metrics,
    }
}

async fn metric(
    State(ctx): State<QueryContext>,
    Path(metric): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let now_ms = now_us() / 1_000;
    let request = match parse(raw.as_deref(), now_ms) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let (measure, name, help) = match metric.as_str() {
        "latencies" => {
            let q = pairs(raw.as_deref());
            let Some(Ok(q)) = last(&q, "quantile").map(|v| v.trim().parse::<f64>()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unable to parse param 'quantile': a number between 0 and 1 is required".into(),
                );
            };
            if !(0.0..=1.0).contains(&q) {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unable to parse param 'quantile': {q} is not between 0 and 1"),
                );
            }
            (
                Measure::Latency(q),
                "service_latencies",
                format!("{q:.2}th quantile latency, grouped by service"),
            )
        }
        "calls" => (
            Measure::CallRate,
            "service_call_rate",
            "calls/sec, grouped by service".to_string(),
        ),
        "errors" => (
            Measure::ErrorRate,
            "service_error_rate",
            "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service"
                .to_string(),
        ),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no metric {metric:?}: latencies, calls or errors"),
            )
        }
    };
    let answers = ctx
        .span_history
        .query(&request.selector, measure, request.window, now_ms);
    let metrics = answers
        .into_iter()
        .map(|a| {
            let mut labels = vec![Label {
                name: "service_name",
                value: a.service,
            }];
            if let Some(op) = a.operation {
                labels.push(Label {
                    name: "operation",
                    value: op,
                });
            }
            Metric {
                labels,
                metric_points: a
                    .points
                    .into_iter()
                    .map(|(t, v)| MetricPoint {
                        gauge_value: GaugeValue {
                            double_value: v
                                .and_then(serde_json::Number::from_f64)
                                .map_or_else(|| json!("NaN"), Value::Number),
                        },
                        timestamp: format_rfc3339_ms(t),
                    })
                    .collect(),
            }
        })
        .collect();
    Json(family(name, help, request.selector.by_operation, metrics)).into_response()
}

/// The smallest step worth asking for: the history's one-minute resolution (Jaeger's structured
/// response, `data` in ms).
async fn min_step() -> Response {
    Json(json!({"data": MIN_STEP_MS, "total": 0, "limit": 0, "offset": 0, "errors": []}))
        .into_response()
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
    fn parses_what_the_monitor_tab_sends() {
        let r = parse(
            Some("service=cart&quantile=0.95&endTs=1700000000000&lookback=3600000&step=60000&ratePer=600000&spanKind=server&groupByOperation=true"),
            0,
        )
        .unwrap();
        assert_eq!(r.selector.services, ["cart"]);
        assert_eq!(r.selector.kinds, [2]);
        assert!(r.selector.by_operation);
        assert_eq!(
            r.window,
            Window {
                end_ms: 1_700_000_000_000,
                lookback_ms: 3_600_000,
                step_ms: 60_000,
                rate_ms: 600_000
            }
        );
        assert_eq!(
            r.window.points().count(),
            61,
            "an hour of minutes, both ends included"
        );
        let d = parse(
            Some("service=a&service=b&spanKind=client&spanKind=SPAN_KIND_SERVER"),
            5_000_000,
        )
        .unwrap();
        assert_eq!(d.selector.services, ["a", "b"]);
        assert_eq!(d.selector.kinds, [3, 2]);
        assert_eq!(
            d.window,
            Window {
                end_ms: 5_000_000,
                lookback_ms: 3_600_000,
                step_ms: 5_000,
                rate_ms: 600_000
            },
            "Jaeger's defaults: now, 1 h, 5 s, 10 min"
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (raw, why) in [
            ("spanKind=server", "no service"),
            ("service=a&spanKind=weird", "unknown kind"),
            ("service=a&groupByOperation=maybe", "not a boolean"),
            ("service=a&endTs=yesterday", "not ms"),
            ("service=a&step=0", "zero step"),
            ("service=a&lookback=86400000&step=1", "too many points"),
        ] {
            assert!(parse(Some(raw), 0).is_err(), "{why}: {raw}");
        }
    }
}
