//! Jaeger's API v3 and meshtrace's trace diagnostics over real sockets, against a collector filled over
//! OTLP (and Zipkin): what Jaeger UI's search page and the trace viewer read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod fixtures;

use common::*;
use fixtures::*;
use serde_json::{json, Value};

fn window() -> String {
    format!("query.startTimeMin={WINDOW_MIN}&query.startTimeMax={WINDOW_MAX}")
}

fn summary_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["summaries"]
        .as_array()
        .unwrap_or_else(|| panic!("no summaries: {v}"))
        .iter()
        .map(|s| s["traceId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The trace ids in an OTLP JSON `{"result": {"resourceSpans": [...]}}`.
fn otlp_trace_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["result"]["resourceSpans"]
        .as_array()
        .unwrap_or_else(|| panic!("not OTLP JSON: {v}"))
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap().iter())
        .flat_map(|ss| ss["spans"].as_array().unwrap().iter())
        .map(|s| s["traceId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn diagnostics_say_where_a_trace_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;
    let span = |n: u64| hex::encode(span_id(n));

    let (s, v) = get_json(
        &c,
        &format!("/api/meshtrace/traces/{}/diagnostics", m.checkout),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({
            "traceId": m.checkout, "spanCount": 5, "orphans": [],
            "roots": [{"spanId": span(1), "service": "api-gateway", "name": "GET /checkout"}],
            "untracedCallees": [], "clockSkew": [],
            "contextSources": [
                {"spanId": span(1), "service": "api-gateway", "name": "GET /checkout", "source": "none"},
                {"spanId": span(3), "service": "order-service", "name": "POST /orders", "source": "tracecontext"},
                {"spanId": span(5), "service": "payment-service", "name": "POST /pay", "source": "b3"}
            ]
        }),
        "a healthy trace: one root and where each hop's context came from"
    );

    let (_, v) = get_json(
        &c,
        &format!("/api/meshtrace/traces/{}/diagnostics", m.split),
    )
    .await;
    assert_eq!(
        v["orphans"],
        json!([{"spanId": span(7), "parentSpanId": span(6), "service": "payment-service", "name": "POST /pay"}])
    );
    assert_eq!(
        v["roots"].as_array().unwrap().len(),
        1,
        "the orphan is not a root: {v}"
    );
    let (_, v) = get_json(&c, &format!("/api/meshtrace/traces/{}/diagnostics", m.slow)).await;
    assert_eq!(
        v["untracedCallees"],
        json!([{"spanId": span(2), "service": "api-gateway", "name": "GET /render", "peer": "reporting.internal"}])
    );
    let (_, v) = get_json(
        &c,
        &format!("/api/meshtrace/traces/{}/diagnostics", m.failed),
    )
    .await;
    assert_eq!(
        v["clockSkew"],
        json!([{"spanId": span(2), "parentSpanId": span(1), "skewNanos": 2_000_000}])
    );

    // Unknown and malformed trace ids: grpc-gateway errors.
    let (s, v) = get_json(
        &c,
        &format!(
            "/api/meshtrace/traces/{}/diagnostics",
            hex::encode(trace_id(99, 9))
        ),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["httpCode"], 404);
    assert_eq!(v["error"]["grpcCode"], 5, "NOT_FOUND");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
    let (s, v) = get_json(&c, "/api/meshtrace/traces/xyz/diagnostics").await;
    assert_eq!((s, v["error"]["httpCode"].as_u64()), (400, Some(400)));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_v3_answers_like_jaeger_and_filters_by_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;

    let (s, v) = get_json(&c, "/api/v3/services").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"services": ["api-gateway", "legacy-app", "order-service", "payment-service"]})
    );
    let (_, v) = get_json(&c, "/api/v3/operations?service=order-service").await;
    assert_eq!(
        v,
        json!({"operations": [
            {"name": "validate", "spanKind": "internal"},
            {"name": "POST /orders", "spanKind": "server"},
            {"name": "POST /pay", "spanKind": "client"}
        ]})
    );
    let (_, v) = get_json(
        &c,
        "/api/v3/operations?service=order-service&spanKind=client",
    )
    .await;
    assert_eq!(
        v,
        json!({"operations": [{"name": "POST /pay", "spanKind": "client"}]})
    );

    // One trace as OTLP JSON: five spans, three resources.
    let (s, v) = get_json(&c, &format!("/api/v3/traces/{}", m.checkout)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(otlp_trace_ids(&v), std::slice::from_ref(&m.checkout));
    assert_eq!(v["result"]["resourceSpans"].as_array().unwrap().len(), 3);
    let first = &v["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(first["name"], "GET /checkout");
    assert_eq!(first["kind"], 2, "OTLP enums are integers");
    assert_eq!(first["startTimeUnixNano"], (T0 * 1_000).to_string());
    let (s, _) = get_json(
        &c,
        &format!(
            "/api/v3/traces/{}?startTime={WINDOW_MIN}&endTime={WINDOW_MAX}&rawTraces=true",
            m.checkout
        ),
    )
    .await;
    assert_eq!(s, 200, "the optional parameters are accepted");

    // Summaries: the search Jaeger UI runs, and the everyday questions.
    let w = window();
    let cases: Vec<(String, Vec<&String>, &str)> = vec![
        (
            w.clone(),
            vec![&m.checkout, &m.slow, &m.failed, &m.legacy, &m.split],
            "every trace, any service",
        ),
        (
            format!("query.serviceName=api-gateway&query.durationMin=5s&{w}"),
            vec![&m.slow],
            "api-gateway slower than 5 s",
        ),
        (
            format!("query.attributes=error%3Dtrue&{w}"),
            vec![&m.failed, &m.legacy],
            "errors by error=true",
        ),
        (
            format!("query.attributes=http.status_code%3D500&{w}"),
            vec![&m.failed, &m.legacy],
            "500s by the legacy name",
        ),
        (
            format!("query.attributes=%7B%22http.response.status_code%22%3A%22500%22%7D&{w}"),
            vec![&m.failed, &m.legacy],
            "500s by the stable name, JSON form",
        ),
        (
            format!("query.attributes=user.id%3Du-42&{w}"),
            vec![&m.checkout, &m.failed],
            "one user's traces",
        ),
        (
            format!("query.serviceName=payment-service&query.operationName=POST+%2Fpay&{w}"),
            vec![&m.checkout, &m.split],
            "by operation",
        ),
        (
            format!("query.meshtrace.diagnostics=orphans&{w}"),
            vec![&m.split],
            "traces with orphans",
        ),
        (
            format!("query.meshtrace.diagnostics=untracedCallees&{w}"),
            vec![&m.slow],
            "traces calling something untraced",
        ),
        (
            format!("query.meshtrace.diagnostics=clockSkew&{w}"),
            vec![&m.failed],
            "traces with clock skew",
        ),
        (
            format!("query.meshtrace.diagnostics=orphans,clockSkew&{w}"),
            vec![],
            "both at once: none",
        ),
        (
            format!("query.serviceName=nobody&{w}"),
            vec![],
            "unknown service",
        ),
    ];
    for (query, want, why) in cases {
        let (s, v) = get_json(&c, &format!("/api/v3/trace-summaries?{query}")).await;
        assert_eq!(s, 200, "{why}: {v}");
        assert_eq!(summary_ids(&v), sorted(&want), "{why}");
    }
    let (_, v) = get_json(
        &c,
        &format!("/api/v3/trace-summaries?query.serviceName=api-gateway&query.searchDepth=2&{w}"),
    )
    .await;
    assert_eq!(
        v["summaries"].as_array().unwrap().len(),
        2,
        "searchDepth limits"
    );

    // The checkout summary, field by field.
    let (_, v) = get_json(&c, &format!("/api/v3/trace-summaries?query.attributes=user.id%3Du-42&query.operationName=GET+%2Fcheckout&{w}")).await;
    assert_eq!(
        v,
        json!({"summaries": [{
            "traceId": m.checkout, "rootServiceName": "api-gateway", "rootOperationName": "GET /checkout",
            "minStartTimeUnixNano": (T0 * 1_000).to_string(), "maxEndTimeUnixNano": ((T0 + 120_000) * 1_000).to_string(),
            "spanCount": 5, "errorSpanCount": 0, "orphanSpanCount": 0,
            "services": [
                {"name": "api-gateway", "spanCount": 2, "errorSpanCount": 0},
                {"name": "order-service", "spanCount": 2, "errorSpanCount": 0},
                {"name": "payment-service", "spanCount": 1, "errorSpanCount": 0}
            ],
            "meshtrace": {"rootSpanCount": 1, "untracedCalleeCount": 0, "clockSkewCount": 0}
        }]})
    );

    // FindTraces answers OTLP JSON; POST takes the same query as a body.
    let (s, v) = get_json(
        &c,
        &format!("/api/v3/traces?query.serviceName=api-gateway&query.durationMin=5s&{w}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(otlp_trace_ids(&v), std::slice::from_ref(&m.slow));
    let r = client()
        .post(c.url("/api/v3/trace-summaries"))
        .header("content-type", "application/json")
        .body(json!({"query": {"serviceName": "legacy-app", "startTimeMin": WINDOW_MIN, "startTimeMax": WINDOW_MAX}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(summary_ids(&v), std::slice::from_ref(&m.legacy));
    let (s, v) = get_json(&c, &format!("/api/v3/traces?query.serviceName=nobody&{w}")).await;
    assert_eq!(
        (s, v["error"]["httpCode"].as_u64()),
        (404, Some(404)),
        "as Jaeger: nothing found is a 404"
    );

    // Dependencies from the stored traces (before the collector started: all of them are).
    let (s, v) = get_json(
        &c,
        &format!("/api/v3/dependencies?startTime={WINDOW_MIN}&endTime={WINDOW_MAX}"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"dependencies": [
            {"parent": "api-gateway", "child": "order-service", "callCount": "2"},
            {"parent": "order-service", "child": "payment-service", "callCount": "1"}
        ]})
    );

    // Errors: grpc-gateway's shape, naming the parameter.
    for (path, param) in [
        (
            "/api/v3/trace-summaries?query.serviceName=a".to_string(),
            "query.startTimeMin",
        ),
        (
            format!("/api/v3/trace-summaries?{w}&query.durationMin=fast"),
            "query.durationMin",
        ),
        (
            format!("/api/v3/trace-summaries?{w}&query.filter=%7B%7D"),
            "query.filter",
        ),
        (
            format!("/api/v3/traces?{w}&query.searchDepth=x"),
            "query.searchDepth",
        ),
        ("/api/v3/traces/not-hex".to_string(), "trace_id"),
        ("/api/v3/operations".to_string(), "service"),
        ("/api/v3/dependencies".to_string(), "startTime"),
    ] {
        let (s, v) = get_json(&c, &path).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"]["httpCode"], 400, "{path}");
        assert_eq!(v["error"]["grpcCode"], 3, "{path}: INVALID_ARGUMENT");
        assert_eq!(v["error"]["httpStatus"], "Bad Request", "{path}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(param),
            "{path}: {v}"
        );
    }
    let (s, v) = get_json(
        &c,
        &format!("/api/v3/traces/{}", hex::encode(trace_id(99, 9))),
    )
    .await;
    assert_eq!((s, v["error"]["httpCode"].as_u64()), (404, Some(404)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_token_guards_v3_and_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let c = Collector::start(dir.path(), &["--query-token-file", token.to_str().unwrap()]);
    for path in ["/api/v3/services", "/api/meshtrace/traces/1/diagnostics"] {
        let (s, v) = get_json(&c, path).await;
        assert_eq!(
            (s, v["error"]["httpCode"].as_u64()),
            (401, Some(401)),
            "{path}"
        );
        let r = client()
            .get(c.url(path))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401, "{path}");
    }
}
