//! Zipkin's query API v2 over real sockets, on the Zipkin port next to its span receiver, against a
//! collector filled over OTLP and Zipkin: the model, every endpoint, and the everyday questions.
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

async fn zipkin(c: &Collector, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://{}{}", c.zipkin, path))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn zipkin_json(c: &Collector, path: &str) -> Value {
    let (s, body) = zipkin(c, path).await;
    assert_eq!(s, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The trace ids of a list of traces, sorted (padded to 32 digits).
fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list of traces: {v}"))
        .iter()
        .map(|t| format!("{:0>32}", t[0]["traceId"].as_str().unwrap()))
        .collect();
    out.sort();
    out
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn zipkin_ui_reads_services_spans_and_traces() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;
    // endTs just after the fixture, a day's lookback.
    let end = T0 / 1_000 + 60_000;

    assert_eq!(
        zipkin_json(&c, "/api/v2/services").await,
        json!([
            "api-gateway",
            "legacy-app",
            "order-service",
            "payment-service"
        ])
    );
    assert_eq!(
        zipkin_json(&c, "/api/v2/spans?serviceName=order-service").await,
        json!(["POST /orders", "POST /pay", "validate"])
    );
    assert_eq!(
        zipkin_json(&c, "/api/v2/remoteServices?serviceName=api-gateway").await,
        json!(["order-service", "reporting.internal"])
    );

    let cases: Vec<(String, Vec<&String>, &str)> = vec![
        (
            format!("endTs={end}"),
            vec![&m.checkout, &m.slow, &m.failed, &m.legacy, &m.split],
            "every trace of the last day",
        ),
        (
            format!("serviceName=api-gateway&minDuration=5000000&endTs={end}"),
            vec![&m.slow],
            "api-gateway slower than 5 s (µs)",
        ),
        (
            format!("annotationQuery=error&endTs={end}"),
            vec![&m.legacy],
            "a bare word: the error tag key (legacy-app carries it)",
        ),
        (
            format!("annotationQuery={}&endTs={end}", q("error=true")),
            vec![&m.failed, &m.legacy],
            "error=true: status or tag",
        ),
        (
            format!("annotationQuery={}&endTs={end}", q("http.status_code=500")),
            vec![&m.failed, &m.legacy],
            "500s by the legacy name",
        ),
        (
            format!("annotationQuery={}&endTs={end}", q("user.id=u-42")),
            vec![&m.checkout, &m.failed],
            "one user's traces",
        ),
        (
            format!(
                "annotationQuery={}&endTs={end}",
                q("http.request.method=POST and error")
            ),
            vec![&m.legacy],
            "a tag and a word on one span",
        ),
        (
            format!(
                "serviceName=payment-service&spanName={}&endTs={end}",
                q("POST /pay")
            ),
            vec![&m.checkout, &m.split],
            "by span name",
        ),
        (
            format!("serviceName=order-service&maxDuration=10000&endTs={end}"),
            vec![&m.failed],
            "maxDuration (µs): the 10 ms validate span",
        ),
        (
            format!("endTs={}&lookback=1000", T0 / 1_000 + 1_500),
            vec![&m.slow],
            "a one-second window",
        ),
        (
            format!("endTs={end}&limit=2"),
            vec![&m.split, &m.legacy],
            "limit: the newest first",
        ),
    ];
    for (query, want, why) in cases {
        let v = zipkin_json(&c, &format!("/api/v2/traces?{query}")).await;
        assert_eq!(ids(&v), sorted(&want), "{why}: {query}");
    }

    // One trace in Zipkin's model.
    let v = zipkin_json(&c, &format!("/api/v2/trace/{}", m.checkout)).await;
    let spans = v.as_array().unwrap();
    assert_eq!(spans.len(), 5);
    assert_eq!(
        spans[0],
        json!({
            "traceId": m.checkout, "id": hex::encode(span_id(1)), "kind": "SERVER", "name": "GET /checkout",
            "timestamp": T0, "duration": 120_000,
            "localEndpoint": {"serviceName": "api-gateway"},
            "tags": {"http.request.method": "GET", "http.response.status_code": "200", "meshtrace.context.source": "none",
                     "url.path": "/checkout", "user.id": "u-42"}
        })
    );
    assert_eq!(spans[1]["parentId"], hex::encode(span_id(1)));
    assert_eq!(spans[1]["kind"], "CLIENT");
    let v = zipkin_json(&c, &format!("/api/v2/trace/{}", m.legacy)).await;
    assert_eq!(v[0]["traceId"], m.legacy);
    assert_eq!(
        v[0]["localEndpoint"],
        json!({"serviceName": "legacy-app", "ipv4": "10.0.0.9"})
    );
    assert_eq!(v[0]["tags"]["error"], "true");

    let v = zipkin_json(
        &c,
        &format!(
            "/api/v2/traceMany?traceIds={},{},{}",
            m.slow,
            m.failed,
            hex::encode(trace_id(99, 9))
        ),
    )
    .await;
    assert_eq!(
        ids(&v),
        sorted(&[&m.slow, &m.failed]),
        "unknown ids are left out"
    );

    let v = zipkin_json(
        &c,
        &format!("/api/v2/dependencies?endTs={end}&lookback=86400000"),
    )
    .await;
    assert_eq!(
        v,
        json!([
            {"parent": "api-gateway", "child": "order-service", "callCount": 2, "errorCount": 1},
            {"parent": "order-service", "child": "payment-service", "callCount": 1, "errorCount": 0}
        ]),
        "the failed checkout's call from the gateway counts as an error"
    );

    let keys = zipkin_json(&c, "/api/v2/autocompleteKeys").await;
    for key in [
        "http.request.method",
        "http.status_code",
        "http.response.status_code",
        "error",
        "server.address",
        "meshtrace.context.source",
    ] {
        assert!(
            keys.as_array().unwrap().contains(&json!(key)),
            "{key} in {keys}"
        );
    }
    assert!(
        !keys.as_array().unwrap().contains(&json!("user.id")),
        "only the configured keys: {keys}"
    );
    assert_eq!(
        zipkin_json(&c, "/api/v2/autocompleteValues?key=http.request.method").await,
        json!(["GET", "POST"])
    );
    assert_eq!(
        zipkin_json(&c, "/api/v2/autocompleteValues?key=user.id").await,
        json!([]),
        "not configured"
    );

    for (path, status) in [
        ("/api/v2/spans", 400),
        ("/api/v2/remoteServices", 400),
        ("/api/v2/traces?minDuration=fast", 400),
        ("/api/v2/trace/xyz", 400),
        ("/api/v2/traceMany?traceIds=1", 400),
        ("/api/v2/traceMany?traceIds=1,1", 400),
        ("/api/v2/dependencies", 400),
        ("/api/v2/autocompleteValues", 400),
    ] {
        assert_eq!(zipkin(&c, path).await.0, status, "{path}");
    }
    let (s, _) = zipkin(
        &c,
        &format!("/api/v2/trace/{}", hex::encode(trace_id(99, 9))),
    )
    .await;
    assert_eq!(s, 404);
    // The receiver still takes spans on the same path.
    let r = client()
        .post(c.zipkin_url())
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}
