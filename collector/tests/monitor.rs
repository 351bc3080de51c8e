//! Jaeger UI's Monitor tab over real sockets: `/api/metrics/{calls,errors,latencies}` and `minstep`,
//! answered from the collector's in-memory span metrics history, in the shape of Jaeger's metrics
//! protobuf (`MetricFamily`, proto3 JSON).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn value(point: &Value) -> Option<f64> {
    point["gaugeValue"]["doubleValue"].as_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_tab_reads_rates_errors_and_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    // 20 fast successful calls and 10 slow failing ones on GET /cart, 30 successful POST /cart, one
    // client span; the history counts them when they arrive.
    let mut spans = Vec::new();
    for i in 0..60u64 {
        let name = if i < 30 { "GET /cart" } else { "POST /cart" };
        let mut s = SpanSpec::new(trace_id(21, i), span_id(1), name);
        s.duration_us = if i < 20 { 4_000 } else { 400_000 };
        s.error = (20..30).contains(&i);
        spans.push(s.span());
    }
    let mut client_span = SpanSpec::new(trace_id(21, 99), span_id(2), "call db");
    client_span.kind = 3;
    spans.push(client_span.span());
    send_spans(&c, "cart", spans).await;

    // endTs a minute ahead and a 10-minute rate window hold every call: rates are exact.
    let end = now_ms() + 60_000;
    let common = format!("service=cart&endTs={end}&lookback=0&step=60000&ratePer=600000");
    // The history is fed by the analytics thread beside the acknowledgement, not before it: wait until
    // it has the request (observed whole, under one lock).
    let calls = format!("/api/metrics/calls?{common}&spanKind=server");
    eventually("the history saw the spans", 100, || async {
        get_json(&c, &calls).await.1["metrics"][0]["labels"].is_array()
    })
    .await;
    let (s, v) = get_json(&c, &format!("/api/metrics/calls?{common}&spanKind=server")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "service_call_rate");
    assert_eq!(v["type"], "GAUGE");
    assert_eq!(
        v["metrics"][0]["labels"],
        json!([{"name": "service_name", "value": "cart"}])
    );
    let points = v["metrics"][0]["metricPoints"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(
        value(&points[0]),
        Some(60.0 / 600.0),
        "60 server calls in 10 minutes, per second"
    );
    assert!(
        points[0]["timestamp"].as_str().unwrap().ends_with('Z'),
        "{points:?}"
    );

    let (_, v) = get_json(
        &c,
        &format!("/api/metrics/errors?{common}&groupByOperation=true"),
    )
    .await;
    assert_eq!(v["name"], "service_operation_error_rate");
    let by_op: Vec<(String, Option<f64>)> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(
                m["labels"][0]["name"], "service_name",
                "service_name comes first: {m}"
            );
            (
                m["labels"][1]["value"].as_str().unwrap().to_string(),
                value(&m["metricPoints"][0]),
            )
        })
        .collect();
    assert_eq!(
        by_op,
        [
            ("GET /cart".to_string(), Some(10.0 / 30.0)),
            ("POST /cart".to_string(), Some(0.0))
        ],
        "errors over calls, per operation; client spans excluded by default"
    );

    let (_, v) = get_json(&c, &format!("/api/metrics/latencies?{common}&quantile=0.5")).await;
    assert_eq!(v["name"], "service_latencies");
    assert_eq!(v["help"], "0.50th quantile latency, grouped by service");
    let p50 = value(&v["metrics"][0]["metricPoints"][0]).unwrap();
    assert!(
        (300.0..=500.0).contains(&p50),
        "40 of 60 calls took 400 ms: p50 {p50} ms"
    );
    let (_, v) = get_json(
        &c,
        &format!("/api/metrics/latencies?{common}&quantile=0.2&spanKind=server"),
    )
    .await;
    let p20 = value(&v["metrics"][0]["metricPoints"][0]).unwrap();
    assert!(
        (3.0..=5.0).contains(&p20),
        "the fastest third took 4 ms: p20 {p20} ms"
    );
    let (_, v) = get_json(&c, &format!("/api/metrics/calls?{common}&spanKind=client")).await;
    assert_eq!(
        value(&v["metrics"][0]["metricPoints"][0]),
        Some(1.0 / 600.0)
    );

    // An hour of points, per minute: the early ones have no calls (rate 0, error rate NaN).
    let (_, v) = get_json(
        &c,
        &format!("/api/metrics/errors?service=cart&endTs={end}&lookback=3600000&step=60000&ratePer=60000"),
    )
    .await;
    let points = v["metrics"][0]["metricPoints"].as_array().unwrap();
    assert_eq!(points.len(), 61);
    assert_eq!(
        points[0]["gaugeValue"]["doubleValue"], "NaN",
        "proto3 JSON's NaN"
    );
    let (_, v) = get_json(&c, "/api/metrics/calls?service=nobody").await;
    assert_eq!(v["metrics"], json!([]), "an unknown service has no series");

    let (s, v) = get_json(&c, "/api/metrics/minstep").await;
    assert_eq!((s, &v["data"]), (200, &json!(60_000)));
    for (path, why) in [
        ("/api/metrics/calls", "no service"),
        ("/api/metrics/latencies?service=cart", "no quantile"),
        (
            "/api/metrics/latencies?service=cart&quantile=2",
            "quantile out of range",
        ),
        (
            "/api/metrics/calls?service=cart&spanKind=sideways",
            "bad span kind",
        ),
        ("/api/metrics/calls?service=cart&step=0", "zero step"),
    ] {
        let (s, v) = get_json(&c, path).await;
        assert_eq!(s, 400, "{why}: {v}");
        assert_eq!(v["errors"][0]["code"], 400, "{why}");
    }
    let (s, _) = get_json(&c, "/api/metrics/throughput?service=cart").await;
    assert_eq!(s, 404);
}
