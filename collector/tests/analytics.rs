//! Trace analytics over real sockets: span metrics and the service graph on /metrics and
//! /api/dependencies, the remote sampling endpoint with a strategies file, and adaptive sampling lowering a
//! noisy operation while a quiet one stays fully sampled.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn span_metrics_and_service_graph_from_spans_in_separate_batches() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &["--span-metrics-max-series", "4"]);
    let t = trace_id(11, 1);
    let now = now_us();
    // The server half arrives first, from the cart sidecar; the client half later, from front.
    let mut server = SpanSpec::new(t.clone(), span_id(3), "POST /cart");
    server.start_us = now;
    server.parent = span_id(2);
    server.duration_us = 3_000;
    server.error = true;
    send_spans(&c, "cart", vec![server.span()]).await;
    let mut client_span = SpanSpec::new(t.clone(), span_id(2), "POST");
    client_span.parent = span_id(1);
    client_span.kind = 3;
    client_span.duration_us = 5_000;
    client_span.start_us = now;
    let mut root = SpanSpec::new(t.clone(), span_id(1), "GET /checkout");
    root.start_us = now;
    send_spans(&c, "front", vec![client_span.span(), root.span()]).await;
    // Many operations of one service: past the limit they overflow.
    let many: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("GET /item/{i}");
            let s = SpanSpec::new(trace_id(11, 100 + i), span_id(1), &name);
            s.span()
        })
        .collect();
    send_spans(&c, "cart", many).await;

    let (status, m) = get_text(&c, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &m,
            "traces_total{service_name=\"cart\",operation_name=\"POST /cart\",span_kind=\"server\",status=\"error\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "traces_duration_seconds_bucket{le=\"0.004\",service_name=\"cart\",operation_name=\"POST /cart\",span_kind=\"server\"}"
        )
        .or_else(|| metric_value(
            &m,
            "traces_duration_seconds_bucket{service_name=\"cart\",operation_name=\"POST /cart\",span_kind=\"server\",le=\"0.004\"}"
        )),
        Some(1.0),
        "3 ms lands in the 4 ms bucket: {m}"
    );
    let overflow: f64 = m
        .lines()
        .filter(|l| l.starts_with("traces_total{") && l.contains("operation_name=\"__overflow__\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(overflow >= 16.0, "operations past the limit overflow: {m}");
    assert_eq!(
        metric_value(
            &m,
            "traces_service_graph_request_total{client=\"front\",server=\"cart\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "traces_service_graph_request_failed_total{client=\"front\",server=\"cart\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "traces_service_graph_request_server_seconds_count{client=\"front\",server=\"cart\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "traces_service_graph_request_client_seconds_count{client=\"front\",server=\"cart\"}"
        ),
        Some(1.0)
    );

    // /api/dependencies: the live graph for the recent window.
    let (status, v) = get_json(&c, "/api/dependencies?lookback=3600000").await;
    assert_eq!(status, 200);
    assert_eq!(
        v["data"],
        serde_json::json!([{"parent": "front", "child": "cart", "callCount": 1, "errorCount": 1}])
    );
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Spans dated before the collector started but received after it (a sidecar's retries, a backlog) are
/// counted once in /api/dependencies: from the store for the time before the start, not again live.
#[tokio::test(flavor = "multi_thread")]
async fn dependencies_count_a_backlog_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let then = now_us() - 20 * 60 * 1_000_000;
    let t = trace_id(12, 1);
    let mut root = SpanSpec::new(t.clone(), span_id(1), "GET /checkout");
    root.start_us = then;
    root.duration_us = 5_000;
    let mut server = SpanSpec::new(t.clone(), span_id(2), "POST /cart");
    server.parent = span_id(1);
    server.start_us = then + 1_000;
    send_spans(&c, "front", vec![root.span()]).await;
    send_spans(&c, "cart", vec![server.span()]).await;
    let (status, v) = get_json(&c, "/api/dependencies?lookback=3600000").await;
    assert_eq!(status, 200);
    assert_eq!(
        v["data"],
        serde_json::json!([{"parent": "front", "child": "cart", "callCount": 1, "errorCount": 0}]),
        "one call, whether it is read from the store or the live graph"
    );
}

fn op_probability(v: &Value, op: &str) -> Option<f64> {
    v["operationSampling"]["perOperationStrategies"]
        .as_array()?
        .iter()
        .find(|s| s["operation"] == op)?["probabilisticSampling"]["samplingRate"]
        .as_f64()
}

async fn strategy(c: &Collector, path: &str) -> Value {
    let (status, text) = get_text(c, path).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_sampling_serves_the_file_and_adaptive_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strategies.json");
    std::fs::write(
        &file,
        r#"{"default_strategy": {"type": "probabilistic", "param": 1.0},
            "service_strategies": [
              {"service": "batch", "type": "ratelimiting", "param": 5},
              {"service": "api", "type": "probabilistic", "param": 1.0,
               "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0.0}]}]}"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let c = Collector::start(
        &data,
        &[
            "--sampling-strategies-file",
            file.to_str().unwrap(),
            "--adaptive-sampling-target-tps",
            "10",
            "--adaptive-sampling-interval",
            "200ms",
        ],
    );

    let batch = strategy(&c, "/api/sampling?service=batch").await;
    assert_eq!(batch["strategyType"], "RATE_LIMITING");
    assert_eq!(batch["rateLimitingSampling"]["maxTracesPerSecond"], 5.0);
    let (status, _) = get_text(&c, "/api/sampling").await;
    assert_eq!(status, 400, "service is required");

    // The quiet operation is seen once; the noisy one keeps coming, thinned by the served probability the
    // way a client applying it would.
    let quiet = SpanSpec::new(trace_id(12, 0), span_id(1), "GET /api/users/{id}");
    send_spans(&c, "api", vec![quiet.span()]).await;
    let mut p_noisy = 1.0;
    let mut n = 1u64;
    let mut seen_low = None;
    for _ in 0..600 {
        let count = ((100.0 * p_noisy) as u64).max(1);
        let spans = (0..count)
            .map(|i| SpanSpec::new(trace_id(12, n + i), span_id(1), "GET").span())
            .collect();
        n += count;
        send_spans(&c, "api", spans).await;
        let v = strategy(&c, "/api/sampling?service=api").await;
        p_noisy = op_probability(&v, "GET").unwrap_or(1.0);
        if p_noisy < 0.5 {
            seen_low = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let v = seen_low.expect("the noisy operation's probability fell");
    assert_eq!(v["strategyType"], "PROBABILISTIC");
    assert_eq!(
        op_probability(&v, "GET /api/users/{id}"),
        Some(1.0),
        "quiet operation fully sampled: {v}"
    );
    assert_eq!(
        op_probability(&v, "GET /health"),
        Some(0.0),
        "the file's operation entry wins"
    );
    assert!(p_noisy >= 0.001, "never below the floor: {p_noisy}");
    assert_eq!(v["operationSampling"]["defaultSamplingProbability"], 1.0);
    // Jaeger v1 agents' path answers the same.
    let legacy = strategy(&c, "/sampling?service=api").await;
    assert_eq!(legacy["strategyType"], "PROBABILISTIC");
    assert!(legacy["operationSampling"]["perOperationStrategies"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_strategies_file_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    std::fs::write(
        &file,
        r#"{"default_strategy": {"type": "probabilistic", "param": 7}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--sampling-strategies-file", file.to_str().unwrap()])
        .args([
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
        ])
        .args(["--zipkin-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--tempo-addr", "127.0.0.1:0"])
        .args(["--sampling-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .env_remove("MESHTRACE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("param 7"));
}
